// The runner thread: advances the workflows this process holds. Nothing
// else touches their graph state, so no lock is held while it reads records
// or submits tasks.
#include "result_refs.hpp"
#include "runner_impl.hpp"

#include <orchcore/workflow/context.hpp>
#include <orchcore/workflow/json.hpp>

namespace orchcore::workflow {

namespace {

using clock = std::chrono::system_clock;

std::string joined(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) {
        if (!out.empty()) out.push_back('\n');
        out.append(s);
    }
    return out;
}

std::vector<std::string> running_tasks(const workflow_state& s) {
    std::vector<std::string> out;
    for (const auto& n : s.graph().tasks())
        if (s.task(n.name).state == task_state::running) out.push_back(n.name);
    return out;
}

task_request request_for(const std::string& wf, const workflow_state& s, const task_node& n) {
    task_request r;
    r.type = n.type;
    r.payload = detail::substitute_results(n.payload, [&](std::string_view name) -> const std::string* {
        const auto i = s.graph().index_of(name);
        if (!i) return nullptr;
        const auto& p = s.task(name);
        return p.state == task_state::completed ? &p.result : nullptr;
    });
    auto& o = r.options;
    o.id = task_id(wf, n.name);
    o.priority = n.options.priority;
    o.tags = n.options.tags;
    o.resources = n.resources;
    o.timeout = n.options.timeout;
    o.turn_timeout = n.options.turn_timeout;
    o.max_retries = n.options.retries;
    o.metadata.emplace(meta::workflow, wf);
    o.metadata.emplace(meta::task, n.name);
    o.metadata.emplace(meta::deps, joined(n.depends_on));
    for (const auto& d : n.depends_on) o.metadata.emplace(std::string(meta::result_prefix) + d, s.task(d).result);
    if (n.is_shard()) {
        o.metadata.emplace(meta::shard_index, std::to_string(n.shard_index));
        o.metadata.emplace(meta::shard_count, std::to_string(n.shard_count));
    }
    if (n.is_aggregator()) o.metadata.emplace(meta::shards, joined(n.shards));
    return r;
}

workflow_end end_of(const workflow_state& s) {
    workflow_end e{s.status(), {}};
    const task_node* culprit = nullptr;
    for (const auto& n : s.graph().tasks()) {
        const auto& p = s.task(n.name);
        if (p.state == task_state::completed || !p.cause.empty()) continue;
        if (!culprit || (p.state != task_state::cancelled && s.task(culprit->name).state == task_state::cancelled))
            culprit = &n;
    }
    if (!culprit) {
        e.reason = "completed " + std::to_string(s.graph().size()) + " tasks";
        return e;
    }
    const auto& p = s.task(culprit->name);
    e.reason = "task '" + culprit->name + "' " + std::string(to_string(p.state));
    if (!p.reason.empty()) e.reason += ": " + p.reason;
    return e;
}

}  // namespace

void runner_impl::run() {
    auto next_sweep = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    std::unique_lock lk(m);
    for (;;) {
        cv.wait_until(lk, next_sweep, [&] { return stopping || !jobs.empty(); });
        if (stopping) return;
        auto batch = std::move(jobs);
        jobs.clear();
        lk.unlock();
        for (auto& j : batch) {
            try {
                process(j);
            } catch (const std::exception&) {
                // A backend that does not answer: the next driver turn looks again.
            }
            if (j.done) j.done->set_value();
        }
        if (std::chrono::steady_clock::now() >= next_sweep) {
            sweep();
            next_sweep = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        }
        lk.lock();
    }
}

void runner_impl::process(runner_job& j) {
    auto it = live.find(j.workflow);
    if (j.cancel) {
        if (it == live.end()) return;
        for (const auto& name : running_tasks(it->second->state)) (void)c.cancel(task_id(j.workflow, name));
        it->second->state.cancel("workflow cancelled", clock::now());
        finish(*it->second);
        return;
    }
    if (it == live.end()) {
        if (j.spec.empty()) return;  // a task of a workflow this node does not hold
        auto w = load(j.workflow, j.spec);
        advance(*w, {});
        return;
    }
    {
        std::lock_guard lk(m);
        if (auto h = held.find(j.workflow); h != held.end()) h->second.seen = std::chrono::steady_clock::now();
    }
    if (j.task.empty()) advance(*it->second, running_tasks(it->second->state));
    else advance(*it->second, {j.task});
}

