// The workflow runner's internals: the workflows this process drives
// (their graph state, rebuilt from the task records when needed) and the
// thread that advances them. One thread at a time advances workflows (it
// holds the claim `busy`): the runner's own thread, or, in local mode, the
// thread told that a task ended, when no other thread holds the claim.
#pragma once

#include <orchcore/coordinator.hpp>
#include <orchcore/event_bus.hpp>
#include <orchcore/transport.hpp>
#include <orchcore/workflow/runner.hpp>
#include <orchcore/workflow/state.hpp>

#include <condition_variable>
#include <cstdint>
#include <cstddef>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace orchcore::workflow {

inline constexpr std::string_view driver_type = "orchcore.workflow";
inline constexpr std::string_view meta_name = "orchcore.workflow.name";  ///< on the driver: the spec's name

/// How a workflow ended, as the runner thread saw it.
struct workflow_end {
    workflow_status status = workflow_status::completed;
    std::string reason{};
};

/// A workflow this process holds, as other threads see it.
struct held_workflow {
    std::optional<workflow_end> end{};
    std::chrono::steady_clock::time_point seen = std::chrono::steady_clock::now();
};

/// One workflow this process holds. `state` is touched by the thread holding
/// runner_impl::busy only.
struct live_workflow {
    live_workflow(std::string id_, std::shared_ptr<const workflow_graph> g) : id(std::move(id_)), state(std::move(g)) {}
    std::string id;
    workflow_state state;
    /// The last look at every running task's record (the safety net for
    /// finish notifications that were lost).
    std::chrono::steady_clock::time_point full_look = std::chrono::steady_clock::now();
    /// The runnable tasks being submitted (submit_runnable), kept to reuse its room.
    std::vector<std::size_t> ready{};
    /// A task ended without a record of its own (refused admission): a
    /// state rebuilt from the records would not have that end.
    bool unrecorded_end = false;
};

/// One unit of work for the runner thread.
struct runner_job {
    std::string workflow;
    std::string task{};     ///< tasks that ended, one name a line (empty: see below)
    std::string spec{};     ///< a driver turn of a workflow not held here: the spec, to rebuild from
    bool cancel = false;    ///< the workflow was cancelled
    std::shared_ptr<std::promise<void>> done{};  ///< set once the job was processed
    /// No task, no turn, no cancel: the driver ended somewhere (look at its
    /// status); `full`: notifications may have been lost (look at every
    /// running task).
    bool full = false;
    bool first = false;  ///< the driver's first turn: no task of the workflow was submitted yet
    bool turn = false;   ///< a driver turn
};

/// Adds `names` (a task name, or a list of them, one a line) to the list
/// `task` of a runner_job.
inline void add_task_names(std::string& task, std::string_view names) {
    if (!task.empty()) task.push_back('\n');
    task.append(names);
}

/// The records of a workflow's tasks: records[i] and rounds[i] belong to
/// graph.tasks()[i]; a shard's record is of the latest round of its fan-out
/// that has records (rounds[i], as for its aggregator; 1 for other tasks).
struct workflow_records {
    std::vector<std::optional<task_outcome>> records;
    std::vector<std::uint32_t> rounds;
    std::vector<std::string> first_ids{};  ///< first_ids[i]: the id of task i in its first round (the batch read)
};
/// Reads them (how each task ended): one batch, and one more per later round of a fan-out found.
workflow_records read_records(coordinator& c, const std::string& id, const workflow_graph& graph);
/// read_records(..).rounds; all 1 without reading when no fan-out has several rounds.
std::vector<std::uint32_t> latest_rounds(coordinator& c, const std::string& id, const workflow_graph& graph);
/// The task id of a task of the graph as the state has it (a shard: of its round).
std::string node_task_id(const std::string& workflow, const workflow_state& s, const task_node& n);

