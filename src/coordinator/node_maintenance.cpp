// Distributed mode: the control tick, lease recovery and TTL maintenance.
#include "node_engine.hpp"

#include <iterator>

namespace orchcore::detail {

void node_engine::tick() {
    bool autoscale_due = false;
    {
        std::lock_guard lk(c.mu);
        autoscale_due = c.opt.autoscale && !c.stopping && steady::now() >= c.next_autoscale;
    }
    std::optional<std::size_t> depth;
    if (autoscale_due) {
        try {
            depth = tp->size_approx();
        } catch (const std::exception&) {
        }
    }
    effects fx;
    tick_plan p;
    {
        std::lock_guard lk(c.mu);
        plan_tick(steady::now(), autoscale_due, depth, p, fx);
    }
    c.apply(fx);
    run_ops(p.ops);
    write_registry(p.registry_writes, p.dead, p.removed);
    publish_free(p.registry_upserts);
    // The leases are renewed after whatever waited for the backend
    // above, and before recovery looks for expired ones: a backend that
    // answers again after a pause extends this node's leases first.
    std::vector<renewal> renewals;
    {
        std::lock_guard lk(c.mu);
        renewals = due_renewals();
    }
    for (auto& r : renewals) renew(r);
    if (p.do_recover) recover();
    if (p.do_maintenance) maintain();
    if (p.do_feed) feed();
    for (auto& w : p.join_now) c.end_worker(*w);
}

// Lock held. What this tick does: the local decisions now, the backend
// calls after the lock (into `p`).
void node_engine::plan_tick(steady::time_point now, bool autoscale_due, std::optional<std::size_t> depth,
                            tick_plan& p, effects& fx) {
    settle_overdue(now, p.ops);
    p.dead = reap_local_workers(now, p.ops);
    if (!c.stopping) {
        io_inflight += retry_ops.size();  // outcomes the backend failed to record: again
        std::move(retry_ops.begin(), retry_ops.end(), std::back_inserter(p.ops));
        retry_ops.clear();
    }
    c.autoscale(now, autoscale_due, depth, fx);
    // (Not while stopping: stop() waits for io_inflight to drain.)
    if (!c.stopping && now >= next_recover) {
        next_recover = now + recover_every;
        p.do_recover = true;
        ++io_inflight;
    }
    if (!c.stopping && now >= c.next_maintenance) {
        c.next_maintenance = saturating_add(now, c.opt.maintenance_interval);
        p.do_maintenance = true;
        ++io_inflight;
    }
    p.do_feed = now >= next_poll;
    p.join_now.swap(c.retired);
    p.removed.swap(c.registry_removals);
    for (auto& [id, w] : c.workers) {
        if (!w.registry_due) continue;
        // A worker with resources publishes what is free with the beat
        // after it changed (a whole record), other beats stay small.
        if (auto free = w.res.free(); w.res.inventory() != resource_inventory{} && w.published_free != free) {
            p.registry_upserts.push_back(c.registry_record(*w.w, *w.registry_due, c.node));
            w.published_free = std::move(free);
        } else {
            p.registry_writes.emplace_back(id, *w.registry_due);
        }
        w.registry_due.reset();
    }
}

// Lock held. The local attempts past their cancellation grace, task or
// turn timeout: their record changes, to carry out after the lock.
void node_engine::settle_overdue(steady::time_point now, std::vector<dist_op>& ops) {
    for (auto it = c.tasks.begin(); it != c.tasks.end();) {
        task_entry& t = it->second;
        if (!t.attempt) {
            it = c.tasks.erase(it);
            continue;
        }
        outcome none;
        const auto d = attempt_outcome::judged(coordinator_impl::facts_of(t), now, c.draw());
        if (auto op = op_for(t, d, none, dist_op::why::turn)) {
            ops.push_back(std::move(*op));
            it = c.tasks.erase(it);
            continue;
        }
        ++it;
    }
}

// Lock held. This node's workers silent for worker_timeout, judged on
// their own clocks' beats (never on the backend): each is declared
// dead, its attempts fenced and handed back (record changes into `ops`).
// Returns their ids, to mark in the shared registry after the lock.
std::vector<std::string> node_engine::reap_local_workers(steady::time_point now, std::vector<dist_op>& ops) {
    std::vector<std::string> dead;
    for (auto it = c.workers.begin(); it != c.workers.end();) {
        auto next = std::next(it);
        if (now - it->second.last_heartbeat > saturating_ceil<steady::duration>(c.opt.worker_timeout)) {
            ++c.counters.workers_died;
            for (const auto& a : it->second.running) {
                if (c.running_count > 0) --c.running_count;
                auto tit = c.tasks.find(a->id);
                if (tit == c.tasks.end() || tit->second.attempt != a) continue;
                outcome none;
                const auto d = attempt_outcome::worker_lost(coordinator_impl::facts_of(tit->second));
                if (auto op = op_for(tit->second, d, none, dist_op::why::lost)) ops.push_back(std::move(*op));
                c.tasks.erase(tit);
            }
            dead.push_back(it->first);
            c.declare_dead(it);
        }
        it = next;
    }
    return dead;
}

// Outside the lock: workers whose free resources changed, whole records.
void node_engine::publish_free(const std::vector<worker_record>& recs) {
    std::size_t errors = 0;
    for (const auto& rec : recs) {
        try {
            c.registry->upsert(rec);
        } catch (const std::exception&) {
            ++errors;
        }
    }
    if (errors == 0) return;
    std::lock_guard lk(c.mu);
    c.counters.backend_errors += errors;
}

// Outside the lock: the shared registry's view of this node's workers.
// A worker the registry no longer knows alive (reaped by a node that
// did not hear from it during a backend pause, or removed) is
// registered again: locally it is alive, and local liveness decides.
void node_engine::write_registry(const std::vector<std::pair<std::string, wall::time_point>>& beats_due,
                    const std::vector<std::string>& dead, const std::vector<std::string>& removed) {
    std::size_t errors = 0;
    for (const auto& id : removed) {
        try {
            c.registry->remove(id);
        } catch (const std::exception&) {
            ++errors;
        }
    }
    for (const auto& id : dead) {
        try {
            c.registry->set_status(id, worker_status::error);
        } catch (const std::exception&) {
            ++errors;
        }
    }
    for (const auto& [id, at] : beats_due) {
        try {
            if (c.registry->heartbeat(id, at)) continue;
            std::optional<worker_record> rec;
            {
                std::lock_guard lk(c.mu);
                if (auto it = c.workers.find(id); it != c.workers.end()) rec = c.registry_record(*it->second.w, at, c.node);
            }
            if (rec) c.registry->upsert(*rec);
        } catch (const std::exception&) {
            ++errors;
        }
    }
    if (errors == 0) return;
    std::lock_guard lk(c.mu);
    c.counters.backend_errors += errors;
}

// Puts expired leases (of any node) back in the queue; their records
// go running -> queued with worker_losses + 1. A lease the transport
// dead-lettered instead (max_lease_expiries reached: a poison task) is
// no longer in the queue, so its record must end here: failed.
void node_engine::recover() {
    std::vector<transport_lease> orphans;
    std::vector<task_record> requeued, buried;
    std::size_t dead = 0;
    bool failed = false;
    try {
        orphans = tp->recover_expired(wall::now(), 256);
        for (const auto& l : orphans) {
            if (l.dead_lettered) ++dead;
            auto rec = c.store->get(l.task_id);
            if (attempt_outcome::lease_expired(l.dead_lettered).v == verdict::dead_letter) {
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
            if (c.store->update(r, task_status::running)) requeued.push_back(std::move(r));
        }
    } catch (const std::exception&) {
        failed = true;
    }
    std::vector<std::string> ended;
    for (const auto& r : buried) ended.push_back(r.id);
    announce_finished(*tp, ended);
    effects fx;
    {
        std::lock_guard lk(c.mu);
        if (failed) ++c.counters.backend_errors;
        c.counters.recovered += orphans.size() - dead;
        c.counters.dead_lettered += dead;
        c.counters.requeued_after_worker_death += requeued.size();
        for (const auto& r : requeued)
            c.emit(c.make_event_rec(event_kind::task_requeued, r, std::string(attempt_outcome::lease_expired(false).reason)));
        for (const auto& r : buried) c.emit(c.make_event_rec(event_kind::task_failed, r, r.error));
        if (io_inflight > 0) --io_inflight;
        fx.wake_waiters = true;
    }
    c.apply(fx);
}

// TTL of finished records (shared store), the shared registry's stale
// workers, and the entries dead workers left behind.
void node_engine::maintain() {
    std::vector<std::string> expired;
    std::optional<std::vector<worker_record>> view;
    bool failed = false;
    try {
        expired = c.store->expire(wall::now(), c.opt.completed_ttl, c.opt.failed_ttl, c.opt.cancelled_ttl);
        (void)c.registry->reap_stale(wall::now(), c.opt.worker_timeout);
        (void)c.registry->purge_silent(wall::now(), c.entry_lifetime());
        view = c.registry->list({});
    } catch (const std::exception&) {
        failed = true;
    }
    effects fx;
    {
        std::lock_guard lk(c.mu);
        if (failed) ++c.counters.backend_errors;
        if (view) registry_view = std::move(view);
        c.counters.expired += expired.size();
        for (const auto& id : expired) {
            event e;
            e.kind = event_kind::task_expired;
            e.task_id = id;
            c.emit(std::move(e));
        }
        if (io_inflight > 0) --io_inflight;
        fx.wake_waiters = true;
    }
    c.apply(fx);
}

}  // namespace orchcore::detail
