// Distributed mode: finished attempts' record changes, written as the lease holder (run_ops).
#include "node_engine.hpp"

namespace orchcore::detail {

// Writes `r` (carrying its new status) as the owner of the task:
// compare-and-set from `expected`; if the stored status is another one (a
// recoverer or a canceller got there first), moves from what is stored,
// through running if needed. False if the record is gone or terminal.
bool node_engine::owner_write(const task_record& r, task_status expected) {
    if ((expected == r.status || is_legal_transition(expected, r.status)) && c.store->update(r, expected))
        return true;
    for (int i = 0; i < 4; ++i) {
        auto cur = c.store->get(r.id);
        if (!cur || is_terminal(cur->status)) return false;
        if (cur->status == r.status || is_legal_transition(cur->status, r.status)) {
            if (c.store->update(r, cur->status)) return true;
            continue;
        }
        if (!is_legal_transition(cur->status, task_status::running)) return false;
        task_record step = r;
        step.status = task_status::running;
        step.finished_at.reset();
        c.store->update(step, cur->status);
    }
    return false;
}

// Lock held. Ends the local attempt of `t` (fencing it if its handler is
// still running) and returns the record change to carry out; the caller
// erases `t` from `tasks`.
dist_op node_engine::make_op(task_entry& t, task_status to, std::string error, std::chrono::milliseconds delay, event_kind ev,
                std::string detail, dist_op::why reason) {
    if (t.attempt) {
        c.signal_cancel(t.attempt);
        t.attempt.reset();
    }
    dist_op op;
    op.rec = t.rec;
    op.expected = t.rec.status;
    op.rec.status = to;
    op.rec.metadata.erase(cancel_key);
    if (is_terminal(to)) op.rec.finished_at = wall::now();
    if (!error.empty()) op.rec.error = std::move(error);
    op.token = t.lease().token;
    op.held_until = t.lease().held_until;
    op.delay = delay;
    op.ev = ev;
    op.detail = std::move(detail);
    op.reason = reason;
    ++io_inflight;
    return op;
}

// A failure of the backend itself (it did not answer), as opposed to a
// refusal of one item (invalid_argument: a record the store cannot
// take). Anything not from orchcore counts as the backend's.
bool node_engine::backend_failure(const std::exception& e) {
    const auto* oe = dynamic_cast<const error*>(&e);
    return oe == nullptr || oe->code() != errc::invalid_argument;
}

// Carries out record changes as the lease holder, then acks (terminal)
// or nacks (back to the queue) the leases. Outside the lock. A batch
// costs one store pipeline and one ack script, not two round trips per
// task; a change refused by the store's compare-and-set, or refused
// outright (a record the store cannot take), is retried alone, so one
// bad item never fails the others.
void node_engine::run_ops(std::vector<dist_op>& ops) {
    const std::size_t n = ops.size();
    if (n == 0) return;
    std::vector<fate> f(n, fate::pending);
    hold_leases(ops, f);
    write_batch(ops, f);
    std::vector<bool> io_error(n, false);
    settle_leases(ops, f, io_error);
    announce_written(ops, f);
    record_outcomes(ops, f, io_error);
}

// Finish notifications for the terminal records written (waits elsewhere).
void node_engine::announce_written(const std::vector<dist_op>& ops, const std::vector<fate>& f) {
    std::vector<std::string> ended;
    for (std::size_t i = 0; i < ops.size(); ++i)
        if (f[i] == fate::written && is_terminal(ops[i].rec.status)) ended.push_back(ops[i].rec.id);
    announce_finished(*tp, ended);
}

// Extends, first, the leases with less than half left.
void node_engine::hold_leases(std::vector<dist_op>& ops, std::vector<fate>& f) {
    const auto now = wall::now();
    for (std::size_t i = 0; i < ops.size(); ++i) {
        if (ops[i].held_until - now >= nopt.lease_duration / 2) continue;
        try {
            if (tp->extend(ops[i].rec.id, ops[i].token, nopt.lease_duration, now))
                ops[i].held_until = saturating_add(now, nopt.lease_duration);
            else
                f[i] = fate::not_held;
        } catch (const std::exception&) {
            f[i] = fate::failed;
        }
    }
}

// The records, in one pipeline. If the store refuses the batch for one
// item, every item is left pending, to be written alone.
void node_engine::write_batch(const std::vector<dist_op>& ops, std::vector<fate>& f) {
    std::vector<std::size_t> idx;
    std::vector<task_record> recs;
    std::vector<task_status> expected;
    for (std::size_t i = 0; i < ops.size(); ++i) {
        if (f[i] != fate::pending) continue;
        const bool legal = ops[i].expected == ops[i].rec.status ||
                           is_legal_transition(ops[i].expected, ops[i].rec.status);
        if (!legal) continue;  // owner_write sorts it out
        idx.push_back(i);
        recs.push_back(ops[i].rec);
        expected.push_back(ops[i].expected);
    }
    try {
        const auto res = c.store->update_many(recs, expected);
        for (std::size_t k = 0; k < idx.size(); ++k)
            if (res[k]) f[idx[k]] = fate::written;
    } catch (const std::exception& e) {
        if (backend_failure(e))
            for (std::size_t i : idx) f[i] = fate::failed;
    }
}

// A record the store refuses outright (not a backend failure) would be
// refused on every try: the task fails with the reason instead, without
// retries, and that is written.
node_engine::fate node_engine::write_refused(dist_op& op, const std::exception& e) {
    op.rec.status = task_status::failed;
    op.rec.result.clear();
    op.rec.finished_at = wall::now();
    op.rec.error = std::string("record refused by the store: ") + e.what();
    op.ev = event_kind::task_failed;
    op.detail = op.rec.error;
    op.reason = dist_op::why::finish;
    try {
        return owner_write(op.rec, op.expected) ? fate::written : fate::conflict;
    } catch (const std::exception&) {
        return fate::failed;
    }
}

// Writes what the batch left pending, one by one; then nacks
// (non-terminal) and acks (terminal, or settled elsewhere). After its
// record was written, a failed nack or ack leaves the outcome standing
// (counted, with the backend error): the lease expires, and whoever
// leases the task next sees the record (terminal: acked and dropped;
// queued: run again).
void node_engine::settle_leases(std::vector<dist_op>& ops, std::vector<fate>& f, std::vector<bool>& io_error) {
    std::vector<lease_ref> acks;
    std::vector<std::size_t> ack_idx;
    for (std::size_t i = 0; i < ops.size(); ++i) {
        auto& op = ops[i];
        try {
            if (f[i] == fate::pending) {
                try {
                    f[i] = owner_write(op.rec, op.expected) ? fate::written : fate::conflict;
                } catch (const std::exception& e) {
                    if (backend_failure(e)) throw;
                    f[i] = write_refused(op, e);
                }
            }
            if (f[i] == fate::written && !is_terminal(op.rec.status)) {
                tp->nack(op.rec.id, op.token, op.delay, wall::now());
            } else if (f[i] == fate::written || f[i] == fate::conflict) {
                acks.push_back({op.rec.id, op.token});
                ack_idx.push_back(i);
            }
        } catch (const std::exception&) {
            if (f[i] == fate::written) io_error[i] = true;
            else f[i] = fate::failed;  // the lease expires and the task runs again: nothing is lost
        }
    }
    try {
        (void)tp->ack_many(acks);  // false: fenced meanwhile; the record already says how it ended
    } catch (const std::exception&) {
        for (std::size_t i : ack_idx) io_error[i] = true;
    }
}

// Counts and announces what run_ops did (under the lock). A change the
// backend failed to carry out is tried again by the next ticks while
// its lease may still be held (the extension before the write says
// whether it is): a backend that is back in time records the outcome
// instead of letting the lease lapse and the task run again.
void node_engine::record_outcomes(std::vector<dist_op>& ops, const std::vector<fate>& f, const std::vector<bool>& io_error) {
    effects fx;
    {
        std::lock_guard lk(c.mu);
        const auto now = wall::now();
        for (std::size_t i = 0; i < ops.size(); ++i) {
            auto& op = ops[i];
            if (io_error[i]) ++c.counters.backend_errors;
            if (f[i] == fate::failed) {
                ++c.counters.backend_errors;
                if (!c.stopping && op.held_until > now) retry_ops.push_back(std::move(op));
            } else if (f[i] == fate::not_held) {
                c.refuse_stale(op.rec.id, op.rec.worker_id, op.rec.attempts,
                             "lease lost before the outcome could be recorded");
            } else if (f[i] == fate::conflict) {
                ++c.counters.store_conflicts;
            } else {
                count_written(op);
            }
            if (io_inflight > 0) --io_inflight;
        }
        fx.wake_waiters = true;
    }
    c.apply(fx);
}

// Lock held. A record change that was written.
void node_engine::count_written(const dist_op& op) {
    switch (op.rec.status) {
        case task_status::completed: ++c.counters.completed; break;
        case task_status::failed: ++c.counters.failed; break;
        case task_status::cancelled: ++c.counters.cancelled; break;
        case task_status::timed_out: ++c.counters.timed_out; break;
        default: break;
    }
    switch (op.reason) {
        case dist_op::why::retry:
        case dist_op::why::turn: ++c.counters.retried; break;
        case dist_op::why::lost: ++c.counters.requeued_after_worker_death; break;
        case dist_op::why::stop: ++c.counters.released; break;
        default: break;
    }
    if (op.ev == event_kind::task_continued) ++c.counters.continued;
    c.emit(c.make_event_rec(op.ev, op.rec, op.detail));
}

// Queues a finished attempt's record change: one flush at a time carries
// out everything queued, in rounds, until none is left; completions that
// arrive during a round share the next. A lone completion is carried out
// at once.
//
// Where a flush runs: `on_slot` says the caller is the task slot that ran
// the attempt (a plain handler on a worker's own threads,
// attempt_state::ends_on_slot). With a path whose flushes lease for the
// slots they free (node_path::flush_fetches), such a slot carries out the
// first round of a flush it starts itself: that round leases the slot's
// next task, which the worker queues behind this very call, so the task
// runs on the same thread with no hand-off; the slot had nothing to run
// before that round returned anyway. Any further round goes to the node's
// I/O threads, as do flushes started by any other thread, flushes of the
// plain path (its feed leases the freed slot's next task meanwhile, and
// the slot must be free to run it), and every flush after a round that met
// a backend failure, until one does not (flush_here_ok). A slot waiting
// for Redis holds nothing the node's liveness needs: heartbeats run on the
// worker's spare thread, which no plain handler takes, lease renewals on
// the control loop. A user's executor or a coroutine's strand never waits
// for Redis.
void node_engine::submit_op(dist_op op, bool on_slot) {
    {
        std::lock_guard lk(c.mu);
        pending_ops.push_back(std::move(op));
        if (!flushes.request()) return;  // the flush under way takes it in its next round
        on_slot = on_slot && flush_here_ok && path->flush_fetches();
    }
    if (on_slot) flush_here();
    else asio::post(io, [this] { flush_ops(); });
}

// The first round of a flush, on the calling thread; further rounds, if
// requests came during it, on the I/O threads.
void node_engine::flush_here() {
    try {
        flush_round();
    } catch (...) {
        std::lock_guard lk(c.mu);
        flushes.abandon();
        throw;
    }
    {
        std::lock_guard lk(c.mu);
        if (!flushes.round_done()) return;
    }
    asio::post(io, [this] { flush_ops(); });
}

// The rounds of a flush started (flushes.request()) by the caller.
void node_engine::flush_ops() {
    carry_out_run(c.mu, flushes, [this] { flush_round(); });
}

// One round: everything pending, in one batch. Every request of a flush
// comes with an op, so a round owed means ops are pending. Whether the
// round met a backend failure (of its own, or of any other call meanwhile)
// decides where the next flushes run.
void node_engine::flush_round() {
    std::vector<dist_op> batch;
    std::uint64_t errors = 0;
    {
        std::lock_guard lk(c.mu);
        batch.swap(pending_ops);
        errors = c.counters.backend_errors;
    }
    if (batch.empty()) return;
    path->flush(batch);
    std::lock_guard lk(c.mu);
    flush_here_ok = c.counters.backend_errors == errors;
}

void node_engine::attempt_ended(const std::shared_ptr<attempt_state>& a, outcome o) {
    c.refuse_oversized(*a, o);
    std::optional<dist_op> op;
    effects fx;
    {
        std::lock_guard lk(c.mu);
        // A coroutine on a user executor can end after stop() is
        // over: the task was settled then, and nobody is left to tell.
        if (c.torn_down) return;
        if (task_entry* t = c.returned_task(*a, o.kind == outcome::success, fx)) {
            const auto d = attempt_outcome::returned(c.facts_of(*t), report_of(*a, o), steady::now(), c.draw());
            op = op_for(*t, d, o, dist_op::why::retry);
            c.tasks.erase(a->id);
        }
    }
    c.apply(fx);
    // With a path whose flushes lease for the slots they free
    // (path->flush_fetches()), the flush that takes this outcome (started
    // for it, or the one under way, in its next round) leases for the
    // freed slot in the same call; otherwise a feed does.
    if (op) submit_op(std::move(*op), a->ends_on_slot);
    if (!op || !path->flush_fetches()) kick_feed();
}

// Lock held. The record change that carries out the attempt outcome's
// decision for `t` (its local attempt ends here); empty: nothing to change.
std::optional<dist_op> node_engine::op_for(task_entry& t, const decision& d, outcome& o, dist_op::why retry_why) {
    std::string error = d.reason.empty() ? std::move(o.error) : std::string(d.reason);
    const auto finish = dist_op::why::finish;
    switch (d.v) {
        case verdict::keep_running: return std::nullopt;
        case verdict::complete:
            t.rec.set_result(std::move(o.result));
            t.rec.progress = 1.0;
            return make_op(t, task_status::completed, {}, {}, event_kind::task_completed, {}, finish);
        case verdict::continue_later:
            ++t.rec.turns;
            return make_op(t, task_status::queued, {}, d.delay, event_kind::task_continued, {}, finish);
        case verdict::retry:
            ++t.rec.retries;
            t.rec.set_error(error);
            return make_op(t, task_status::queued, {}, d.delay, event_kind::task_retried, error, retry_why);
        case verdict::requeue:
            ++t.rec.worker_losses;
            return make_op(t, task_status::queued, {}, {}, event_kind::task_requeued, error, dist_op::why::lost);
        case verdict::fail:
        case verdict::dead_letter:
            return make_op(t, task_status::failed, error, {}, event_kind::task_failed, error, finish);
        case verdict::cancel:
            return make_op(t, task_status::cancelled, error, {}, event_kind::task_cancelled, error, finish);
        case verdict::time_out:
            return make_op(t, task_status::timed_out, error, {}, event_kind::task_timed_out, error, finish);
    }
    return std::nullopt;
}

}  // namespace orchcore::detail