/// The state of a graph rebuilt from its tasks' records, each fan-out in
/// the round of its records; `driver_cancelled` cancels what has not ended.
workflow_state rebuild(std::shared_ptr<const workflow_graph> graph, const workflow_records& r, bool driver_cancelled);
/// The record of a workflow from its state; a task in its first round takes
/// its id from `first_ids` (read_records' ids) when given, instead of a new one.
workflow_record make_record(const std::string& id, const workflow_state& state, const task_outcome& driver,
                            std::vector<std::string> first_ids = {});
/// Whether rebuilding from the records gives `s` back, task for task (the
/// state of a workflow that ended where it was held): it finished, nothing
/// was cancelled, and at most one task ended unsuccessfully on its own (not
/// a shard), so that no order of ends decides a cause.
bool rebuilds_the_same(const workflow_state& s);
/// Applies a task's terminal record to a running task; false if not terminal.
bool apply_record(workflow_state& state, const std::string& name, const task_outcome& r, bool apply_cancel);
bool apply_record(workflow_state& state, std::size_t i, const task_outcome& r, bool apply_cancel);

/// The expanded graphs of recent specs by the spec's JSON text (the
/// driver's payload; a graph depends on nothing else), so that a
/// 10,000-task spec is not parsed and expanded again at every load or
/// record, nor at every submission of the same spec. Bounded; thread-safe.
class graph_cache {
public:
    std::shared_ptr<const workflow_graph> find(std::string_view spec) const;
    void put(std::string spec, std::shared_ptr<const workflow_graph> g);

private:
    struct text_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };
    static constexpr std::size_t capacity = 64;
    mutable std::mutex m_;
    std::unordered_map<std::string, std::shared_ptr<const workflow_graph>, text_hash, std::equal_to<>> graphs_;
    std::deque<const std::string*> order_;  ///< the keys in graphs_, oldest first
};

/// The final state of a workflow that ended where it was held, with what
/// tells whether the task records still give it: the driver's record's
/// creation time (a later workflow of the same id has another) and the ids
/// of the tasks whose records expire first (of each end, the one that
/// ended first).
struct final_state {
    workflow_state state;
    time_point driver_created{};
    std::vector<std::string> witnesses{};
};

/// The final states of the last workflows that ended on this node while it
/// held them, so that reading the record of a workflow that ended here
/// (workflow_handle::get) neither reads every task's record nor rebuilds
/// the state. Bounded in count and in the bytes of results and reasons
/// held. Thread-safe.
class final_states {
public:
    void put(std::string id, std::shared_ptr<const final_state> s);
    std::shared_ptr<const final_state> find(std::string_view id) const;
    /// Drops the entry of `id` if it is `which` (another may have come
    /// since); null: whichever it is.
    void erase(std::string_view id, const final_state* which);
    /// The workflows held, with their driver's creation time.
    std::vector<std::pair<std::string, time_point>> entries() const;

    static constexpr std::size_t capacity = 16;
    static constexpr std::size_t max_bytes = std::size_t{64} << 20;

private:
    struct entry {
        std::string id;
        std::shared_ptr<const final_state> state;
        std::size_t bytes = 0;
    };
    mutable std::mutex m_;
    std::deque<entry> entries_;  ///< oldest first
    std::size_t bytes_ = 0;
    void erase_at(std::deque<entry>::iterator it);
};

/// A spec submitted before, with its JSON text (the driver's payload) and
/// its expanded graph.
struct encoded_spec {
    workflow_spec spec;
    std::string json;
    std::shared_ptr<const workflow_graph> graph;
};

/// The last few specs submitted, so that submitting the same spec again
/// (a workflow run over and over) encodes and expands nothing: a spec is
/// compared field by field, far cheaper than encoding it. Bounded; thread-safe.
class spec_cache {
public:
    std::shared_ptr<const encoded_spec> find(const workflow_spec& spec) const;
    void put(std::shared_ptr<const encoded_spec> e);

private:
    static constexpr std::size_t capacity = 8;
    mutable std::mutex m_;
    std::deque<std::shared_ptr<const encoded_spec>> recent_;  ///< newest first
};

