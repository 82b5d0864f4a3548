// Local mode: the control tick (retries due, timeouts, worker health,
// auto-scaling, TTL expiry).
#include "local_engine.hpp"

#include <algorithm>

namespace orchcore::detail {

void local_engine::tick() {
    effects fx;
    std::vector<std::shared_ptr<worker>> join_now;
    // Outside the lock: which workers the registry names silent.
    const std::vector<std::string> stale = c.registry->reap_stale(wall::now(), c.opt.worker_timeout);
    {
        std::lock_guard lk(c.mu);
        const auto now = steady::now();
        promote_due(now);
        judge_running(now, fx);
        expire_waiting(now, fx);
        // Heartbeats come from each worker's own clock (start_heartbeats).
        reap_dead_workers(stale, fx);
        const std::size_t depth = queue->size() + ready.size() + parked.size();
        c.autoscale(now, c.opt.autoscale && now >= c.next_autoscale, depth, fx);
        expire_finished(now);
        fail_unplaceable(now, fx);
        dispatch(fx);
        // Drained workers: join outside the lock.
        join_now.swap(c.retired);
    }
    c.apply(fx);
    for (auto& w : join_now) c.end_worker(*w);
}

// Lock held. A parked task whose request no worker could ever hold (none
// was added, or the one that could left) fails once it has waited
// placement_wait for one; it used no attempt and no retry.
// Checked once per maintenance_interval: O(parked x workers).
void local_engine::fail_unplaceable(steady::time_point now, effects& fx) {
    if (now < next_unplaceable_check) return;
    next_unplaceable_check = saturating_add(now, c.opt.maintenance_interval);
    std::map<std::string, steady::time_point> still;
    std::vector<std::string> due;
    for (const auto& id : parked) {
        const auto it = c.tasks.find(id);
        if (it == c.tasks.end() || c.could_ever_place(it->second.rec.tags(), it->second.rec.resources())) continue;
        const auto seen = unplaceable_since.find(id);
        const auto since = seen == unplaceable_since.end() ? now : seen->second;
        if (std::chrono::duration_cast<std::chrono::milliseconds>(now - since) >= c.opt.placement_wait)
            due.push_back(id);
        else still.emplace(id, since);
    }
    unplaceable_since.swap(still);
    for (const auto& id : due) {
        auto& t = c.tasks.at(id);
        finish(t, task_status::failed,
               "unplaceable: no worker could hold resources " + to_string(t.rec.resources()) + " (waited " +
                   std::to_string(c.opt.placement_wait.count()) + "ms for one)",
               fx);
    }
}

// Lock held. Retries and continuations that are due.
void local_engine::promote_due(steady::time_point now) {
    while (!delayed.empty() && delayed.begin()->first <= now) {
        auto id = delayed.begin()->second;
        delayed.erase(delayed.begin());
        if (auto it = c.tasks.find(id); it != c.tasks.end()) {
            it->second.where = location::ready;
            ready.push_back(id);
        }
    }
}

// Lock held. Timeouts and cancellations past their grace period, for
// running attempts (only those: the tick must not scan finished records).
void local_engine::judge_running(steady::time_point now, effects& fx) {
    std::vector<std::shared_ptr<attempt_state>> running_attempts;
    for (const auto& [wid, w] : c.workers)
        running_attempts.insert(running_attempts.end(), w.running.begin(), w.running.end());
    for (const auto& a : running_attempts) {
        auto it = c.tasks.find(a->id);
        if (it == c.tasks.end() || it->second.rec.status != task_status::running || it->second.attempt != a)
            continue;  // fenced already: only the task's current attempt is judged
        task_entry& t = it->second;
        const auto d = attempt_outcome::judged(coordinator_impl::facts_of(t), now, c.draw());
        if (d.v == verdict::keep_running) continue;
        c.fence_attempt(t);
        outcome none;
        carry_out(t, d, none, fx);
    }
}

// Lock held. Whole-task timeouts of tasks that are waiting (running ones
// are judged through their deadline in judge_running).
void local_engine::expire_waiting(steady::time_point now, effects& fx) {
    while (!deadlines.empty() && deadlines.begin()->first <= now) {
        auto id = deadlines.begin()->second;
        deadlines.erase(deadlines.begin());
        auto it = c.tasks.find(id);
        if (it != c.tasks.end() && it->second.rec.status == task_status::queued)
            finish(it->second, task_status::timed_out, "task timeout while waiting", fx);
    }
}

// Lock held. Health: the registry names workers silent for worker_timeout;
// those of ours are declared dead and their tasks re-run.
void local_engine::reap_dead_workers(const std::vector<std::string>& stale, effects& fx) {
    for (auto it = c.workers.begin(); it != c.workers.end();) {
        auto next = std::next(it);
        if (std::find(stale.begin(), stale.end(), it->first) == stale.end()) {
            it = next;
            continue;
        }
        ++c.counters.workers_died;
        for (const auto& a : it->second.running) {
            // Every slot it held is released, fenced attempts' too.
            if (c.running_count > 0) --c.running_count;
            auto tit = c.tasks.find(a->id);
            if (tit == c.tasks.end() || tit->second.rec.status != task_status::running || tit->second.attempt != a)
                continue;  // not this worker's to lose: fenced earlier, maybe re-run elsewhere
            task_entry& t = tit->second;
            c.fence_attempt(t);
            ++t.rec.worker_losses;
            ++c.counters.requeued_after_worker_death;
            outcome none;
            carry_out(t, attempt_outcome::worker_lost(coordinator_impl::facts_of(t)), none, fx);
        }
        c.declare_dead(it);
        it = next;
    }
}

// Lock held. TTL expiry of finished tasks (and dead workers' registry entries).
void local_engine::expire_finished(steady::time_point now) {
    if (now < c.next_maintenance) return;
    c.next_maintenance = saturating_add(now, c.opt.maintenance_interval);
    c.registry_io.push([&r = *c.registry, after = c.entry_lifetime()] {
        (void)r.purge_silent(wall::now(), after);  // dead workers' entries
    });
    for (auto& fifo : expiry) {
        while (!fifo.empty() && fifo.front().first <= now) {
            auto id = std::move(fifo.front().second);
            fifo.pop_front();
            auto it = c.tasks.find(id);
            if (it == c.tasks.end() || !is_terminal(it->second.rec.status)) continue;
            ++c.counters.expired;
            c.emit_task(event_kind::task_expired, it->second);
            c.tasks.erase(it);
            if (c.write_through) c.store_io.push([&s = *c.store, id] { (void)s.erase(id); });
        }
    }
}

}  // namespace orchcore::detail
