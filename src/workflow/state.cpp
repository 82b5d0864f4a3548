#include <orchcore/workflow/state.hpp>

#include <orchcore/error.hpp>

#include <algorithm>

namespace orchcore::workflow {

std::string_view to_string(task_state s) noexcept {
    switch (s) {
        case task_state::pending: return "pending";
        case task_state::running: return "running";
        case task_state::completed: return "completed";
        case task_state::failed: return "failed";
        case task_state::cancelled: return "cancelled";
        case task_state::timed_out: return "timed_out";
    }
    return "unknown";
}

std::string_view to_string(workflow_status s) noexcept {
    switch (s) {
        case workflow_status::pending: return "pending";
        case workflow_status::running: return "running";
        case workflow_status::completed: return "completed";
        case workflow_status::failed: return "failed";
        case workflow_status::cancelled: return "cancelled";
    }
    return "unknown";
}

namespace {

std::shared_ptr<const workflow_graph> non_null(std::shared_ptr<const workflow_graph> g) {
    if (!g) throw invalid_argument("graph", "null", "a workflow state needs a graph");
    return g;
}

}  // namespace

workflow_state::workflow_state(workflow_graph graph)
    : workflow_state(std::make_shared<const workflow_graph>(std::move(graph))) {}

workflow_state::workflow_state(std::shared_ptr<const workflow_graph> graph)
    : graph_{non_null(std::move(graph))},
      progress_(graph_.size()),
      waiting_on_(graph_.size(), 0),
      rounds_(graph_.size(), 1),
      ready_at_(graph_.size(), not_ready),
      unfinished_(graph_.size()) {
    counts_[static_cast<std::size_t>(task_state::pending)] = graph_.size();
    const auto& tasks = graph_.tasks();
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        waiting_on_[i] = tasks[i].depends_on.size();
        if (waiting_on_[i] == 0) make_ready(i);
    }
}

std::size_t workflow_state::require(std::string_view name) const {
    const auto i = graph_.index_of(name);
    if (!i) throw invalid_argument("task", name, "no task of the workflow has this name");
    return *i;
}

void workflow_state::no_such_index(std::size_t i) const {
    throw invalid_argument("task", std::to_string(i), "no task of the workflow has this index");
}

const task_progress& workflow_state::task(std::string_view name) const { return progress_[require(name)]; }


const std::vector<std::size_t>& workflow_state::dependencies_of(std::size_t i) const {
    return graph_.p->dependency_indices(require(i));
}

void workflow_state::make_ready(std::size_t i) {
    if (ready_at_[i] != not_ready) return;
    ready_at_[i] = ready_.size();
    ready_.push_back(i);
}

void workflow_state::make_unready(std::size_t i) noexcept {
    const auto at = ready_at_[i];
    if (at == not_ready) return;
    ready_[at] = ready_.back();
    ready_at_[ready_[at]] = at;
    ready_.pop_back();
    ready_at_[i] = not_ready;
}

std::vector<std::size_t> workflow_state::runnable_indices() const {
    std::vector<std::size_t> out;
    runnable_indices(out);
    return out;
}

void workflow_state::runnable_indices(std::vector<std::size_t>& out) const {
    out.assign(ready_.begin(), ready_.end());
    std::sort(out.begin(), out.end());
}

std::vector<std::string> workflow_state::runnable() const {
    std::vector<std::string> out;
    out.reserve(ready_.size());
    for (const auto i : runnable_indices()) out.push_back(graph_.tasks()[i].name);
    return out;
}

void workflow_state::start(std::string_view name, time_point now) { start_at(require(name), now); }

void workflow_state::start_at(std::size_t i, time_point now) {
    const auto& name = graph_.tasks()[require(i)].name;
    if (progress_[i].state != task_state::pending) {
        throw invalid_argument("task", name, "not runnable: it is " + std::string(to_string(progress_[i].state)));
    }
    if (waiting_on_[i] != 0) throw invalid_argument("task", name, "not runnable: a dependency has not completed");
    set_state(i, task_state::running);
    progress_[i].started_at = now;
    started_any_ = true;
}

