// Distributed mode: leasing tasks into free local slots (feed).
#include "node_engine.hpp"

#include <algorithm>
#include <utility>

namespace orchcore::detail {

// feed() on the node's I/O threads (from a worker thread or a submitter).
// No thread is woken for a feed that would find no room (every free slot
// taken, or reserved by a lease call in flight): note_no_room does what
// that feed would, and whoever frees a slot next asks for its lease.
void node_engine::kick_feed() {
    {
        std::lock_guard lk(c.mu);
        if (c.stopping) return;
        if (feeds.running()) {
            (void)feeds.request();  // the feed under way leases once more
            return;
        }
        if (lease_round::to_ask(c.free_slots(), leasing, nopt.lease_batch) == 0) {
            note_no_room();
            return;
        }
        ++io_inflight;  // stop() waits for the posted feed
    }
    asio::post(io, [this] {
        feed();
        effects fx;
        {
            std::lock_guard lk(c.mu);
            if (io_inflight > 0) --io_inflight;
            fx.wake_waiters = true;
        }
        c.apply(fx);
    });
}

// Leases up to the free local slots and starts what fits. Any thread;
// one at a time: a thread that finds a feed under way asks it for
// another round instead (so slots freed meanwhile are leased together,
// in one round trip, and a lone task still starts at once).
void node_engine::feed() {
    {
        std::lock_guard lk(c.mu);
        if (!feeds.request()) return;
    }
    carry_out_run(c.mu, feeds, [this] {
        for (int round = 0; round < 8; ++round)
            if (!path->feed_once()) break;
    });
}

// One lease round trip; true if it filled every slot it asked for (so
// another round may find more).
bool node_engine::feed_once() {
    std::size_t n = 0;
    auto got = take_leases(n);
    if (!got) return false;
    const std::size_t launched = feed_leased(*got);
    return lease_round::another_round(n, got->size(), launched);
}

// Starts leased tasks (their slots reserved in `leasing`, one io_inflight
// held for the round): reads their records, settles those that must not
// run, records the starts and launches them. How many were launched.
std::size_t node_engine::feed_leased(std::vector<transport_lease>& got) {
    // Read each record and settle the tasks that must not run.
    std::vector<dist_op> ops;
    std::size_t errors = 0;
    auto cands = read_leased(got, ops, errors);
    // Locked: pick a worker for each, take the slot.
    std::vector<transport_lease> handback;
    auto starts = place_leased(cands, got.size(), errors, ops, handback);
    run_ops(ops);
    // Unlocked: record the starts; hand back what cannot run here.
    const auto ok = record_starts(starts, handback);
    // Locked: launch what was recorded; undo the rest.
    return launch_recorded(starts, ok);
}

// Leases up to the free local slots (`n`: how many were asked for). Empty:
// nothing to lease, or nothing leased (the next poll backs off).
std::optional<std::vector<transport_lease>> node_engine::take_leases(std::size_t& n) {
    {
        std::lock_guard lk(c.mu);
        if (c.stopping || c.workers.empty()) return std::nullopt;
        n = lease_round::to_ask(c.free_slots(), leasing, nopt.lease_batch);
        if (n == 0) {
            note_no_room();
            return std::nullopt;
        }
        leasing += n;
        ++io_inflight;
    }
    std::vector<transport_lease> got;
    bool failed = false;
    try {
        got = tp->lease(c.node, n, nopt.lease_duration, wall::now());
    } catch (const std::exception&) {
        failed = true;
    }
    std::unique_lock lk(c.mu);
    leasing -= n - got.size();
    c.counters.leased += got.size();
    if (failed) ++c.counters.backend_errors;
    const bool again = leased_round(n, got.size());
    if (got.empty()) {
        if (io_inflight > 0) --io_inflight;
        c.done_cv.notify_all();
        lk.unlock();
        if (again) kick_feed();
        return std::nullopt;
    }
    lk.unlock();
    if (again) kick_feed();
    return got;
}

// Lock held. A lease was wanted and every free slot is reserved by lease
// calls in flight (none free: the next finish leases anyway).
void node_engine::note_no_room() {
    if (leasing > 0) lease_deferred = true;
}

// Lock held. A lease call asked for `asked` and got `granted`. Fewer than
// asked: the queue ran dry with slots still free, so the node waits for
// work (the waker leases as soon as some is admitted); the poll on the
// tick is only the safety net. All granted: the next tick may lease more.
// True: a lease was wanted while this call was in flight (the call may
// have missed what woke it), so the caller leases again (kick_feed, with
// no lock held) instead of waiting.
bool node_engine::leased_round(std::size_t asked, std::size_t granted) {
    poll_backoff = lease_round::next_backoff(granted, poll_backoff, c.tick_every);
    if (granted >= asked) {
        next_poll = steady::now();
        return false;
    }
    next_poll = deadline_after(std::chrono::milliseconds(1'000));
    if (c.stopping) return false;
    if (std::exchange(lease_deferred, false)) return true;
    went_idle();
    return false;
}

// The leased tasks' records, in one round trip. Those finished already
// just leave the queue; those cancelled or past their deadline while
// waiting are settled (record changes into `ops`); the rest may start.
std::vector<node_engine::candidate> node_engine::read_leased(std::vector<transport_lease>& got,
                                                           std::vector<dist_op>& ops, std::size_t& errors) {
    std::vector<std::optional<task_record>> recs;
    try {
        std::vector<std::string> ids;
        ids.reserve(got.size());
        for (const auto& l : got) ids.push_back(l.task_id);
        recs = c.store->get_many(ids);
    } catch (const std::exception&) {
        recs.clear();  // the leases expire; the tasks run again
        errors += got.size();
    }
    std::vector<candidate> cands;
    std::vector<lease_ref> finished_already;
    for (std::size_t i = 0; i < recs.size(); ++i) {
        auto& l = got[i];
        auto& rec = recs[i];
        const auto f = rec ? lease_round::read(lease_round::leased_record<wall::time_point>{
                                                   true, rec->status, rec->metadata.count(cancel_key) > 0,
                                                   rec->created_at, rec->timeout},
                                               wall::now())
                           : lease_round::fate::leave;
        if (f == lease_round::fate::leave) finished_already.push_back({l.task_id, l.token});  // just leave the queue
        else if (f == lease_round::fate::start) cands.push_back({l, std::move(*rec)});
        else ops.push_back(settle_unstarted(*rec, l, f == lease_round::fate::cancel));
    }
    if (!finished_already.empty()) {
        try {
            (void)tp->ack_many(finished_already);
        } catch (const std::exception&) {
            ++errors;  // the leases expire and are dropped next time
        }
    }
    return cands;
}

// The record change of a leased task that must not start: cancelled
// (marker) or past its whole-task deadline while it waited.
dist_op node_engine::settle_unstarted(const task_record& rec, const transport_lease& l, bool cancel_marked) const {
    dist_op op;
    op.rec = rec;
    op.expected = rec.status;
    op.rec.status = cancel_marked ? task_status::cancelled : task_status::timed_out;
    op.rec.metadata.erase(cancel_key);
    op.rec.finished_at = wall::now();
    op.rec.error = cancel_marked ? "cancelled" : "task timeout while waiting";
    op.token = l.token;
    op.held_until = l.deadline;
    op.ev = cancel_marked ? event_kind::task_cancelled : event_kind::task_timed_out;
    op.detail = op.rec.error;
    return op;
}

// Lock held. Whether a leased task's request is one no live worker of any
// node (the registry as last read, and this node's own workers) could
// ever hold, and has been for placement_wait: then it fails, rather than
// going round the queue in silence.
bool node_engine::unplaceable_for_good(const task_record& rec, steady::time_point now) {
    if (rec.resources.empty() || !registry_view) return false;
    const auto could = [&](const worker_record& w) { return registered_could_hold(w, rec.tags, rec.resources); };
    if (c.could_ever_place(rec.tags, rec.resources) ||
        std::any_of(registry_view->begin(), registry_view->end(), could)) {
        unplaceable_since.erase(rec.id);
        return false;
    }
    const auto since = unplaceable_since.try_emplace(rec.id, now).first->second;
    if (std::chrono::duration_cast<std::chrono::milliseconds>(now - since) < c.opt.placement_wait) return false;
    unplaceable_since.erase(rec.id);
    return true;
}

// The record change of a leased task no worker could ever hold: failed,
// naming the request; no attempt was counted.
dist_op node_engine::settle_unplaceable(const task_record& rec, const transport_lease& l) const {
    dist_op op;
    op.rec = rec;
    op.expected = rec.status;
    op.rec.status = task_status::failed;
    op.rec.finished_at = wall::now();
    op.rec.error = "unplaceable: no live worker could hold resources " + to_string(rec.resources) + " (waited " +
                   std::to_string(c.opt.placement_wait.count()) + "ms for one)";
    op.token = l.token;
    op.held_until = l.deadline;
    op.ev = event_kind::task_failed;
    op.detail = op.rec.error;
    return op;
}

// Locked: a worker for each candidate, its slot taken; no fitting worker
// (or no handler here): handed back.
std::vector<node_engine::started> node_engine::place_leased(std::vector<candidate>& cands, std::size_t got,
                                                          std::size_t errors, std::vector<dist_op>& ops,
                                                          std::vector<transport_lease>& handback) {
    std::vector<started> starts;
    std::lock_guard lk(c.mu);
    leasing -= got;
    c.counters.backend_errors += errors;
    io_inflight += ops.size();
    const auto now = steady::now();
    for (auto& cand : cands) {
        worker_entry* w = c.pick_worker(cand.rec.tags, cand.rec.resources, cand.rec.session);
        if (lease_round::place(c.stopping, c.has_handler(cand.rec.type), w != nullptr) != lease_round::fate::start) {
            if (!c.stopping && unplaceable_for_good(cand.rec, now)) {
                ops.push_back(settle_unplaceable(cand.rec, cand.l));
                ++io_inflight;
            } else {
                handback.push_back(cand.l);
            }
            continue;
        }
        unplaceable_since.erase(cand.rec.id);
        started st;
        st.l = cand.l;
        st.observed = cand.rec.status;
        st.a = start_attempt(std::move(cand.rec), cand.l, *w, st.ln);
        st.rec = c.tasks.at(st.l.task_id).rec;
        starts.push_back(std::move(st));
    }
    c.counters.released += handback.size();
    return starts;
}

// Unlocked: records the starts (one pipeline; a change the store refuses
// is retried alone) and hands back what cannot run here. Which starts
// were recorded.
std::vector<bool> node_engine::record_starts(std::vector<started>& starts,
                                             const std::vector<transport_lease>& handback) {
    std::vector<bool> ok(starts.size(), false);
    std::vector<task_record> rs;
    std::vector<task_status> expected;
    rs.reserve(starts.size());
    expected.reserve(starts.size());
    for (const auto& st : starts) {
        rs.push_back(st.rec);
        expected.push_back(st.observed);
    }
    try {
        if (!rs.empty()) ok = c.store->update_many(rs, expected);
    } catch (const std::exception&) {
        ok.assign(starts.size(), false);
    }
    std::size_t errors = 0;
    std::vector<lease_ref> not_started;
    for (std::size_t i = 0; i < starts.size(); ++i) {
        if (ok[i]) continue;
        try {
            ok[i] = owner_write(starts[i].rec, starts[i].observed);
            if (!ok[i]) not_started.push_back({starts[i].l.task_id, starts[i].l.token});  // finished meanwhile
        } catch (const std::exception&) {
            ok[i] = false;
            ++errors;
        }
    }
    if (!not_started.empty()) {
        try {
            (void)tp->ack_many(not_started);
        } catch (const std::exception&) {
            ++errors;
        }
    }
    for (const auto& l : handback) {
        try {
            // A short delay lets the head of the queue move on to nodes
            // that can run it.
            tp->nack(l.task_id, l.token, std::max(c.tick_every * 5, std::chrono::milliseconds(20)), wall::now());
        } catch (const std::exception&) {
            ++errors;
        }
    }
    if (errors > 0) {
        std::lock_guard lk(c.mu);
        c.counters.backend_errors += errors;
    }
    return ok;
}

// Locked: launches the recorded starts whose attempt still holds its task;
// gives the others' slots back. How many were launched.
std::size_t node_engine::launch_recorded(std::vector<started>& starts, const std::vector<bool>& ok) {
    effects fx;
    std::size_t launched = 0;
    {
        std::lock_guard lk(c.mu);
        for (std::size_t i = 0; i < starts.size(); ++i) {
            auto& st = starts[i];
            auto it = c.tasks.find(st.l.task_id);
            const bool current = it != c.tasks.end() && it->second.attempt == st.a;
            if (ok[i] && current) {
                c.emit(coordinator_impl::make_event_rec(event_kind::task_started, st.rec));
                fx.launches.push_back(std::move(st.ln));
                ++launched;
                continue;
            }
            // Not run: give the slot back.
            if (auto wit = c.workers.find(st.a->worker_id); wit != c.workers.end()) {
                if (std::erase(wit->second.running, st.a) > 0) {
                    c.release_hold(wit->second, st.a->hold);
                    if (wit->second.busy > 0) --wit->second.busy;
                    if (c.running_count > 0) --c.running_count;
                }
            }
            if (c.counters.started > 0) --c.counters.started;
            if (current) c.tasks.erase(it);
        }
        if (io_inflight > 0) --io_inflight;
        fx.wake_waiters = true;
    }
    c.apply(fx);
    return launched;
}

// Lock held. Registers a local attempt of a leased task on `w`.
// `recorded`: `rec` is the record as the node backend started it.
std::shared_ptr<attempt_state> node_engine::start_attempt(task_record rec, const transport_lease& l, worker_entry& w,
                                                          launch& ln, bool recorded) {
    const auto now = steady::now();
    task_entry t;
    t.rec = std::move(rec);
    if (!recorded) {
        if (t.rec.status == task_status::running) ++t.rec.worker_losses;  // recovered, record not yet put back
        t.rec.status = task_status::running;
        t.rec.erase_metadata(cancel_key);
        ++t.rec.attempts;
        if (!t.rec.started_at) t.rec.started_at = wall::now();
        t.rec.worker_id = w.w->id();
    }
    t.where = location::running;
    ++c.counters.started;
    t.lease() = {l.token, l.deadline, saturating_add(now, renew_every)};
    if (t.rec.timeout().count() > 0)
        t.set_deadline(saturating_add(now, saturating_add(t.rec.created_at, t.rec.timeout()) - wall::now()));
    auto a = c.new_attempt(t, w, l.token);
    c.take_slot(t, w, a, ln);
    c.tasks.insert_or_assign(std::move(t));
    return a;
}

}  // namespace orchcore::detail
