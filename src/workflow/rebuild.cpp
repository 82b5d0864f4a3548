#include "runner_impl.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace orchcore::workflow {

namespace {

bool deps_completed(const workflow_state& s, std::size_t i) {
    const auto& deps = s.dependencies_of(i);
    return std::all_of(deps.begin(), deps.end(),
                       [&](std::size_t d) { return s.task_at(d).state == task_state::completed; });
}

bool failed_or_timed_out(const std::optional<task_outcome>& r) {
    return r && (r->status == task_status::failed || r->status == task_status::timed_out);
}

// Of the aggregators `open`, those whose round read last had a shard fail
// or time out and that have rounds left: a later round may have run.
std::vector<std::size_t> retried(const workflow_graph& g, const workflow_records& w, std::vector<std::size_t> open) {
    std::erase_if(open, [&](std::size_t a) {
        const auto& n = g.tasks()[a];
        if (w.rounds[a] >= n.shard_rounds) return true;
        return std::none_of(n.shards.begin(), n.shards.end(),
                            [&](const std::string& s) { return failed_or_timed_out(w.records[*g.index_of(s)]); });
    });
    return open;
}

// Reads the next round of each fan-out in `open` (one batch) and takes it
// for those of which any shard has a record; returns those.
std::vector<std::size_t> read_next_round(coordinator& c, const std::string& id, const workflow_graph& g,
                                         workflow_records& w, const std::vector<std::size_t>& open) {
    std::vector<std::string> ids;
    for (const auto a : open) {
        for (const auto& s : g.tasks()[a].shards) ids.push_back(task_id(id, s, w.rounds[a] + 1));
    }
    auto records = c.get_outcomes(ids);
    std::vector<std::size_t> taken;
    std::size_t at = 0;
    for (const auto a : open) {
        const auto& shards = g.tasks()[a].shards;
        const auto first = records.begin() + static_cast<std::ptrdiff_t>(at);
        at += shards.size();
        if (std::none_of(first, first + static_cast<std::ptrdiff_t>(shards.size()), [](const auto& r) { return r.has_value(); }))
            continue;
        ++w.rounds[a];
        for (std::size_t k = 0; k < shards.size(); ++k) {
            const auto i = *g.index_of(shards[k]);
            w.records[i] = std::move(first[static_cast<std::ptrdiff_t>(k)]);
            w.rounds[i] = w.rounds[a];
        }
        taken.push_back(a);
    }
    return taken;
}

}  // namespace

// Written into a string of its exact size (one allocation, no check per part).
std::string task_id(std::string_view workflow_id, std::string_view task, std::uint32_t round) {
    char digits[10];
    std::size_t n = 0;
    if (round > 1) n = static_cast<std::size_t>(std::to_chars(digits, digits + sizeof digits, round).ptr - digits);
    std::string id(workflow_id.size() + 1 + task.size() + (n == 0 ? 0 : 2 + n), '/');
    char* at = id.data();
    if (!workflow_id.empty()) std::memcpy(at, workflow_id.data(), workflow_id.size());
    at += workflow_id.size() + 1;  // past the '/'
    if (!task.empty()) std::memcpy(at, task.data(), task.size());
    at += task.size();
    if (n != 0) {
        *at++ = '@';
        *at++ = 'r';
        std::memcpy(at, digits, n);
    }
    return id;
}

std::string task_id(std::string_view workflow_id, std::string_view task) { return task_id(workflow_id, task, 1); }

std::string node_task_id(const std::string& workflow, const workflow_state& s, const task_node& n) {
    return task_id(workflow, n.name, n.is_shard() ? s.round(n.name) : 1);
}

