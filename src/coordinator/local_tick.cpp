// Local mode: the control tick.
#include "coordinator_impl.hpp"

namespace orchcore::detail {

void coordinator_impl::on_tick() {
    if (dist()) {
        dist_tick();
        return;
    }
    effects fx;
    std::vector<std::shared_ptr<worker>> join_now;
    {
        std::lock_guard lk(mu);
        const auto now = steady::now();

        // Retries and continuations that are due.
        while (!delayed.empty() && delayed.begin()->first <= now) {
            auto id = delayed.begin()->second;
            delayed.erase(delayed.begin());
            if (auto it = tasks.find(id); it != tasks.end()) {
                it->second.where = location::ready;
                ready.push_back(id);
            }
        }

        // Timeouts and cancellations past their grace period, for running
        // attempts (only those: the tick must not scan finished records).
        std::vector<std::shared_ptr<attempt_state>> running_attempts;
        for (const auto& [wid, w] : workers)
            running_attempts.insert(running_attempts.end(), w.running.begin(), w.running.end());
        for (const auto& a : running_attempts) {
            auto it = tasks.find(a->id);
            if (it == tasks.end() || it->second.rec.status != task_status::running || it->second.attempt != a)
                continue;  // fenced already: only the task's current attempt is judged
            task_entry& t = it->second;
            if (t.cancel_requested && now >= t.cancel_deadline) {
                fence_attempt(t);
                finish(t, task_status::cancelled, "cancelled (handler did not stop within cancel_grace)", fx);
            } else if (t.deadline && now >= *t.deadline) {
                fence_attempt(t);
                finish(t, task_status::timed_out, "task timeout", fx);
            } else if (t.turn_deadline && now >= *t.turn_deadline) {
                fence_attempt(t);
                if (t.rec.retries < t.rec.max_retries) {
                    ++t.rec.retries;
                    ++counters.retried;
                    t.rec.error = "turn timeout";
                    requeue(t, backoff_delay(t), false);
                    emit_task(event_kind::task_retried, t, "turn timeout");
                } else {
                    finish(t, task_status::timed_out, "turn timeout", fx);
                }
            }
        }
        // Whole-task timeouts of tasks that are waiting.
        while (!deadlines.empty() && deadlines.begin()->first <= now) {
            auto id = deadlines.begin()->second;
            deadlines.erase(deadlines.begin());
            auto it = tasks.find(id);
            if (it != tasks.end() && it->second.rec.status == task_status::queued)
                finish(it->second, task_status::timed_out, "task timeout while waiting", fx);
            // running ones are caught above through t.deadline
        }

        // Heartbeats come from each worker's own clock (start_heartbeats).

        // Health: the registry names workers silent for worker_timeout;
        // those of ours are declared dead and their tasks re-run.
        std::vector<std::string> stale = registry->reap_stale(wall::now(), opt.worker_timeout);
        for (auto it = workers.begin(); it != workers.end();) {
            auto next = std::next(it);
            if (std::find(stale.begin(), stale.end(), it->first) != stale.end()) {
                ++counters.workers_died;
                for (const auto& a : it->second.running) {
                    // Every slot it held is released, fenced attempts' too.
                    if (running_count > 0) --running_count;
                    auto tit = tasks.find(a->id);
                    if (tit == tasks.end() || tit->second.rec.status != task_status::running ||
                        tit->second.attempt != a)
                        continue;  // not this worker's to lose: fenced earlier, maybe re-run elsewhere
                    task_entry& t = tit->second;
                    fence_attempt(t);
                    ++t.rec.worker_losses;
                    ++counters.requeued_after_worker_death;
                    if (t.cancel_requested) {
                        finish(t, task_status::cancelled, "cancelled", fx);
                    } else {
                        requeue(t, std::chrono::milliseconds{0}, true);
                        emit_task(event_kind::task_requeued, t, "worker declared dead");
                    }
                }
                it->second.running.clear();
                // Its threads may be wedged: keep the worker object alive
                // apart (joined at stop) rather than block here.
                dead_workers.push_back(it->second.w);
                event ev;
                ev.kind = event_kind::worker_dead;
                ev.worker_id = it->first;
                ev.detail = "no heartbeat for " + std::to_string(opt.worker_timeout.count()) + "ms";
                emit(std::move(ev));
                workers.erase(it);
            }
            it = next;
        }

        // Replace below min at once; otherwise scale on the interval.
        if (!stopping) {
            if (live_workers() < opt.scaling.min_workers) {
                scale_to(opt.scaling.min_workers, "replacing lost workers (below min_workers)", fx);
            } else if (opt.autoscale && now >= next_autoscale) {
                next_autoscale = saturating_add(now, opt.autoscale_interval);
                const std::size_t depth = queue->size() + ready.size() + parked.size();
                if (auto d = scaler.evaluate(depth, live_workers(), now))
                    scale_to(d->to, std::string(d->reason), fx);
            }
        }

        // TTL expiry of finished tasks.
        if (now >= next_maintenance) {
            next_maintenance = saturating_add(now, opt.maintenance_interval);
            (void)registry->purge_silent(wall::now(), entry_lifetime());  // dead workers' entries
            for (auto& fifo : expiry) {
                while (!fifo.empty() && fifo.front().first <= now) {
                    auto id = std::move(fifo.front().second);
                    fifo.pop_front();
                    auto it = tasks.find(id);
                    if (it == tasks.end() || !is_terminal(it->second.rec.status)) continue;
                    ++counters.expired;
                    emit_task(event_kind::task_expired, it->second);
                    if (write_through) store->erase(id);
                    tasks.erase(it);
                }
            }
        }

        dispatch(fx);
        // Drained workers: join outside the lock.
        join_now.swap(retired);
    }
    apply(fx);
    for (auto& w : join_now) end_worker(*w);
}

}  // namespace orchcore::detail
