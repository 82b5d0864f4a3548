#include "runner_impl.hpp"

#include <algorithm>

namespace orchcore::workflow {

namespace {

bool deps_completed(const workflow_state& s, std::size_t i) {
    const auto& deps = s.dependencies_of(i);
    return std::all_of(deps.begin(), deps.end(),
                       [&](std::size_t d) { return s.task_at(d).state == task_state::completed; });
}

}  // namespace

std::string task_id(std::string_view workflow_id, std::string_view task) {
    std::string id;
    id.reserve(workflow_id.size() + 1 + task.size());
    id.append(workflow_id).append("/").append(task);
    return id;
}

bool apply_record(workflow_state& state, const std::string& name, const task_record& r, bool apply_cancel) {
    const auto i = state.graph().index_of(name);
    if (!i) throw invalid_argument("task", name, "no task of the workflow has this name");
    return apply_record(state, *i, r, apply_cancel);
}

bool apply_record(workflow_state& state, std::size_t i, const task_record& r, bool apply_cancel) {
    const auto at = r.finished_at.value_or(std::chrono::system_clock::now());
    switch (r.status) {
        case task_status::completed: state.end_at(i, task_state::completed, r.result, at); return true;
        case task_status::failed: state.end_at(i, task_state::failed, r.error, at); return true;
        case task_status::timed_out: state.end_at(i, task_state::timed_out, "timed out", at); return true;
        case task_status::cancelled:
            if (apply_cancel) state.end_at(i, task_state::cancelled, r.error.empty() ? "cancelled" : r.error, at);
            return true;
        default: return false;
    }
}

// Every task with a record has had its dependencies completed (it is
// submitted only then), so all are started first and completions applied
// in graph order; unsuccessful ends are applied after, in the order they
// happened, so that a failed shard does not cancel siblings that did run.
workflow_state rebuild(std::shared_ptr<const workflow_graph> graph, std::span<const std::optional<task_record>> records,
                       bool driver_cancelled) {
    workflow_state s(std::move(graph));
    std::vector<std::size_t> unsuccessful;
    for (std::size_t i = 0; i < s.graph().size(); ++i) {
        if (!records[i] || s.task_at(i).state != task_state::pending || !deps_completed(s, i)) continue;
        s.start_at(i, records[i]->started_at.value_or(records[i]->created_at));
        if (records[i]->status == task_status::completed) apply_record(s, i, *records[i], true);
        else unsuccessful.push_back(i);
    }
    // In the order they ended: the first to end is the cause of what failed downstream.
    std::stable_sort(unsuccessful.begin(), unsuccessful.end(), [&](std::size_t a, std::size_t b) {
        return records[a]->finished_at.value_or(time_point::max()) < records[b]->finished_at.value_or(time_point::max());
    });
    for (const auto i : unsuccessful) apply_record(s, i, *records[i], !driver_cancelled);
    if (driver_cancelled) s.cancel("workflow cancelled", std::chrono::system_clock::now());
    return s;
}

workflow_record make_record(const std::string& id, const workflow_state& state, const task_record& driver) {
    workflow_record r;
    r.id = id;
    r.name = state.graph().name();
    r.status = state.status();
    r.created_at = driver.created_at;
    r.finished_at = driver.finished_at;
    r.tasks.reserve(state.graph().size());
    for (std::size_t i = 0; i < state.graph().size(); ++i) {
        const auto& n = state.graph().tasks()[i];
        const auto& p = state.task_at(i);
        r.tasks.push_back({n.name, task_id(id, n.name), p.state, p.result, p.reason, p.cause});
    }
    return r;
}

const workflow_task_view& workflow_record::task(std::string_view name) const {
    for (const auto& t : tasks)
        if (t.name == name) return t;
    throw invalid_argument("task", name, "no task of the workflow has this name");
}

}  // namespace orchcore::workflow
