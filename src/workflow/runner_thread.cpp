// Advancing the workflows this process holds: the runner thread, or a
// thread told that a task ended (runner.cpp), whichever holds the claim
// `busy`. Nothing else touches their graph state, so no lock is held while
// it reads records or submits tasks.
#include "result_refs.hpp"
#include "runner_impl.hpp"
#include "task_meta.hpp"

#include <orchcore/workflow/context.hpp>
#include <orchcore/workflow/json.hpp>

#include <boost/container/small_vector.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <map>
#include <optional>
#include <span>
#include <string_view>

namespace orchcore::workflow {

namespace {

using clock = std::chrono::system_clock;

std::vector<std::size_t> running_tasks(const workflow_state& s) {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < s.graph().size(); ++i)
        if (s.task_at(i).state == task_state::running) out.push_back(i);
    return out;
}

std::string payload_for(const workflow_state& s, const task_node& n) {
    if (n.result_refs.empty()) return n.payload;
    return detail::substitute_results(n.payload, [&](std::string_view name) -> const std::string* {
        const auto i = s.graph().index_of(name);
        if (!i) return nullptr;
        const auto& p = s.task_at(*i);
        return p.state == task_state::completed ? &p.result : nullptr;
    });
}

// Fills the request for task i in place (in the batch: nothing is moved
// after); copies only the options a task has.
void fill_request(task_request& r, const std::string& wf, const workflow_state& s, std::size_t i) {
    const auto& n = s.graph().tasks()[i];
    r.type = n.type;
    r.payload = payload_for(s, n);
    auto& o = r.options;
    o.id = node_task_id(wf, s, n);
    o.priority = n.options.priority;
    if (!n.options.tags.empty()) o.tags = n.options.tags;
    if (n.resources != resource_request{}) o.resources = n.resources;
    if (!n.options.session.empty()) o.session = n.options.session;
    o.timeout = n.options.timeout;
    o.turn_timeout = n.options.turn_timeout;
    o.max_retries = n.options.retries;
    const auto& deps = s.dependencies_of(i);
    const detail::task_meta_fields f{.workflow = wf,
                                     .task = n.name,
                                     .shard_index = n.shard_index,
                                     .shard_count = n.is_shard() ? n.shard_count : 0,
                                     .dependencies = n.depends_on,
                                     .shards = n.shards};
    o.metadata.emplace(meta::block, detail::encode_task_meta(f, [&](std::size_t k) -> const std::string& {
                           return s.task_at(deps[k]).result;
                       }));
}

workflow_end end_of(const workflow_state& s) {
    workflow_end e{s.status(), {}};
    std::optional<std::size_t> culprit;
    for (std::size_t i = 0; i < s.graph().size(); ++i) {
        const auto& p = s.task_at(i);
        if (p.state == task_state::completed || !p.cause.empty()) continue;
        if (!culprit || (p.state != task_state::cancelled && s.task_at(*culprit).state == task_state::cancelled))
            culprit = i;
    }
    if (!culprit) {
        e.reason = "completed " + std::to_string(s.graph().size()) + " tasks";
        return e;
    }
    const auto& p = s.task_at(*culprit);
    e.reason = "task '" + s.graph().tasks()[*culprit].name + "' " + std::string(to_string(p.state));
    if (!p.reason.empty()) e.reason += ": " + p.reason;
    return e;
}

// Jobs about ended tasks of one workflow are merged (one batch read of
// their records); the others keep their order.
std::vector<runner_job> coalesced(std::deque<runner_job>& batch) {
    std::vector<runner_job> out;
    out.reserve(batch.size());
    std::map<std::string, std::size_t, std::less<>> merged;  // workflow -> its job of ended tasks in out
    for (auto& j : batch) {
        if (j.task.empty()) {
            out.push_back(std::move(j));
            continue;
        }
        const auto [it, fresh] = merged.try_emplace(j.workflow, out.size());
        if (fresh) out.push_back({.workflow = j.workflow});
        add_task_names(out[it->second].task, j.task);
    }
    return out;
}

// The indices of the tasks named in `s` (one a line); unknown names are skipped.
std::vector<std::size_t> indices_of(const workflow_graph& g, std::string_view s) {
    std::vector<std::size_t> out;
    for (std::size_t at = 0; at < s.size();) {
        const auto end = s.find('\n', at);
        if (const auto i = g.index_of(s.substr(at, end - at))) out.push_back(*i);
        at = end == std::string_view::npos ? s.size() : end + 1;
    }
    return out;
}

}  // namespace

