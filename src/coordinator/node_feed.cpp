// Distributed mode: leasing tasks into free slots.
#include "coordinator_impl.hpp"

namespace orchcore::detail {

// feed() on the node's I/O threads (from a worker thread or a submitter).
void coordinator_impl::kick_feed() {
    {
        std::lock_guard lk(mu);
        if (stopping) return;
        if (feeding) {
            feed_again = true;
            return;
        }
        ++io_inflight;  // stop() waits for the posted feed
    }
    asio::post(*io, [this] {
        feed();
        effects fx;
        {
            std::lock_guard lk(mu);
            if (io_inflight > 0) --io_inflight;
            fx.wake_waiters = true;
        }
        apply(fx);
    });
}

// Leases up to the free local slots and starts what fits. Any thread;
// one at a time: a thread that finds a feed under way asks it for
// another round instead (so slots freed meanwhile are leased together,
// in one round trip, and a lone task still starts at once).
void coordinator_impl::feed() {
    {
        std::lock_guard lk(mu);
        if (feeding) {
            feed_again = true;
            return;
        }
        feeding = true;
        feed_again = false;
    }
    for (;;) {
        try {
            for (int round = 0; round < 8; ++round)
                if (!feed_once()) break;
        } catch (...) {
            std::lock_guard lk(mu);
            feeding = false;
            throw;
        }
        std::lock_guard lk(mu);
        if (!feed_again) {
            feeding = false;
            return;
        }
        feed_again = false;
    }
}

// One lease round trip; true if it filled every slot it asked for (so
// another round may find more).
bool coordinator_impl::feed_once() {
    std::size_t n = 0;
    {
        std::lock_guard lk(mu);
        if (!dist() || stopping || workers.empty()) return false;
        n = std::min(free_slots(), opt.lease_batch);
        if (n == 0) return false;
        leasing += n;
        ++io_inflight;
    }
    std::vector<transport_lease> got;
    bool failed = false;
    try {
        got = tp->lease(node, n, opt.lease_duration, wall::now());
    } catch (const std::exception&) {
        failed = true;
    }
    {
        std::lock_guard lk(mu);
        leasing -= n - got.size();
        counters.leased += got.size();
        if (failed) ++counters.backend_errors;
        if (got.empty()) {
            poll_backoff = std::clamp(poll_backoff * 2, tick, std::chrono::milliseconds(50));
            next_poll = deadline_after(poll_backoff);
            if (io_inflight > 0) --io_inflight;
            done_cv.notify_all();
            return false;
        }
        poll_backoff = std::chrono::milliseconds(0);
        next_poll = steady::now();
    }

    // Read each record and settle the tasks that must not run.
    struct candidate {
        transport_lease l;
        task_record rec;
    };
    std::vector<candidate> cands;
    std::vector<dist_op> ops;
    std::size_t dropped = 0, errors = 0;
    // The records, in one round trip.
    std::vector<std::optional<task_record>> recs;
    try {
        std::vector<std::string> ids;
        ids.reserve(got.size());
        for (const auto& l : got) ids.push_back(l.task_id);
        recs = store->get_many(ids);
    } catch (const std::exception&) {
        recs.clear();  // the leases expire; the tasks run again
        errors += got.size();
        dropped += got.size();
    }
    std::vector<lease_ref> finished_already;
    for (std::size_t i = 0; i < recs.size(); ++i) {
        auto& l = got[i];
        auto& rec = recs[i];
        if (!rec || is_terminal(rec->status)) {
            finished_already.push_back({l.task_id, l.token});  // just leave the queue
            ++dropped;
            continue;
        }
        const bool cancel_marked = rec->metadata.count(cancel_key) > 0;
        const bool past_deadline = rec->timeout.count() > 0 && saturating_add(rec->created_at, rec->timeout) <= wall::now();
        if (cancel_marked || past_deadline) {
            dist_op op;
            op.rec = *rec;
            op.expected = rec->status;
            op.rec.status = cancel_marked ? task_status::cancelled : task_status::timed_out;
            op.rec.metadata.erase(cancel_key);
            op.rec.finished_at = wall::now();
            op.rec.error = cancel_marked ? "cancelled" : "task timeout while waiting";
            op.token = l.token;
            op.held_until = l.deadline;
            op.ev = cancel_marked ? event_kind::task_cancelled : event_kind::task_timed_out;
            op.detail = op.rec.error;
            ops.push_back(std::move(op));
            ++dropped;
            continue;
        }
        cands.push_back({l, std::move(*rec)});
    }
    if (!finished_already.empty()) {
        try {
            (void)tp->ack_many(finished_already);
        } catch (const std::exception&) {
            ++errors;  // the leases expire and are dropped next time
        }
    }

    // Phase 1 (locked): pick a worker for each, take the slot.
    struct started {
        transport_lease l;
        task_record rec;  // as written (running)
        task_status observed;
        std::shared_ptr<attempt_state> a;
        launch ln;
    };
    std::vector<started> starts;
    std::vector<transport_lease> handback;
    {
        std::lock_guard lk(mu);
        leasing -= got.size();
        counters.backend_errors += errors;
        io_inflight += ops.size();
        for (auto& c : cands) {
            const bool has_handler = handlers.count(c.rec.type) || async_handlers.count(c.rec.type);
            worker_entry* w = (stopping || !has_handler) ? nullptr : pick_worker(c.rec.tags);
            if (!w) {
                handback.push_back(c.l);
                continue;
            }
            started st;
            st.l = c.l;
            st.observed = c.rec.status;
            st.a = start_attempt_dist(std::move(c.rec), c.l, *w, st.ln);
            st.rec = tasks.at(st.l.task_id).rec;
            starts.push_back(std::move(st));
        }
        counters.released += handback.size();
    }
    run_ops(ops);

    // Phase 2 (unlocked): record the starts (one pipeline; a change the
    // store refuses is retried alone); hand back what cannot run here.
    std::vector<bool> ok(starts.size(), false);
    {
        std::vector<task_record> rs;
        std::vector<task_status> expected;
        rs.reserve(starts.size());
        expected.reserve(starts.size());
        for (const auto& st : starts) {
            rs.push_back(st.rec);
            expected.push_back(st.observed);
        }
        try {
            if (!rs.empty()) ok = store->update_many(rs, expected);
        } catch (const std::exception&) {
            ok.assign(starts.size(), false);
        }
    }
    std::vector<lease_ref> not_started;
    for (std::size_t i = 0; i < starts.size(); ++i) {
        if (ok[i]) continue;
        try {
            ok[i] = owner_write(starts[i].rec, starts[i].observed);
            if (!ok[i]) not_started.push_back({starts[i].l.task_id, starts[i].l.token});  // finished meanwhile
        } catch (const std::exception&) {
            ok[i] = false;
            std::lock_guard lk(mu);
            ++counters.backend_errors;
        }
    }
    if (!not_started.empty()) {
        try {
            (void)tp->ack_many(not_started);
        } catch (const std::exception&) {
            std::lock_guard lk(mu);
            ++counters.backend_errors;
        }
    }
    for (auto& l : handback) {
        try {
            // A short delay lets the head of the queue move on to nodes
            // that can run it.
            tp->nack(l.task_id, l.token, std::max(tick * 5, std::chrono::milliseconds(20)), wall::now());
        } catch (const std::exception&) {
            std::lock_guard lk(mu);
            ++counters.backend_errors;
        }
    }

    // Phase 3 (locked): launch what was recorded; undo the rest.
    effects fx;
    std::size_t launched = 0;
    {
        std::lock_guard lk(mu);
        for (std::size_t i = 0; i < starts.size(); ++i) {
            auto& st = starts[i];
            auto it = tasks.find(st.l.task_id);
            const bool current = it != tasks.end() && it->second.attempt == st.a;
            if (ok[i] && current) {
                emit(make_event_rec(event_kind::task_started, st.rec));
                fx.launches.push_back(std::move(st.ln));
                ++launched;
                continue;
            }
            // Not run: give the slot back.
            if (auto wit = workers.find(st.a->worker_id); wit != workers.end()) {
                if (std::erase(wit->second.running, st.a) > 0) {
                    if (wit->second.busy > 0) --wit->second.busy;
                    if (running_count > 0) --running_count;
                }
            }
            if (counters.started > 0) --counters.started;
            if (current) tasks.erase(it);
        }
        if (io_inflight > 0) --io_inflight;
        fx.wake_waiters = true;
    }
    apply(fx);
    return launched > 0 && got.size() == n;
}

// Lock held. Registers a local attempt of a leased task on `w`.
std::shared_ptr<attempt_state> coordinator_impl::start_attempt_dist(task_record rec, const transport_lease& l, worker_entry& w,
                                                  launch& ln) {
    const auto now = steady::now();
    task_entry t;
    t.rec = std::move(rec);
    if (t.rec.status == task_status::running) ++t.rec.worker_losses;  // recovered, record not yet put back
    t.rec.status = task_status::running;
    t.rec.metadata.erase(cancel_key);
    t.where = location::running;
    ++t.rec.attempts;
    ++counters.started;
    if (!t.rec.started_at) t.rec.started_at = wall::now();
    t.rec.worker_id = w.w->id();
    t.token = l.token;
    t.held_until = l.deadline;
    t.next_renew = saturating_add(now, renew_every);
    if (t.rec.timeout.count() > 0)
        t.deadline = saturating_add(now, saturating_add(t.rec.created_at, t.rec.timeout) - wall::now());
    auto a = std::make_shared<attempt_state>();
    a->c = this;
    a->id = t.rec.id;
    a->type = t.rec.type;
    a->payload = t.rec.payload;
    a->metadata = t.rec.metadata;
    a->worker_id = w.w->id();
    a->attempt = t.rec.attempts;
    a->turn = t.rec.turns;
    a->token = l.token;
    t.attempt = a;
    auto turn_timeout = t.rec.turn_timeout.count() > 0 ? t.rec.turn_timeout : w.w->options().task_timeout;
    if (turn_timeout.count() > 0) t.turn_deadline = saturating_add(now, turn_timeout);
    ++w.busy;
    w.running.push_back(a);
    ++running_count;
    ln = launch{w.w, a, nullptr, nullptr};
    if (auto it = async_handlers.find(t.rec.type); it != async_handlers.end()) {
        a->strand.emplace(asio::make_strand(w.w->executor()));
        if (w.w->on_user_executor()) a->keep_alive = shared_from_this();
        ln.async = it->second;
    } else {
        ln.sync = handlers.at(t.rec.type);
    }
    tasks.insert_or_assign(t.rec.id, std::move(t));
    return a;
}

}  // namespace orchcore::detail
