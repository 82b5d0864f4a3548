// The worker set: creation, picking, slots, scaling, heartbeat clocks, registry.
#include "coordinator_impl.hpp"

#include <tuple>
#include <utility>

namespace orchcore::detail {

std::size_t coordinator_impl::live_workers() const {
    return static_cast<std::size_t>(
        std::count_if(workers.begin(), workers.end(), [](const auto& kv) { return !kv.second.draining; }));
}

// Free slots of live workers, less `reserved` (distributed mode: slots
// promised to lease calls in flight).
std::size_t coordinator_impl::free_slots(std::size_t reserved) const {
    std::size_t n = 0;
    for (const auto& [id, w] : workers)
        if (!w.draining) n += w.w->options().max_concurrent - std::min(w.busy, w.w->options().max_concurrent);
    return n - std::min(n, reserved);
}

namespace {

// Whether `w` can start a task with these tags and this request now.
bool has_room(const worker_entry& w, const std::vector<std::string>& tags, const resource_request& r) {
    if (w.draining || w.busy >= w.w->options().max_concurrent) return false;
    return w.w->options().satisfies(tags) && (r.empty() || w.res.can_hold(r));
}

// Best fit: fewest GPUs left free by the placement (GPU workers stay free
// for GPU tasks), then the least busy, then the least memory and CPU left.
auto fit_key(const worker_entry& w, const resource_request& r) {
    const auto& inv = w.res.inventory();
    return std::tuple{inv.gpus.size() - w.res.held_gpus() - r.gpu.count, w.busy,
                      inv.memory_mb - w.res.held_memory_mb() - r.memory_mb,
                      inv.cpu_millis - w.res.held_cpu_millis() - r.cpu_millis};
}

}  // namespace

// The session's worker while it has room, else the best fit; ties go to
// the smallest worker id. O(workers), whatever waits in the queue.
worker_entry* coordinator_impl::pick_worker(const std::vector<std::string>& tags, const resource_request& r,
                                            std::string_view session) {
    if (!session.empty()) {
        if (const auto* bound = sessions.find(session)) {
            const auto it = workers.find(*bound);
            if (it != workers.end() && has_room(it->second, tags, r)) return &it->second;
        }
    }
    worker_entry* best = nullptr;
    decltype(fit_key(std::declval<const worker_entry&>(), r)) best_key{};
    for (auto& [id, w] : workers) {
        if (!has_room(w, tags, r)) continue;
        const auto key = fit_key(w, r);
        if (!best || key < best_key) {
            best = &w;
            best_key = key;
        }
    }
    return best;
}

// Whether a live worker (or one scaling may still add from the template)
// could hold the request with nothing else held on it.
bool coordinator_impl::could_ever_place(const std::vector<std::string>& tags, const resource_request& r) const {
    if (r.empty()) return true;
    const bool live = std::any_of(workers.begin(), workers.end(), [&](const auto& kv) {
        return !kv.second.draining && kv.second.w->options().satisfies(tags) && kv.second.res.could_ever_hold(r);
    });
    if (live) return true;
    const auto& tpl = opt.worker_template;
    return live_workers() < opt.scaling.max_workers && tpl.satisfies(tags) && fits(tpl.resources, r);
}

// Lock held. Gives back what the attempt held on `w`.
// Releasing twice is harmless: a hold is released once.
void coordinator_impl::release_hold(worker_entry& w, hold_id h) {
    if (h != 0) (void)w.res.release(h);
}

// Lock held. A worker that leaves takes its session bindings with it: the
// sessions' next tasks go to the best fit and bind there.
void coordinator_impl::forget_sessions_of(const std::string& worker_id) { sessions.forget_worker(worker_id); }

// Lock held. Whether a task of `session` runs on worker `worker_id`.
bool coordinator_impl::session_running(const std::string& session, const std::string& worker_id) const {
    const auto w = workers.find(worker_id);
    if (w == workers.end()) return false;
    return std::any_of(w->second.running.begin(), w->second.running.end(), [&](const auto& a) {
        const auto t = tasks.find(a->id);
        return t != tasks.end() && t->second.rec.session() == session;
    });
}

bool coordinator_impl::fitting_worker_exists(const std::vector<std::string>& tags) const {
    return std::any_of(workers.begin(), workers.end(),
                       [&](const auto& kv) { return !kv.second.draining && kv.second.w->options().satisfies(tags); });
}

std::shared_ptr<worker> coordinator_impl::create_worker(worker_options o, effects& /*fx*/) {
    o.validate();
    if (o.heartbeat_interval >= opt.worker_timeout)
        throw invalid_argument("worker.heartbeat_interval", std::to_string(o.heartbeat_interval.count()) + "ms",
                               "must be shorter than worker_timeout (" +
                                   std::to_string(opt.worker_timeout.count()) + "ms)");
    if (o.id.empty()) o.id = eng->worker_name(++worker_seq);
    if (workers.count(o.id)) throw invalid_argument("worker.id", "\"" + o.id + "\"", "a worker with this id exists");
    // One spare thread beyond the task slots carries heartbeats, so a
    // worker whose slots are all busy still proves it is alive.
    auto w = std::make_shared<worker>(o, 1);
    worker_entry e;
    e.w = w;
    e.name = std::make_shared<const std::string>(o.id);
    e.res = worker_resources(o.resources);
    capacity_freed = true;
    e.last_heartbeat = steady::now();
    e.last_heartbeat_wall = wall::now();
    workers.emplace(o.id, std::move(e));
    start_heartbeats(o.id, *w);
    // Distributed mode: the control thread registers it with its first
    // beat (write_registry), never a call to the backend under the lock.
    eng->worker_added(*w);
    event ev;
    ev.kind = event_kind::worker_started;
    ev.worker_id = o.id;
    emit(std::move(ev));
    return w;
}

void coordinator_impl::retire_worker(std::map<std::string, worker_entry>::iterator it, event_kind why, std::string detail,
                   effects& /*fx*/) {
    event ev;
    ev.kind = why;
    ev.worker_id = it->first;
    ev.detail = std::move(detail);
    emit(std::move(ev));
    retired.push_back(it->second.w);
    stop_heartbeats(it->first);
    // Retired cleanly: nothing to remember (distributed mode: removed
    // by the control thread, outside the lock).
    eng->worker_retired(it->first);
    forget_sessions_of(it->first);
    workers.erase(it);
}

std::size_t coordinator_impl::scale_to(std::size_t n, std::string reason, effects& fx) {
    n = std::clamp(n, opt.scaling.min_workers, opt.scaling.max_workers);
    const std::size_t from = live_workers();
    if (n == from) return n;
    if (n > from) {
        for (std::size_t i = from; i < n; ++i) create_worker(opt.worker_template, fx);
    } else {
        // Prefer idle workers; a busy one drains (takes no new task) and
        // stops when its last task ends.
        std::size_t to_remove = from - n;
        for (int pass = 0; pass < 2 && to_remove > 0; ++pass) {
            for (auto it = workers.begin(); it != workers.end() && to_remove > 0;) {
                auto next = std::next(it);
                if (!it->second.draining && (pass == 1 || it->second.busy == 0)) {
                    --to_remove;
                    if (it->second.busy == 0) {
                        retire_worker(it, event_kind::worker_stopped, "scaled down", fx);
                    } else {
                        it->second.draining = true;
                    }
                }
                it = next;
            }
        }
    }
    counters.scaling_history.push_back(scale_record{wall::now(), from, n, reason});
    if (counters.scaling_history.size() > 256)
        counters.scaling_history.erase(counters.scaling_history.begin());
    event ev;
    ev.kind = event_kind::scaled;
    ev.from = from;
    ev.to = n;
    ev.detail = std::move(reason);
    emit(std::move(ev));
    eng->capacity_changed(fx);
    return n;
}

// --------------------------------------------------------- control tick

// A worker that leaves for good: own threads are joined; on a user
// executor it is closed (queued work dropped, nothing posted later runs),
// which waits only for what executes right now.
void coordinator_impl::end_worker(worker& w) {
    if (w.on_user_executor()) w.close(); else w.join();
}

// Lock held. A worker declared dead (kept until stop), or null.
std::shared_ptr<worker> coordinator_impl::dead_worker(const std::string& id) const {
    for (const auto& w : dead_workers)
        if (w->id() == id) return w;
    return nullptr;
}

// Lock held. Starts a worker's heartbeat clock; the first beat at once.
void coordinator_impl::start_heartbeats(const std::string& id, worker& w) {
    auto hb = std::make_shared<heartbeat_clock>(w.executor());
    beats.insert_or_assign(id, hb);
    arm_heartbeat(hb, id, std::chrono::milliseconds{0});
}

// Lock held. A worker that leaves for good stops its clock before its
// threads are joined (a pending timer would keep them busy).
void coordinator_impl::stop_heartbeats(const std::string& id) {
    auto it = beats.find(id);
    if (it == beats.end()) return;
    const auto hb = std::move(it->second);  // may be the last owner: it outlives the lock below
    beats.erase(it);
    std::lock_guard g(hb->m);
    hb->closed = true;
    hb->timer.cancel();
}

void coordinator_impl::arm_heartbeat(const std::shared_ptr<heartbeat_clock>& hb, std::string wid, std::chrono::milliseconds after) {
    std::lock_guard g(hb->m);
    if (hb->closed) return;
    hb->timer.expires_after(after);
    hb->timer.async_wait([self = weak_from_this(), hb, wid = std::move(wid)](boost::system::error_code ec) {
        {
            std::lock_guard g2(hb->m);
            if (ec || hb->closed) return;
        }
        auto c = self.lock();  // a clock on a user executor may fire after the coordinator is gone
        if (!c) return;
        if (auto next = c->heartbeat(wid)) c->arm_heartbeat(hb, wid, *next);
    });
}

// One beat of a worker's clock (or a beat resume_heartbeats sends for a
// worker declared dead). Returns when the next is due; empty: the clock
// stops (heartbeats suspended, or the worker is gone or dead).
std::optional<std::chrono::milliseconds> coordinator_impl::heartbeat(const std::string& worker_id) {
    wall::time_point at;
    std::optional<std::chrono::milliseconds> next;
    {
        std::unique_lock lk(mu);
        auto it = workers.find(worker_id);
        if (it == workers.end()) {
            // A worker declared dead that comes back (its wedged threads
            // free again) is not alive again: its heartbeat is refused
            // and counted like any other stale attempt's call.
            if (dead_worker(worker_id)) {
                refuse_stale({}, worker_id, 0, "heartbeat of a worker declared dead");
                lk.unlock();
                flush_events();
            }
            return std::nullopt;
        }
        if (it->second.heartbeats_suspended) return std::nullopt;  // resume_heartbeats restarts the clock
        it->second.last_heartbeat = steady::now();
        it->second.last_heartbeat_wall = at = wall::now();
        next = it->second.w->options().heartbeat_interval;
        eng->worker_beat(it->second, worker_id, at);
    }
    carry_out_io();
    return next;
}

// Lock held. At stop: the registry entries of every worker this
// coordinator had, live, dead, or retired and not yet removed.
std::vector<std::string> coordinator_impl::registry_entries() {
    std::vector<std::string> ids;
    ids.swap(registry_removals);
    for (const auto& [id, w] : workers) ids.push_back(id);
    for (const auto& w : dead_workers) ids.push_back(w->id());
    return ids;
}

// Outside the lock, at stop: a clean stop leaves nothing behind in the
// (possibly shared) registry. A registry that cannot be reached keeps
// the entries; other nodes' maintenance removes them after
// worker_timeout + worker_entry_grace.
void coordinator_impl::forget(const std::vector<std::string>& ids) {
    for (const auto& id : ids) {
        try {
            registry->remove(id);
        } catch (const std::exception&) {
            std::lock_guard lk(mu);
            ++counters.backend_errors;
        }
    }
}

worker_record coordinator_impl::registry_record(const worker& w, wall::time_point heartbeat,
                                                const std::string& host) const {
    const auto& o = w.options();
    worker_record r{o.id, worker_status::idle, o.tags, o.max_concurrent, host, heartbeat, heartbeat};
    r.resources = o.resources;
    const auto it = workers.find(o.id);
    r.free = it == workers.end() ? o.resources : it->second.res.free();
    return r;
}

// How long past its last heartbeat a dead worker's registry entry is
// kept (worker_timeout + worker_entry_grace, saturated).
std::chrono::milliseconds coordinator_impl::entry_lifetime() const {
    const auto room = std::chrono::milliseconds::max() - opt.worker_timeout;
    return opt.worker_entry_grace >= room ? std::chrono::milliseconds::max()
                                          : opt.worker_timeout + opt.worker_entry_grace;
}

// Lock held. Replaces workers below min_workers at once; otherwise, when
// `due`, scales on the interval by the queue depth (empty: unknown).
void coordinator_impl::autoscale(steady::time_point now, bool due, std::optional<std::size_t> depth, effects& fx) {
    if (stopping) return;
    if (live_workers() < opt.scaling.min_workers) {
        scale_to(opt.scaling.min_workers, "replacing lost workers (below min_workers)", fx);
    } else if (due) {
        next_autoscale = saturating_add(now, opt.autoscale_interval);
        if (!depth) return;
        if (auto d = scaler.evaluate(*depth, live_workers(), now)) scale_to(d->to, std::string(d->reason), fx);
    }
}

// Lock held. A worker declared dead (its attempts already handled): its
// threads may be wedged, so the worker object is kept apart (joined at
// stop) rather than joined here.
void coordinator_impl::declare_dead(std::map<std::string, worker_entry>::iterator it) {
    it->second.running.clear();
    dead_workers.push_back(it->second.w);
    event ev;
    ev.kind = event_kind::worker_dead;
    ev.worker_id = it->first;
    ev.detail = "no heartbeat for " + std::to_string(opt.worker_timeout.count()) + "ms";
    emit(std::move(ev));
    forget_sessions_of(it->first);
    workers.erase(it);
}

}  // namespace orchcore::detail