// The runner thread: the jobs queued while no other thread advances
// workflows (driver turns, cancellations; in distributed mode, ends of
// tasks), drivers left to promote, the sweep.
void runner_impl::run() {
    const auto sweep_every = std::chrono::seconds(1);
    auto next_sweep = std::chrono::steady_clock::now() + sweep_every;
    bool retry_soon = false;  // drivers are left to promote: tried again shortly
    std::unique_lock lk(m);
    for (;;) {
        auto wake = next_sweep;
        if (retry_soon) wake = std::min(wake, std::chrono::steady_clock::now() + std::chrono::milliseconds(2));
        cv.wait_until(lk, wake,
                      [&] { return stopping || (!busy && (!jobs.empty() || !outcomes.empty() || promote_due)); });
        if (stopping) return;
        if (busy) {
            // Timed out while another thread advances workflows: it takes the jobs.
            next_sweep = std::max(next_sweep, std::chrono::steady_clock::now() + std::chrono::milliseconds(2));
            continue;
        }
        busy = true;
        busy_owner = std::this_thread::get_id();
        promote_due = false;
        drain(lk);
        lk.unlock();
        promote_drivers();
        if (std::chrono::steady_clock::now() >= next_sweep) {
            sweep();
            next_sweep = std::chrono::steady_clock::now() + sweep_every;
        }
        retry_soon = !unpromoted.empty();
        lk.lock();
        release(lk, false);
    }
}

// Lock held, `busy` claimed: processes the ends of tasks and the jobs
// queued until none is left (those queued meanwhile by threads that found
// `busy` taken included).
void runner_impl::drain(std::unique_lock<std::mutex>& lk) {
    while ((!jobs.empty() || !outcomes.empty()) && !stopping) {
        auto batch = std::move(jobs);
        jobs.clear();
        auto ended = std::move(outcomes);
        outcomes.clear();
        lk.unlock();
        try {
            apply_outcomes(ended);
        } catch (const std::exception&) {
            // Out of memory: the next driver turn looks at the running tasks.
        }
        try {
            for (auto& j : coalesced(batch)) {
                try {
                    process(j);
                } catch (const std::exception&) {
                    // A backend that does not answer: the next driver turn looks again.
                }
                if (j.done) j.done->set_value();
            }
        } catch (const std::exception&) {
            // Out of memory merging the jobs: `busy` is still let go of.
        }
        promote_drivers();
        lk.lock();
    }
}

// Lock held: lets go of `busy`. Drivers still to promote are handed to the
// runner thread (`hand_over`: the caller is not it), which retries them.
void runner_impl::release(std::unique_lock<std::mutex>&, bool hand_over) {
    if (hand_over && !unpromoted.empty()) promote_due = true;
    busy = false;
    busy_owner = {};
    if (promote_due || stopping) cv.notify_all();
}

void runner_impl::process(runner_job& j) {
    auto it = live.find(j.workflow);
    if (j.cancel) {
        if (it == live.end()) return;
        const auto& st = it->second->state;
        for (const auto i : running_tasks(st)) (void)c.cancel(node_task_id(j.workflow, st, st.graph().tasks()[i]));
        it->second->state.cancel("workflow cancelled", clock::now());
        finish(*it->second);
        return;
    }
    if (it == live.end()) {
        // A task of a workflow this node does not hold, or a turn of one
        // that ended here (the next turn takes its end).
        if (j.spec.empty()) return;
        auto w = load(j.workflow, j.spec, j.first);
        advance(*w, {}, true);
        return;
    }
    if (j.turn) {
        turn(*it->second, false);
    } else if (j.full) {
        turn(*it->second, true);
    } else {
        advance(*it->second, indices_of(it->second->state.graph(), j.task), j.task.empty());
    }
}

