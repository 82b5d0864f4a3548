// Local mode: the task table's waiting places, dispatch onto workers, and the end of attempts and tasks.
#include "local_engine.hpp"

#include <algorithm>
#include <utility>
#include <vector>

namespace orchcore::detail {

std::size_t local_engine::ttl_class(task_status s) noexcept {
    switch (s) {
        case task_status::completed: return 0;
        case task_status::cancelled: return 1;
        default: return 2;
    }
}

std::chrono::milliseconds local_engine::ttl_for(task_status s) const {
    switch (s) {
        case task_status::completed: return c.opt.completed_ttl;
        case task_status::cancelled: return c.opt.cancelled_ttl;
        default: return c.opt.failed_ttl;
    }
}

// Removes a waiting task from wherever it waits.
void local_engine::unlink_waiting(task_entry& t) {
    switch (t.where) {
        case location::queue: queue->cancel(t.queue_id); break;
        case location::ready: std::erase(ready, t.rec.id); break;
        case location::parked: std::erase(parked, t.rec.id); break;
        case location::delayed: delayed.erase(t.delayed_it()); break;
        default: break;
    }
    t.where = location::none;
}

void local_engine::finish(task_entry& t, task_status to, std::string error, effects& fx) {
    const task_status from = t.rec.status;
    if (from == task_status::queued || from == task_status::pending) unlink_waiting(t);
    c.set_status(t, to);
    t.where = location::none;
    t.rec.finished_at = wall::now();
    if (!error.empty()) t.rec.set_error(std::move(error));
    t.drop_mailbox();  // undelivered steering messages go with the task
    if (t.attempt) {
        t.attempt->cancel.store(true);
        t.attempt->mailbox_cv.notify_all();
        t.attempt.reset();
    }
    expiry[ttl_class(to)].emplace_back(deadline_after(ttl_for(to)), t.rec.id);
    c.persist(t, from);
    event_kind k = event_kind::task_completed;
    switch (to) {
        case task_status::completed: ++c.counters.completed; k = event_kind::task_completed; break;
        case task_status::failed: ++c.counters.failed; k = event_kind::task_failed; break;
        case task_status::cancelled: ++c.counters.cancelled; k = event_kind::task_cancelled; break;
        case task_status::timed_out: ++c.counters.timed_out; k = event_kind::task_timed_out; break;
        default: break;
    }
    c.emit_task(k, t, to == task_status::completed ? std::string{} : t.rec.error());
    t.terminal_event_seq = c.emitted;
    c.emit_finished(t);
    fx.wake_waiters = true;
}

// running -> queued, to run again after `delay` (or at once).
void local_engine::requeue(task_entry& t, std::chrono::milliseconds delay, bool front) {
    c.set_status(t, task_status::queued);
    c.persist(t, task_status::running);
    t.turn_deadline.reset();
    if (delay.count() > 0) {
        t.set_delayed_it(delayed.emplace(deadline_after(delay), t.rec.id));
        t.where = location::delayed;
    } else {
        if (front) ready.push_front(t.rec.id); else ready.push_back(t.rec.id);
        t.where = location::ready;
    }
}

void local_engine::start_attempt(task_entry& t, worker_entry& w, effects& fx) {
    c.set_status(t, task_status::running);
    t.where = location::running;
    ++t.rec.attempts;
    ++c.counters.started;
    if (!t.rec.started_at) t.rec.started_at = wall::now();
    t.rec.worker_id = w.name;
    // In one process the fence is the task's current attempt
    // (task_entry::attempt): the token numbers attempts for the handler
    // and the events, and no lease table is needed.
    auto a = c.new_attempt(t, w, ++attempt_seq);
    launch ln;
    c.take_slot(t, w, a, ln);
    c.persist(t, task_status::queued);
    fx.launches.push_back(std::move(ln));
    c.emit_task(event_kind::task_started, t);
}

// Places waiting tasks on free fitting workers: parked first, then tasks
// due to run again, then the admission queue.
void local_engine::dispatch(effects& fx) {
    if (c.stopped || c.workers.empty()) return;
    std::size_t free = c.free_slots();
    if (free == 0) return;
    // Tags and requests that found no worker with room in this call.
    // Capacity only shrinks within a call, so a task asking the same is
    // passed over without a search: waiting tasks that ask alike (GPU
    // tasks waiting for a GPU) cost one search per call, not one each.
    std::vector<std::pair<std::vector<std::string>, resource_request>> no_room;
    auto known_no_room = [&](const entry_record& rec) {
        return std::any_of(no_room.begin(), no_room.end(), [&](const auto& nr) {
            return nr.second == rec.resources() && nr.first == rec.tags();
        });
    };
    // Starts the task on a fitting worker; false if none has room. A
    // task that is gone (cancelled or expired) counts as placed.
    auto place = [&](task_table::iterator it) -> bool {
        if (it == c.tasks.end() || it->second.rec.status != task_status::queued) return true;
        const auto& rec = it->second.rec;
        if (known_no_room(rec)) return false;
        worker_entry* w = c.pick_worker(rec.tags(), rec.resources(), rec.session());
        if (!w) {
            if (no_room.size() < 16) no_room.emplace_back(rec.tags(), rec.resources());
            return false;
        }
        start_attempt(it->second, *w, fx);
        --free;
        return true;
    };
    auto try_place = [&](const std::string& id) { return place(c.tasks.find(id)); };
    // Parked tasks fitted no worker when last tried: only freed capacity
    // can change that. At most parked_probe of them are tried per call,
    // those that still fit nowhere rotate to the back, and the rest are
    // tried at the next call: a decision costs O(workers), not O(parked).
    if (std::exchange(c.capacity_freed, false)) {
        constexpr std::size_t parked_probe = 64;
        std::size_t tried = 0;
        const std::size_t n = parked.size();
        for (; tried < n && tried < parked_probe && free > 0; ++tried) {
            std::string id = std::move(parked.front());
            parked.pop_front();
            if (!try_place(id)) parked.push_back(std::move(id));
        }
        if (tried < n && free > 0) c.capacity_freed = true;
    }
    const std::size_t parked_limit = 64 + 2 * (free + c.running_count);
    while (free > 0 && !ready.empty()) {
        std::string id = std::move(ready.front());
        ready.pop_front();
        if (!try_place(id)) park(id);
    }
    while (free > 0 && parked.size() < parked_limit) {
        auto e = queue->try_pop();
        if (!e) break;
        auto it = c.tasks.find(e->value);  // one lookup per task taken
        if (it != c.tasks.end()) it->second.where = location::none;
        if (!place(it)) {
            parked.push_back(std::move(e->value));
            it->second.where = location::parked;
        }
    }
}

void local_engine::park(const std::string& id) {
    parked.push_back(id);
    if (auto it = c.tasks.find(id); it != c.tasks.end()) it->second.where = location::parked;
}

void local_engine::attempt_ended(const std::shared_ptr<attempt_state>& a, outcome o) {
    c.refuse_oversized(*a, o);
    effects fx;
    {
        std::lock_guard lk(c.mu);
        // A coroutine on a user executor can end after stop() is
        // over: the task was settled then, and nobody is left to tell.
        if (c.torn_down) return;
        if (task_entry* t = c.returned_task(*a, o.kind == outcome::success, fx)) {
            t->attempt.reset();
            const auto d = attempt_outcome::returned(c.facts_of(*t), report_of(*a, o), steady::now(), c.draw());
            carry_out(*t, d, o, fx);
        }
        dispatch(fx);
    }
    c.apply(fx);
}

// Lock held. Carries out the attempt outcome's decision for `t` in the
// task table (its attempt already fenced or ended).
void local_engine::carry_out(task_entry& t, const decision& d, outcome& o, effects& fx) {
    std::string error = d.reason.empty() ? std::move(o.error) : std::string(d.reason);
    switch (d.v) {
        case verdict::keep_running: break;
        case verdict::complete:
            t.rec.set_result(std::move(o.result));
            t.rec.progress = 1.0;
            finish(t, task_status::completed, {}, fx);
            break;
        case verdict::continue_later:
            ++t.rec.turns;
            ++c.counters.continued;
            requeue(t, d.delay, false);
            c.emit_task(event_kind::task_continued, t);
            break;
        case verdict::retry:
            ++t.rec.retries;
            ++c.counters.retried;
            t.rec.set_error(error);
            requeue(t, d.delay, false);
            c.emit_task(event_kind::task_retried, t, std::move(error));
            break;
        case verdict::requeue:
            requeue(t, std::chrono::milliseconds{0}, true);
            c.emit_task(event_kind::task_requeued, t, std::move(error));
            break;
        case verdict::fail:
        case verdict::dead_letter: finish(t, task_status::failed, std::move(error), fx); break;
        case verdict::cancel: finish(t, task_status::cancelled, std::move(error), fx); break;
        case verdict::time_out: finish(t, task_status::timed_out, std::move(error), fx); break;
    }
}

}  // namespace orchcore::detail