workflow_records read_records(coordinator& c, const std::string& id, const workflow_graph& graph) {
    workflow_records w{{}, std::vector<std::uint32_t>(graph.size(), 1)};
    std::vector<std::string> ids;
    ids.reserve(graph.size());
    std::vector<std::size_t> open;  // fan-outs that may have run more than one round
    for (std::size_t i = 0; i < graph.size(); ++i) {
        const auto& n = graph.tasks()[i];
        ids.push_back(task_id(id, n.name));
        if (n.is_aggregator() && n.shard_rounds > 1) open.push_back(i);
    }
    w.records = c.get_outcomes(ids);  // one round trip
    w.first_ids = std::move(ids);
    while (!(open = retried(graph, w, std::move(open))).empty()) open = read_next_round(c, id, graph, w, open);
    return w;
}

bool apply_record(workflow_state& state, const std::string& name, const task_outcome& r, bool apply_cancel) {
    const auto i = state.graph().index_of(name);
    if (!i) throw invalid_argument("task", name, "no task of the workflow has this name");
    return apply_record(state, *i, r, apply_cancel);
}

bool apply_record(workflow_state& state, std::size_t i, const task_outcome& r, bool apply_cancel) {
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

std::vector<std::uint32_t> latest_rounds(coordinator& c, const std::string& id, const workflow_graph& graph) {
    const auto& tasks = graph.tasks();
    if (std::none_of(tasks.begin(), tasks.end(), [](const task_node& n) { return n.shard_rounds > 1; }))
        return std::vector<std::uint32_t>(graph.size(), 1);
    return read_records(c, id, graph).rounds;
}

// Every task with a record has had its dependencies completed (it is
// submitted only then), so all are started first and completions applied
// in graph order; unsuccessful ends are applied after, in the order they
// happened, so that a failed shard does not cancel siblings that did run.
workflow_state rebuild(std::shared_ptr<const workflow_graph> graph, const workflow_records& r, bool driver_cancelled) {
    workflow_state s(std::move(graph));
    const auto& records = r.records;
    for (std::size_t i = 0; i < s.graph().size(); ++i) {
        const auto& n = s.graph().tasks()[i];
        if (n.is_aggregator() && r.rounds[i] > 1) s.restore_round(n.name, r.rounds[i]);
    }
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
    // A shard's failure that started a new round leaves the round's other
    // shards pending: their ends belong to the old round.
    for (const auto i : unsuccessful) {
        if (s.task_at(i).state == task_state::running) apply_record(s, i, *records[i], !driver_cancelled);
    }
    if (driver_cancelled) s.cancel("workflow cancelled", std::chrono::system_clock::now());
    return s;
}

// A failure's downstream fails the same way in a rebuild (the same walk
// from the same task); with two failures, which one a task downstream of
// both names as its cause depends on the order they are applied in, which
// a rebuild takes from the records' times. A failed shard ends its round
// (its pending siblings cancelled), which a rebuild reads otherwise.
bool rebuilds_the_same(const workflow_state& s) {
    if (!s.finished() || s.count(task_state::cancelled) != 0) return false;
    if (s.count(task_state::completed) == s.graph().size()) return true;
    std::size_t origins = 0;
    for (std::size_t i = 0; i < s.graph().size(); ++i) {
        const auto& p = s.task_at(i);
        if (p.state == task_state::completed || !p.cause.empty()) continue;
        if (s.graph().tasks()[i].is_shard() || ++origins > 1) return false;
    }
    return true;
}

workflow_record make_record(const std::string& id, const workflow_state& state, const task_outcome& driver,
                            std::vector<std::string> first_ids) {
    const bool ids_given = first_ids.size() == state.graph().size();
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
        auto& t = r.tasks.emplace_back();
        t.name = n.name;
        const bool first_round = ids_given && (!n.is_shard() || state.round(n.name) == 1);
        t.id = first_round ? std::move(first_ids[i]) : node_task_id(id, state, n);
        t.state = p.state;
        if (!p.result.empty()) t.result = p.result;
        if (!p.reason.empty()) t.reason = p.reason;
        if (!p.cause.empty()) t.cause = p.cause;
    }
    return r;
}

const workflow_task_view& workflow_record::task(std::string_view name) const {
    for (const auto& t : tasks)
        if (t.name == name) return t;
    throw invalid_argument("task", name, "no task of the workflow has this name");
}

}  // namespace orchcore::workflow
