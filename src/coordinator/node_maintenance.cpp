// Distributed mode: the control tick, recovery and maintenance.
#include "coordinator_impl.hpp"

namespace orchcore::detail {

coordinator_impl::store_look coordinator_impl::look_shared(const std::string& id, bool& seen) const {
    std::optional<task_record> r;
    try {
        r = store->get(id);
    } catch (const error& e) {
        if (e.code() != errc::backend_unavailable) throw;
        return {};
    }
    if (!r) {
        if (!seen) throw error(errc::not_found, "orchcore: no task with id \"" + id + "\"");
        return {true, std::nullopt};
    }
    seen = true;
    if (is_terminal(r->status)) return {true, std::move(r)};
    return {};
}

// Lock held. The local attempts past their cancellation grace, task or
// turn timeout: their record changes, to carry out after the lock.
void coordinator_impl::settle_overdue(steady::time_point now, std::vector<dist_op>& ops) {
    for (auto it = tasks.begin(); it != tasks.end();) {
        task_entry& t = it->second;
        if (!t.attempt) {
            it = tasks.erase(it);
            continue;
        }
        std::optional<dist_op> op;
        if (t.cancel_requested && now >= t.cancel_deadline) {
            op = make_op(t, task_status::cancelled, "cancelled (handler did not stop within cancel_grace)", {},
                         event_kind::task_cancelled, "cancelled (handler did not stop within cancel_grace)",
                         dist_op::why::finish);
        } else if (t.deadline && now >= *t.deadline) {
            op = make_op(t, task_status::timed_out, "task timeout", {}, event_kind::task_timed_out,
                         "task timeout", dist_op::why::finish);
        } else if (t.turn_deadline && now >= *t.turn_deadline) {
            if (t.rec.retries < t.rec.max_retries) {
                ++t.rec.retries;
                t.rec.error = "turn timeout";
                const auto delay = backoff_delay(t);
                op = make_op(t, task_status::queued, {}, delay, event_kind::task_retried, "turn timeout",
                             dist_op::why::turn);
            } else {
                op = make_op(t, task_status::timed_out, "turn timeout", {}, event_kind::task_timed_out,
                             "turn timeout", dist_op::why::finish);
            }
        }
        if (op) {
            ops.push_back(std::move(*op));
            it = tasks.erase(it);
            continue;
        }
        ++it;
    }
}

// Lock held. This node's workers silent for worker_timeout, judged on
// their own clocks' beats (never on the backend): each is declared
// dead, its attempts fenced and handed back (record changes into `ops`).
// Returns their ids, to mark in the shared registry after the lock.
std::vector<std::string> coordinator_impl::reap_local_workers(steady::time_point now, std::vector<dist_op>& ops) {
    std::vector<std::string> dead;
    for (auto it = workers.begin(); it != workers.end();) {
        auto next = std::next(it);
        if (now - it->second.last_heartbeat > saturating_ceil<steady::duration>(opt.worker_timeout)) {
            ++counters.workers_died;
            for (const auto& a : it->second.running) {
                if (running_count > 0) --running_count;
                auto tit = tasks.find(a->id);
                if (tit == tasks.end() || tit->second.attempt != a) continue;
                task_entry& t = tit->second;
                if (t.cancel_requested) {
                    ops.push_back(make_op(t, task_status::cancelled, "cancelled", {}, event_kind::task_cancelled,
                                          "cancelled", dist_op::why::finish));
                } else {
                    ++t.rec.worker_losses;
                    ops.push_back(make_op(t, task_status::queued, {}, {}, event_kind::task_requeued,
                                          "worker declared dead", dist_op::why::lost));
                }
                tasks.erase(tit);
            }
            it->second.running.clear();
            dead_workers.push_back(it->second.w);
            event ev;
            ev.kind = event_kind::worker_dead;
            ev.worker_id = it->first;
            ev.detail = "no heartbeat for " + std::to_string(opt.worker_timeout.count()) + "ms";
            emit(std::move(ev));
            dead.push_back(it->first);
            workers.erase(it);
        }
        it = next;
    }
    return dead;
}

// Outside the lock: the shared registry's view of this node's workers.
// A worker the registry no longer knows alive (reaped by a node that
// did not hear from it during a backend pause, or removed) is
// registered again: locally it is alive, and local liveness decides.
void coordinator_impl::write_registry(const std::vector<std::pair<std::string, wall::time_point>>& beats_due,
                    const std::vector<std::string>& dead, const std::vector<std::string>& removed) {
    std::size_t errors = 0;
    for (const auto& id : removed) {
        try {
            registry->remove(id);
        } catch (const std::exception&) {
            ++errors;
        }
    }
    for (const auto& id : dead) {
        try {
            registry->set_status(id, worker_status::error);
        } catch (const std::exception&) {
            ++errors;
        }
    }
    for (const auto& [id, at] : beats_due) {
        try {
            if (registry->heartbeat(id, at)) continue;
            std::optional<worker_record> rec;
            {
                std::lock_guard lk(mu);
                if (auto it = workers.find(id); it != workers.end()) rec = registry_record(*it->second.w, at);
            }
            if (rec) registry->upsert(*rec);
        } catch (const std::exception&) {
            ++errors;
        }
    }
    if (errors == 0) return;
    std::lock_guard lk(mu);
    counters.backend_errors += errors;
}

void coordinator_impl::dist_tick() {
    effects fx;
    std::vector<std::pair<std::string, wall::time_point>> registry_writes;
    std::vector<std::string> dead, removed;
    std::vector<dist_op> ops;
    std::vector<std::shared_ptr<worker>> join_now;
    bool do_recover = false, do_maintenance = false, do_feed = false, autoscale_due = false;
    {
        std::lock_guard lk(mu);
        autoscale_due = opt.autoscale && !stopping && steady::now() >= next_autoscale;
    }
    std::optional<std::size_t> depth;
    if (autoscale_due) {
        try {
            depth = tp->size_approx();
        } catch (const std::exception&) {
        }
    }
    {
        std::lock_guard lk(mu);
        const auto now = steady::now();
        settle_overdue(now, ops);
        dead = reap_local_workers(now, ops);
        if (!stopping) {
            io_inflight += retry_ops.size();  // outcomes the backend failed to record: again
            std::move(retry_ops.begin(), retry_ops.end(), std::back_inserter(ops));
            retry_ops.clear();
            if (live_workers() < opt.scaling.min_workers) {
                scale_to(opt.scaling.min_workers, "replacing lost workers (below min_workers)", fx);
            } else if (autoscale_due) {
                next_autoscale = saturating_add(now, opt.autoscale_interval);
                if (depth) {
                    if (auto d = scaler.evaluate(*depth, live_workers(), now))
                        scale_to(d->to, std::string(d->reason), fx);
                }
            }
        }
        // (Not while stopping: stop() waits for io_inflight to drain.)
        if (!stopping && now >= next_recover) {
            next_recover = now + recover_every;
            do_recover = true;
            ++io_inflight;
        }
        if (!stopping && now >= next_maintenance) {
            next_maintenance = saturating_add(now, opt.maintenance_interval);
            do_maintenance = true;
            ++io_inflight;
        }
        do_feed = now >= next_poll;
        join_now.swap(retired);
        removed.swap(registry_removals);
        for (auto& [id, w] : workers) {
            if (!w.registry_due) continue;
            registry_writes.emplace_back(id, *w.registry_due);
            w.registry_due.reset();
        }
    }
    apply(fx);
    run_ops(ops);
    write_registry(registry_writes, dead, removed);
    // The leases are renewed after whatever waited for the backend
    // above, and before recovery looks for expired ones: a backend that
    // answers again after a pause extends this node's leases first.
    std::vector<renewal> renewals;
    {
        std::lock_guard lk(mu);
        renewals = due_renewals();
    }
    for (auto& r : renewals) renew(r);
    if (do_recover) recover();
    if (do_maintenance) maintain();
    if (do_feed) feed();
    for (auto& w : join_now) end_worker(*w);
}

// Puts expired leases (of any node) back in the queue; their records
// go running -> queued with worker_losses + 1. A lease the transport
// dead-lettered instead (max_lease_expiries reached: a poison task) is
// no longer in the queue, so its record must end here: failed.
void coordinator_impl::recover() {
    std::vector<transport_lease> orphans;
    std::vector<task_record> requeued, buried;
    std::size_t dead = 0;
    bool failed = false;
    try {
        orphans = tp->recover_expired(wall::now(), 256);
        for (const auto& l : orphans) {
            if (l.dead_lettered) ++dead;
            auto rec = store->get(l.task_id);
            if (l.dead_lettered) {
                if (!rec || is_terminal(rec->status)) continue;
                task_record r = *rec;
                r.status = task_status::failed;
                r.finished_at = wall::now();
                r.error = "dead-lettered: " + detail::lease_expired_reason(l.expiries);
                if (rec->status == task_status::running) ++r.worker_losses;
                r.metadata.erase(cancel_key);
                if (owner_write(r, rec->status)) buried.push_back(std::move(r));
                continue;
            }
            if (!rec || rec->status != task_status::running) continue;
            task_record r = *rec;
            r.status = task_status::queued;
            ++r.worker_losses;
            if (store->update(r, task_status::running)) requeued.push_back(std::move(r));
        }
    } catch (const std::exception&) {
        failed = true;
    }
    effects fx;
    {
        std::lock_guard lk(mu);
        if (failed) ++counters.backend_errors;
        counters.recovered += orphans.size() - dead;
        counters.dead_lettered += dead;
        counters.requeued_after_worker_death += requeued.size();
        for (const auto& r : requeued)
            emit(make_event_rec(event_kind::task_requeued, r, "lease expired (holder lost)"));
        for (const auto& r : buried) emit(make_event_rec(event_kind::task_failed, r, r.error));
        if (io_inflight > 0) --io_inflight;
        fx.wake_waiters = true;
    }
    apply(fx);
}

// TTL of finished records (shared store), the shared registry's stale
// workers, and the entries dead workers left behind.
void coordinator_impl::maintain() {
    std::vector<std::string> expired;
    bool failed = false;
    try {
        expired = store->expire(wall::now(), opt.completed_ttl, opt.failed_ttl, opt.cancelled_ttl);
        (void)registry->reap_stale(wall::now(), opt.worker_timeout);
        (void)registry->purge_silent(wall::now(), entry_lifetime());
    } catch (const std::exception&) {
        failed = true;
    }
    effects fx;
    {
        std::lock_guard lk(mu);
        if (failed) ++counters.backend_errors;
        counters.expired += expired.size();
        for (const auto& id : expired) {
            event e;
            e.kind = event_kind::task_expired;
            e.task_id = id;
            emit(std::move(e));
        }
        if (io_inflight > 0) --io_inflight;
        fx.wake_waiters = true;
    }
    apply(fx);
}

}  // namespace orchcore::detail