namespace {

// The round in a task id's rest after the workflow's "<id>/": "<name>" is
// round 1, "<name>@r<n>" round n (0 if malformed).
std::uint32_t round_in(std::string_view rest, std::size_t at) {
    if (at == std::string_view::npos) return 1;
    std::uint32_t round = 0;
    const auto digits = rest.substr(std::min(rest.size(), at + 2));
    if (!rest.substr(at).starts_with("@r") ||
        std::from_chars(digits.data(), digits.data() + digits.size(), round).ptr != digits.data() + digits.size())
        return 0;
    return round;
}

}  // namespace

// Local mode: the ends of tasks as the coordinator told them, each applied
// to its workflow if held here and of the task's current round (an earlier
// round's end was dealt with when the round ended); the workflows touched
// then advance. A driver that ended is looked at (a cancelled one cancels
// its workflow).
void runner_impl::apply_outcomes(std::span<const finished_task> ended) {
    // Most often one task of one workflow: no allocation for these.
    boost::container::small_vector<std::shared_ptr<live_workflow>, 2> touched;
    boost::container::small_vector<std::shared_ptr<live_workflow>, 1> drivers;
    for (const auto& f : ended) {
        const auto id = std::string_view(f.id);
        const auto slash = id.find('/');
        const auto wf = id.substr(0, slash);
        auto at = std::find_if(touched.begin(), touched.end(), [&](const auto& w) { return w->id == wf; });
        if (at == touched.end()) {
            const auto it = live.find(wf);
            if (it == live.end()) continue;
            at = touched.insert(touched.end(), it->second);
        }
        auto& w = **at;
        if (slash == std::string_view::npos) {
            drivers.push_back(*at);
            continue;
        }
        const auto rest = id.substr(slash + 1);
        const auto mark = rest.find('@');
        const auto i = w.state.graph().index_of(rest.substr(0, mark));
        if (!i) continue;
        const auto& n = w.state.graph().tasks()[*i];
        if (round_in(rest, mark) == (n.is_shard() ? w.state.round(n.name) : 1)) apply(w, *i, f.outcome);
    }
    for (const auto& w : touched) {
        try {
            const bool driver_ended = std::find(drivers.begin(), drivers.end(), w) != drivers.end();
            advance(*w, {}, driver_ended);
        } catch (const std::exception&) {
            // A backend that does not answer: the next driver turn looks again.
        }
    }
}

// A driver turn on the node that holds the workflow. With finish
// notifications the records of running tasks are looked at only now and
// then, in case one was lost; without, at every turn.
void runner_impl::turn(live_workflow& w, bool full) {
    const auto now = std::chrono::steady_clock::now();
    {
        std::lock_guard lk(m);
        if (auto h = held.find(w.id); h != held.end()) h->second.seen = now;
    }
    const auto every = std::max<std::chrono::steady_clock::duration>(std::chrono::seconds(1), options.poll_interval);
    if (!full && notified && now - w.full_look < every) return;
    w.full_look = now;
    advance(w, running_tasks(w.state), true);
}

// The graph state from the tasks' records; on the driver's first turn there
// are none to read.
std::shared_ptr<live_workflow> runner_impl::load(const std::string& id, const std::string& spec, bool first) {
    const auto graph = graph_of(spec);
    auto w = std::make_shared<live_workflow>(id, graph);
    finals.erase(id, nullptr);  // a workflow of this id ended here before: this is another one
    if (!first) w->state = rebuild(graph, read_records(c, id, *graph), false);
    live[id] = w;
    std::lock_guard lk(m);
    held[id] = held_workflow{};
    return w;
}

// Applies the ends of tasks `ended`; looks at the driver's status when told to
// (or always, without finish notifications to tell when it ended), then
// submits what became runnable.
void runner_impl::advance(live_workflow& w, std::vector<std::size_t> ended, bool check_driver) {
    apply_ended(w, std::move(ended));
    if (check_driver || !notified) {
        const auto driver = c.get_status(w.id);
        if (!driver || *driver == task_status::cancelled) w.state.cancel("workflow cancelled", clock::now());
    }
    if (!w.state.finished()) submit_runnable(w);
    if (w.state.finished()) finish(w);
}

