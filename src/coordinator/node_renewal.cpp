// Distributed mode: lease renewals of running attempts.
#include "node_engine.hpp"

namespace orchcore::detail {

// Extends one lease (outside the lock) and looks for a cancel marker.
void node_engine::renew(renewal& r) {
    bool extended = false, failed = false, cancel_marked = false;
    const auto now = wall::now();
    try {
        extended = tp->extend(r.id, r.token, nopt.lease_duration, now);
        if (extended) {
            if (auto rec = c.store->get(r.id)) cancel_marked = rec->metadata.count(cancel_key) > 0;
            if (r.persist && !cancel_marked) owner_write(*r.persist, task_status::running);
        }
    } catch (const std::exception&) {
        failed = true;
    }
    effects fx;
    {
        std::lock_guard lk(c.mu);
        if (io_inflight > 0) --io_inflight;
        fx.wake_waiters = true;
        auto it = c.tasks.find(r.id);
        if (failed) ++c.counters.backend_errors;
        if (it != c.tasks.end() && it->second.attempt == r.a) {
            task_entry& t = it->second;
            t.lease().renewing = false;
            if (failed) {
                t.lease().next_renew = deadline_after(c.tick_every);  // try again soon
                if (r.persist) t.lease().progress_dirty = true;
            } else if (extended) {
                t.lease().held_until = saturating_add(now, nopt.lease_duration);
                t.lease().next_renew = deadline_after(renew_every);
                if (cancel_marked && !t.cancel_requested) {
                    t.cancel_requested = true;
                    t.set_cancel_deadline(deadline_after(c.opt.cancel_grace));
                    c.signal_cancel(t.attempt);
                }
            } else {
                // Lost: expired and (maybe) taken over elsewhere. Fence it;
                // its handler's return is refused and counted.
                ++c.counters.lease_renewals_refused;
                c.signal_cancel(t.attempt);
                t.attempt.reset();
                c.tasks.erase(it);
            }
        }
    }
    c.apply(fx);
}

// Lock held. The leases of running attempts that are due for extension
// (by schedule, or with less than half of the lease left), while their
// worker is alive: a hung or partitioned worker lets its leases lapse.
std::vector<renewal> node_engine::due_renewals() {
    std::vector<renewal> out;
    const auto now = steady::now();
    const auto wall_now = wall::now();
    for (auto& [id, t] : c.tasks) {
        if (!t.attempt || t.lease().renewing) continue;
        if (now < t.lease().next_renew && t.lease().held_until - wall_now >= nopt.lease_duration / 2) continue;
        auto wit = c.workers.find(t.attempt->worker_id);
        if (wit == c.workers.end()) continue;
        const auto silent_limit =
            saturating_add(saturating_mul(wit->second.w->options().heartbeat_interval, 2), c.tick_every);
        if (now - wit->second.last_heartbeat > saturating_ceil<steady::duration>(silent_limit)) continue;
        t.lease().renewing = true;
        renewal r{t.rec.id, t.lease().token, t.attempt, std::nullopt};
        if (t.lease().progress_dirty) {
            r.persist = t.rec;
            t.lease().progress_dirty = false;
        }
        ++io_inflight;
        out.push_back(std::move(r));
    }
    return out;
}

}  // namespace orchcore::detail