struct runner_impl : std::enable_shared_from_this<runner_impl> {
    runner_impl(coordinator& c, runner_options o);

    coordinator& c;
    runner_options options;

    // The workflows held and the jobs for the runner thread.
    std::mutex m;
    std::condition_variable cv;
    std::deque<runner_job> jobs;
    /// Local mode: tasks of held workflows that ended while another thread
    /// advanced workflows (it applies them before it lets go).
    std::vector<finished_task> outcomes;
    std::map<std::string, held_workflow, std::less<>> held;
    bool stopping = false;
    /// Workflows submitted here whose workflow.submitted event is not out
    /// yet: their end event waits for it (announce_end).
    std::multiset<std::string, std::less<>> announcing;
    /// A thread is advancing workflows (it alone touches `live` and
    /// `unpromoted`); it takes every job queued before it lets go.
    bool busy = false;
    std::thread::id busy_owner{};
    bool promote_due = false;  ///< drivers are left to promote: the runner thread retries them
    /// Local mode: the thread told that a task ended advances its workflow
    /// itself when no other thread holds `busy` (no hop to the runner
    /// thread and back). Distributed mode keeps notification threads free
    /// of backend calls. Picked once, at start.
    bool advance_inline = false;
    std::map<std::string, std::shared_ptr<live_workflow>, std::less<>> live;  ///< `busy` holder only
    /// Drivers of workflows that ended, to promote (`busy` holder only),
    /// with when to stop trying: by then the driver's poll brought it back.
    std::vector<std::pair<std::string, std::chrono::steady_clock::time_point>> unpromoted;
    std::chrono::steady_clock::time_point finals_due{};  ///< the next sweep_finals (`busy` holder only)

    event_bus::subscription sub;              ///< without finish notifications: this node's task events
    std::unique_ptr<transport_watch> watch;  ///< finish notifications (every node)
    bool notified = false;                    ///< `watch` was set up (set before the thread starts)
    std::thread thread;

    void start();
    void stop();
    void post(runner_job j);
    workflow_handle submit(const workflow_spec& spec, workflow_submit_options o);
    std::string driver_turn(task_context& ctx);
    void announce_end(const std::string& id, const workflow_end& end);
    std::optional<workflow_end> take_end(const std::string& id, bool& held_here);
    void on_event(const event& e);
    void on_finished(std::span<const std::string> task_ids);
    void on_outcomes(std::span<const finished_task> ended);
    bool holds_task(std::string_view task_id) const;
    bool queue_finished(const std::string& task_id);

    // The thread holding `busy`.
    void run();
    void drain(std::unique_lock<std::mutex>& lk);
    void release(std::unique_lock<std::mutex>& lk, bool hand_over);
    void process(runner_job& j);
    void apply_outcomes(std::span<const finished_task> ended);
    std::shared_ptr<live_workflow> load(const std::string& id, const std::string& spec, bool first);
    void turn(live_workflow& w, bool full);
    void advance(live_workflow& w, std::vector<std::size_t> ended, bool check_driver);
    void apply_ended(live_workflow& w, std::vector<std::size_t> ended);
    void apply(live_workflow& w, std::size_t i, const task_outcome& r);
    void submit_runnable(live_workflow& w);
    bool submit_chunk(live_workflow& w, std::span<const std::size_t> part);
    void finish(live_workflow& w);
    void keep_final_state(live_workflow& w);
    void promote_drivers();
    void sweep();

    // Any thread.
    mutable graph_cache graphs;
    spec_cache specs;
    std::shared_ptr<const encoded_spec> encode(const workflow_spec& spec);
    std::shared_ptr<const workflow_graph> graph_of(const std::string& spec) const;
    mutable final_states finals;
    std::optional<workflow_record> record_of(const std::string& id) const;
    std::optional<workflow_record> final_record(const std::string& id) const;
    void sweep_finals();
    bool cancel(const std::string& id);
};

}  // namespace orchcore::workflow