// Reads the records of the running tasks among `ended` in one batch and
// applies their ends.
void runner_impl::apply_ended(live_workflow& w, std::vector<std::size_t> ended) {
    // A task may be named twice (a notification and a look).
    std::sort(ended.begin(), ended.end());
    ended.erase(std::unique(ended.begin(), ended.end()), ended.end());
    std::erase_if(ended, [&](std::size_t i) { return w.state.task_at(i).state != task_state::running; });
    if (ended.empty()) return;
    std::vector<std::string> ids;
    ids.reserve(ended.size());
    for (const auto i : ended) ids.push_back(node_task_id(w.id, w.state, w.state.graph().tasks()[i]));
    const auto records = c.get_outcomes(ids);
    for (std::size_t k = 0; k < ended.size(); ++k)
        if (records[k]) apply(w, ended[k], *records[k]);
}

// Applies a task's end. A shard that did not complete ends its round: the
// round's shards still running are cancelled, whether the state starts a
// new round (submitted after this) or failed the aggregator.
void runner_impl::apply(live_workflow& w, std::size_t i, const task_outcome& r) {
    if (w.state.task_at(i).state != task_state::running) return;
    const auto& n = w.state.graph().tasks()[i];
    std::vector<std::string> round;  // the ids of the round's running shards
    if (n.is_shard() && r.status != task_status::completed && is_terminal(r.status)) {
        for (const auto& s : w.state.graph().at(n.shard_of).shards) {
            if (s != n.name && w.state.task(s).state == task_state::running)
                round.push_back(node_task_id(w.id, w.state, w.state.graph().at(s)));
        }
    }
    if (!apply_record(w.state, i, r, true)) return;
    for (const auto& id : round) (void)c.cancel(id);
}

// The runnable tasks go in chunks, each admitted (and its tasks offered to
// the workers) before the next is built: the first tasks of a wide fan-out
// start while the rest are still being submitted. Chunks grow from
// first_chunk to max_chunk, so a wide fan-out still goes in few calls.
namespace {
constexpr std::size_t first_chunk = 32;
constexpr std::size_t max_chunk = 512;
}  // namespace

void runner_impl::submit_runnable(live_workflow& w) {
    // A task not admitted ends (its fan-out fails, or starts a new round):
    // what is runnable is looked at again.
    auto& ready = w.ready;
    for (w.state.runnable_indices(ready); !ready.empty(); w.state.runnable_indices(ready)) {
        bool all_admitted = true;
        std::size_t chunk = 0;
        for (std::size_t from = 0; all_admitted && from < ready.size(); from += chunk) {
            chunk = std::min(from == 0 ? first_chunk : 2 * chunk, max_chunk);
            chunk = std::min(chunk, ready.size() - from);
            all_admitted = submit_chunk(w, std::span<const std::size_t>(ready).subspan(from, chunk));
        }
        if (all_admitted) return;
    }
}

// Submits the tasks `part`; whether all were admitted. A submission that
// throws fails them all. A task is ended only while it is still running:
// an earlier end may have started a new round or failed the fan-out.
bool runner_impl::submit_chunk(live_workflow& w, std::span<const std::size_t> part) {
    std::vector<task_request> reqs(part.size());
    const auto now = clock::now();
    for (std::size_t k = 0; k < part.size(); ++k) {
        fill_request(reqs[k], w.id, w.state, part[k]);
        w.state.start_at(part[k], now);
    }
    const auto fail = [&](std::size_t i, const std::string& why) {
        if (w.state.task_at(i).state != task_state::running) return;
        w.state.end_at(i, task_state::failed, "not admitted: " + why, now);
        w.unrecorded_end = true;
    };
    std::vector<submit_result> results;
    try {
        results = c.submit_many(std::move(reqs));
    } catch (const std::exception& e) {
        for (const auto i : part) fail(i, e.what());
        return false;
    }
    bool all_admitted = true;
    for (std::size_t k = 0; k < part.size(); ++k) {
        const auto& a = results[k].admission;
        if (a.accepted() || a.detail.starts_with("duplicate id")) continue;
        fail(part[k], std::string(to_string(a.reason)) + ": " + std::string(a.detail));
        all_admitted = false;
    }
    return all_admitted;
}

