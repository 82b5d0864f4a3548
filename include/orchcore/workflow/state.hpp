// The state of one workflow run as a pure value: the caller reports task
// outcomes (with the time), the state answers what may run now, fails
// everything downstream of a failure at once, and derives the workflow's
// status. No threads, no clock; the caller serialises access.
#pragma once

#include <orchcore/workflow/spec.hpp>

#include <chrono>
#include <cstddef>
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace orchcore::workflow {

enum class task_state { pending, running, completed, failed, cancelled, timed_out };
enum class workflow_status { pending, running, completed, failed, cancelled };

constexpr bool is_terminal(task_state s) noexcept {
    return s != task_state::pending && s != task_state::running;
}
std::string_view to_string(task_state s) noexcept;
std::string_view to_string(workflow_status s) noexcept;

using time_point = std::chrono::system_clock::time_point;

struct task_progress {
    task_state state = task_state::pending;
    std::string result{};  ///< completed: the task's result
    std::string reason{};  ///< failed, cancelled, timed out: why
    std::string cause{};   ///< failed because of an upstream task: the dependency that ended unsuccessfully
    std::optional<time_point> started_at{};
    std::optional<time_point> finished_at{};
};

class workflow_state {
public:
    explicit workflow_state(workflow_graph graph);
    /// A state of a graph shared with others (no copy of the graph).
    explicit workflow_state(std::shared_ptr<const workflow_graph> graph);

    const workflow_graph& graph() const noexcept { return *graph_.p; }
    const task_progress& task(std::string_view name) const;  ///< throws invalid_argument if unknown

    /// By index in graph().tasks() (no name lookup); throws
    /// invalid_argument if out of range.
    const task_progress& task_at(std::size_t i) const {
        if (i >= progress_.size()) no_such_index(i);
        return progress_[i];
    }
    /// The indices of the dependencies of task i, in declaration order.
    const std::vector<std::size_t>& dependencies_of(std::size_t i) const;

    /// Pending tasks whose dependencies have all completed, in graph order
    /// (kept as tasks end: the cost is the number of such tasks).
    std::vector<std::string> runnable() const;
    std::vector<std::size_t> runnable_indices() const;
    /// runnable_indices into `out`, reusing its capacity.
    void runnable_indices(std::vector<std::size_t>& out) const;
    /// Marks a runnable task running. Throws invalid_argument if the task is
    /// unknown or not runnable.
    void start(std::string_view name, time_point now);
    void start_at(std::size_t i, time_point now);

    /// Outcomes of a running task. False (and no change) if the task had
    /// already ended (a late report after a cancellation); invalid_argument
    /// if it is unknown or was never started. An unsuccessful outcome fails
    /// every task downstream at once, with a reason naming the dependency;
    /// a failed shard also cancels its pending sibling shards. A shard that
    /// fails or times out while its fan-out has rounds left (shard_spec::rounds)
    /// starts a new round instead: every shard of the task is pending again
    /// (the caller cancels those of the old round that were running) and
    /// round() counts one more.
    bool complete(std::string_view name, std::string result, time_point now);
    bool fail(std::string_view name, std::string reason, time_point now);
    bool time_out(std::string_view name, time_point now);
    /// Cancels one pending or running task (and fails its downstream).
    /// False if it had already ended.
    bool cancel_task(std::string_view name, std::string reason, time_point now);
    /// complete / fail / time_out / cancel_task by index: `s` is the end
    /// (completed, failed, timed_out or cancelled), `text` the result or
    /// the reason.
    bool end_at(std::size_t i, task_state s, std::string text, time_point now);
    /// Cancels the workflow: every unfinished task. Returns how many.
    std::size_t cancel(std::string reason, time_point now);

    /// The round a shard's fan-out is in (an aggregator: the round whose
    /// results it aggregates), from 1; 1 for any other task.
    std::uint32_t round(std::string_view name) const;
    /// Rebuilding from records: puts sharded task `aggregator`, none of
    /// whose shards has started, in round `round`. Throws invalid_argument
    /// otherwise or if the round is outside [1, its shard rounds].
    void restore_round(std::string_view aggregator, std::uint32_t round);

    /// Running tasks whose options.timeout has elapsed at `now`.
    std::vector<std::string> overdue(time_point now) const;
    /// The shards' results in shard order, for an aggregator whose shards
    /// all completed. Throws invalid_argument otherwise.
    std::vector<std::string> shard_results(std::string_view aggregator) const;

    /// pending: nothing started; running: some task not yet ended;
    /// once every task ended: failed if any failed or timed out, else
    /// cancelled if any was cancelled, else completed.
    workflow_status status() const noexcept;
    bool finished() const noexcept { return unfinished_ == 0; }
    std::size_t count(task_state s) const noexcept;

private:
    std::size_t require(std::string_view name) const;
    std::size_t require(std::size_t i) const {
        if (i >= progress_.size()) no_such_index(i);
        return i;
    }
    [[noreturn]] void no_such_index(std::size_t i) const;
    bool finish(std::size_t i, task_state s, std::string text, time_point now);
    void fail_downstream(std::size_t origin, time_point now);
    void cancel_siblings(std::size_t shard, time_point now);
    std::size_t aggregator_of(std::size_t shard) const;
    bool next_round(std::size_t shard, task_state s);
    void fail_round(std::size_t shard, time_point now);
    void end(std::size_t i, task_state s, time_point now);
    void set_state(std::size_t i, task_state s) noexcept;

    // The graph, shared (the states of one workflow do not copy it); read
    // like a workflow_graph.
    struct shared_graph {
        std::shared_ptr<const workflow_graph> p;
        const std::vector<task_node>& tasks() const noexcept { return p->tasks(); }
        std::size_t size() const noexcept { return p->size(); }
        std::optional<std::size_t> index_of(std::string_view t) const { return p->index_of(t); }
        const task_node& at(std::string_view t) const { return p->at(t); }
    };
    shared_graph graph_;
    std::vector<task_progress> progress_;
    std::vector<std::size_t> waiting_on_;  ///< dependencies not yet completed
    std::vector<std::uint32_t> rounds_;    ///< per aggregator: its fan-out's round
    /// Pending with waiting_on_ == 0, in no order (runnable*() sort them);
    /// ready_at_[i]: task i's place in ready_, or not_ready.
    std::vector<std::size_t> ready_;
    std::vector<std::size_t> ready_at_;
    static constexpr std::size_t not_ready = static_cast<std::size_t>(-1);
    void make_ready(std::size_t i);
    void make_unready(std::size_t i) noexcept;
    std::array<std::size_t, 6> counts_{};  ///< tasks per task_state
    std::size_t unfinished_ = 0;
    bool started_any_ = false;
};

}  // namespace orchcore::workflow