void workflow_state::set_state(std::size_t i, task_state s) noexcept {
    --counts_[static_cast<std::size_t>(progress_[i].state)];
    ++counts_[static_cast<std::size_t>(s)];
    if (progress_[i].state == task_state::pending) make_unready(i);
    progress_[i].state = s;
}

void workflow_state::end(std::size_t i, task_state s, time_point now) {
    set_state(i, s);
    progress_[i].finished_at = now;
    --unfinished_;
}

bool workflow_state::finish(std::size_t i, task_state s, std::string text, time_point now) {
    auto& p = progress_[i];
    if (is_terminal(p.state)) return false;
    if (p.state != task_state::running && s != task_state::cancelled) {
        throw invalid_argument("task", graph_.tasks()[i].name, "was never started");
    }
    (s == task_state::completed ? p.result : p.reason) = std::move(text);
    end(i, s, now);
    if (s == task_state::completed) {
        for (const auto d : graph_.p->dependant_indices(i)) {
            if (--waiting_on_[d] == 0 && progress_[d].state == task_state::pending) make_ready(d);
        }
        return true;
    }
    if (!graph_.tasks()[i].is_shard()) {
        fail_downstream(i, now);
    } else if (!next_round(i, s)) {
        fail_round(i, now);
    }
    return true;
}

std::size_t workflow_state::aggregator_of(std::size_t shard) const {
    return *graph_.index_of(graph_.tasks()[shard].shard_of);
}

// A shard failed or timed out (a cancellation is not retried): while the
// fan-out has rounds left and its aggregator has not failed already (a
// sibling cancelled), every shard starts over, pending and runnable (they
// ran, so their dependencies completed), and the aggregator waits for all
// of them again.
bool workflow_state::next_round(std::size_t shard, task_state s) {
    const auto a = aggregator_of(shard);
    const auto& aggregator = graph_.tasks()[a];
    if (s == task_state::cancelled || rounds_[a] >= aggregator.shard_rounds) return false;
    if (is_terminal(progress_[a].state)) return false;
    ++rounds_[a];
    for (const auto& name : aggregator.shards) {
        const auto i = *graph_.index_of(name);
        if (is_terminal(progress_[i].state)) ++unfinished_;
        set_state(i, task_state::pending);
        progress_[i] = task_progress{};
        if (waiting_on_[i] == 0) make_ready(i);
    }
    waiting_on_[a] = aggregator.shards.size();
    return true;
}

// The last round failed: the sharded task fails, naming the shard (and the
// round when it has several).
void workflow_state::fail_round(std::size_t shard, time_point now) {
    cancel_siblings(shard, now);
    fail_downstream(shard, now);
    const auto a = aggregator_of(shard);
    const auto rounds = graph_.tasks()[a].shard_rounds;
    if (rounds > 1 && progress_[a].cause == graph_.tasks()[shard].name) {
        progress_[a].reason += " in round " + std::to_string(rounds_[a]) + " of " + std::to_string(rounds);
    }
}

std::uint32_t workflow_state::round(std::string_view name) const {
    const auto i = require(name);
    const auto& n = graph_.tasks()[i];
    if (n.is_aggregator()) return rounds_[i];
    return n.is_shard() ? rounds_[aggregator_of(i)] : 1;
}

void workflow_state::restore_round(std::string_view aggregator, std::uint32_t round) {
    const auto a = require(aggregator);
    const auto& n = graph_.tasks()[a];
    if (!n.is_aggregator()) throw invalid_argument("task", aggregator, "not the aggregator of a sharded task");
    if (round == 0 || round > n.shard_rounds) {
        throw invalid_argument("round", std::to_string(round),
                               "expected a round in [1, " + std::to_string(n.shard_rounds) + "]");
    }
    for (const auto& shard : n.shards) {
        if (progress_[*graph_.index_of(shard)].state != task_state::pending) {
            throw invalid_argument("task", aggregator, "shard '" + shard + "' has started");
        }
    }
    rounds_[a] = round;
}