std::shared_ptr<live_workflow> runner_impl::load(const std::string& id, const std::string& spec) {
    auto graph = expand(parse_workflow_json(spec, options.limits), options.limits);
    std::vector<std::optional<task_record>> records;
    records.reserve(graph.size());
    for (const auto& n : graph.tasks()) records.push_back(c.get_task(task_id(id, n.name)));
    auto w = std::make_shared<live_workflow>(id, workflow_graph{});
    w->state = rebuild(graph, records, false);
    live[id] = w;
    std::lock_guard lk(m);
    held[id] = held_workflow{};
    return w;
}

void runner_impl::advance(live_workflow& w, const std::vector<std::string>& names) {
    for (const auto& name : names) apply(w, name);
    const auto driver = c.get_status(w.id);
    if (!driver || *driver == task_status::cancelled) w.state.cancel("workflow cancelled", clock::now());
    else submit_runnable(w);
    if (w.state.finished()) finish(w);
}

// Reads a running task's record and applies its end; a failed shard has
// its running siblings cancelled (the aggregator already failed).
void runner_impl::apply(live_workflow& w, const std::string& name) {
    if (!w.state.graph().index_of(name) || w.state.task(name).state != task_state::running) return;
    const auto r = c.get_task(task_id(w.id, name));
    if (!r || !apply_record(w.state, name, *r, true)) return;
    const auto& n = w.state.graph().at(name);
    if (r->status == task_status::completed || !n.is_shard()) return;
    for (const auto& s : w.state.graph().at(n.shard_of).shards) {
        if (w.state.task(s).state == task_state::running) (void)c.cancel(task_id(w.id, s));
    }
}

void runner_impl::submit_runnable(live_workflow& w) {
    for (auto names = w.state.runnable(); !names.empty(); names = w.state.runnable()) {
        std::vector<task_request> reqs;
        reqs.reserve(names.size());
        const auto now = clock::now();
        for (const auto& name : names) {
            reqs.push_back(request_for(w.id, w.state, w.state.graph().at(name)));
            w.state.start(name, now);
        }
        std::vector<submit_result> results;
        try {
            results = c.submit_many(std::move(reqs));
        } catch (const std::exception& e) {
            for (const auto& name : names) w.state.fail(name, std::string("not admitted: ") + e.what(), now);
            continue;
        }
        bool any_failed = false;
        for (std::size_t i = 0; i < names.size(); ++i) {
            const auto& a = results[i].admission;
            if (a.accepted() || a.detail.starts_with("duplicate id")) continue;
            w.state.fail(names[i], "not admitted: " + std::string(to_string(a.reason)) + ": " + std::string(a.detail), now);
            any_failed = true;
        }
        if (!any_failed) return;
    }
}

void runner_impl::finish(live_workflow& w) {
    if (!w.state.finished()) return;
    auto end = end_of(w.state);
    const auto id = w.id;
    live.erase(id);  // w is gone from here on
    std::lock_guard lk(m);
    held[id].end = std::move(end);
}

// Forgets workflows whose driver ended or moved on to another node (their
// record is terminal or gone) after a while without a turn here.
void runner_impl::sweep() {
    const auto quiet = std::max<std::chrono::steady_clock::duration>(std::chrono::seconds(2), options.poll_interval * 20);
    std::vector<std::string> candidates;
    {
        std::lock_guard lk(m);
        const auto now = std::chrono::steady_clock::now();
        for (const auto& [id, h] : held)
            if (now - h.seen > quiet) candidates.push_back(id);
    }
    for (const auto& id : candidates) {
        const auto st = c.get_status(id);
        if (st && !is_terminal(*st)) continue;
        live.erase(id);
        std::lock_guard lk(m);
        held.erase(id);
    }
}

}  // namespace orchcore::workflow