void runner_impl::finish(live_workflow& w) {
    if (!w.state.finished()) return;
    auto end = end_of(w.state);
    keep_final_state(w);
    const auto id = w.id;
    live.erase(id);  // w is gone from here on
    {
        std::lock_guard lk(m);
        held[id].end = std::move(end);
    }
    unpromoted.emplace_back(id, std::chrono::steady_clock::now() + options.poll_interval);
}

namespace {

// The tasks whose records expire first (of each end a task can have a
// record of, the task that ended first), and the shards of the earlier
// rounds of a fan-out (a rebuild reads a round only after a shard failed in
// the one before).
std::vector<std::string> witnesses_of(const std::string& wf, const workflow_state& s) {
    std::array<std::optional<std::size_t>, 3> first;  // completed, failed, timed out
    std::vector<std::string> out;
    for (std::size_t i = 0; i < s.graph().size(); ++i) {
        const auto& n = s.graph().tasks()[i];
        if (n.is_aggregator()) {
            const auto rounds = s.round(n.name);
            for (std::uint32_t r = 1; r < rounds; ++r)
                for (const auto& shard : n.shards) out.push_back(task_id(wf, shard, r));
        }
        const auto& p = s.task_at(i);
        if (!p.cause.empty() || !p.finished_at) continue;
        const auto k = p.state == task_state::completed ? 0 : p.state == task_state::failed ? 1 : 2;
        if (!first[k] || *p.finished_at < *s.task_at(*first[k]).finished_at) first[k] = i;
    }
    for (const auto& i : first)
        if (i) out.push_back(node_task_id(wf, s, s.graph().tasks()[*i]));
    return out;
}

}  // namespace

// The final state of a workflow that ended here, for reading its record
// (runner_impl::final_record), unless a rebuild from the records would
// tell otherwise. Moves the state out of `w`, which is about to go.
void runner_impl::keep_final_state(live_workflow& w) {
    if (w.unrecorded_end || !rebuilds_the_same(w.state)) return;
    try {
        const auto driver = c.get_outcomes(std::span<const std::string>(&w.id, 1));
        if (!driver[0]) return;
        auto witnesses = witnesses_of(w.id, w.state);
        finals.put(w.id, std::make_shared<const final_state>(
                             final_state{std::move(w.state), driver[0]->created_at, std::move(witnesses)}));
    } catch (const std::exception&) {
        // A backend that does not answer: the record is read from the task records.
    }
}

// Now and then, drops the final states of workflows whose driver's record is
// gone (expired) or is another one (the id was used again), so that they do
// not hold their results until pushed out. (A read checks the driver itself.)
void runner_impl::sweep_finals() {
    const auto now = std::chrono::steady_clock::now();
    if (now < finals_due) return;
    finals_due = now + std::chrono::seconds(10);
    const auto kept = finals.entries();
    if (kept.empty()) return;
    std::vector<std::string> ids;
    ids.reserve(kept.size());
    for (const auto& e : kept) ids.push_back(e.first);
    const auto drivers = c.get_outcomes(ids);
    for (std::size_t k = 0; k < kept.size(); ++k)
        if (!drivers[k] || drivers[k]->created_at != kept[k].second) finals.erase(ids[k], nullptr);
}

// The driver of a workflow that ended is made due at once (its next turn
// takes the end) instead of at its next poll. A driver whose turn was
// running at that moment is not delayed yet: it is tried again.
void runner_impl::promote_drivers() {
    const auto now = std::chrono::steady_clock::now();
    std::erase_if(unpromoted, [&](const auto& p) {
        if (now >= p.second) return true;
        {
            std::lock_guard lk(m);
            const auto h = held.find(p.first);
            if (h == held.end() || !h->second.end) return true;  // a turn took the end already
        }
        try {
            return c.promote(p.first);
        } catch (const std::exception&) {
            return true;  // a transport that cannot promote: the driver polls
        }
    });
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
    try {
        sweep_finals();
    } catch (const std::exception&) {
        // A backend that does not answer: tried again at the next sweep.
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