void workflow_state::cancel_siblings(std::size_t shard, time_point now) {
    const auto& parent = graph_.at(graph_.tasks()[shard].shard_of);
    for (const auto& sibling : parent.shards) {
        const auto s = *graph_.index_of(sibling);
        if (progress_[s].state != task_state::pending) continue;
        progress_[s].reason = "shard '" + graph_.tasks()[shard].name + "' of '" + parent.name + "' did not complete";
        end(s, task_state::cancelled, now);
    }
}

void workflow_state::fail_downstream(std::size_t origin, time_point now) {
    std::vector<std::size_t> stack{origin};
    while (!stack.empty()) {
        const auto i = stack.back();
        stack.pop_back();
        const auto& dep = graph_.tasks()[i].name;
        for (const auto d : graph_.p->dependant_indices(i)) {
            auto& p = progress_[d];
            // A dependant cannot be running: it waits for this task to complete.
            if (p.state != task_state::pending) continue;
            p.reason = "dependency '" + dep + "' " + std::string(to_string(progress_[i].state));
            p.cause = dep;
            end(d, task_state::failed, now);
            stack.push_back(d);
        }
    }
}

bool workflow_state::complete(std::string_view name, std::string result, time_point now) {
    return finish(require(name), task_state::completed, std::move(result), now);
}

bool workflow_state::fail(std::string_view name, std::string reason, time_point now) {
    return finish(require(name), task_state::failed, std::move(reason), now);
}

bool workflow_state::time_out(std::string_view name, time_point now) {
    return finish(require(name), task_state::timed_out, "timed out", now);
}

bool workflow_state::cancel_task(std::string_view name, std::string reason, time_point now) {
    return finish(require(name), task_state::cancelled, std::move(reason), now);
}

bool workflow_state::end_at(std::size_t i, task_state s, std::string text, time_point now) {
    if (!is_terminal(s)) throw invalid_argument("state", std::string(to_string(s)), "not an end of a task");
    return finish(require(i), s, std::move(text), now);
}

std::size_t workflow_state::cancel(std::string reason, time_point now) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < progress_.size(); ++i) {
        if (is_terminal(progress_[i].state)) continue;
        progress_[i].reason = reason;
        end(i, task_state::cancelled, now);
        ++n;
    }
    return n;
}

std::vector<std::string> workflow_state::overdue(time_point now) const {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < progress_.size(); ++i) {
        const auto& p = progress_[i];
        const auto timeout = graph_.tasks()[i].options.timeout;
        if (p.state != task_state::running || timeout <= timeout.zero()) continue;
        // Elapsed time in the timeout's unit: no deadline addition or unit
        // conversion of the timeout that could overflow near its maximum.
        if (now < *p.started_at) continue;
        const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(now - *p.started_at);
        if (elapsed >= timeout) out.push_back(graph_.tasks()[i].name);
    }
    return out;
}

std::vector<std::string> workflow_state::shard_results(std::string_view aggregator) const {
    const auto& node = graph_.tasks()[require(aggregator)];
    if (!node.is_aggregator()) throw invalid_argument("task", aggregator, "not the aggregator of a sharded task");
    std::vector<std::string> out;
    out.reserve(node.shards.size());
    for (const auto& shard : node.shards) {
        const auto& p = progress_[*graph_.index_of(shard)];
        if (p.state != task_state::completed) {
            throw invalid_argument("task", aggregator, "shard '" + shard + "' is " + std::string(to_string(p.state)));
        }
        out.push_back(p.result);
    }
    return out;
}

workflow_status workflow_state::status() const noexcept {
    if (unfinished_ != 0) return started_any_ || unfinished_ != progress_.size() ? workflow_status::running
                                                                                 : workflow_status::pending;
    if (count(task_state::failed) + count(task_state::timed_out) != 0) return workflow_status::failed;
    if (count(task_state::cancelled) != 0) return workflow_status::cancelled;
    return workflow_status::completed;
}

std::size_t workflow_state::count(task_state s) const noexcept {
    return counts_[static_cast<std::size_t>(s)];
}

}  // namespace orchcore::workflow
