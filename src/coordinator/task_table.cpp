// The task table: status changes, waiting places, dispatch onto workers.
#include "coordinator_impl.hpp"

namespace orchcore::detail {

std::size_t coordinator_impl::ttl_class(task_status s) noexcept {
    switch (s) {
        case task_status::completed: return 0;
        case task_status::cancelled: return 1;
        default: return 2;
    }
}

std::chrono::milliseconds coordinator_impl::ttl_for(task_status s) const {
    switch (s) {
        case task_status::completed: return opt.completed_ttl;
        case task_status::cancelled: return opt.cancelled_ttl;
        default: return opt.failed_ttl;
    }
}

void coordinator_impl::set_status(task_entry& t, task_status to) {
    check_transition(t.rec.status, to);
    t.rec.status = to;
}

// Write-through of a record whose stored status was `expected`.
void coordinator_impl::persist(const task_entry& t, task_status expected) {
    if (!write_through) return;
    if (!store->update(t.rec, expected)) ++counters.store_conflicts;
}

// Removes a waiting task from wherever it waits.
void coordinator_impl::unlink_waiting(task_entry& t) {
    switch (t.where) {
        case location::queue: queue->cancel(t.queue_id); break;
        case location::ready: std::erase(ready, t.rec.id); break;
        case location::parked: std::erase(parked, t.rec.id); break;
        case location::delayed: delayed.erase(t.delayed_it); break;
        default: break;
    }
    t.where = location::none;
}

void coordinator_impl::finish(task_entry& t, task_status to, std::string error, effects& fx) {
    const task_status from = t.rec.status;
    if (from == task_status::queued || from == task_status::pending) unlink_waiting(t);
    set_status(t, to);
    t.where = location::none;
    t.rec.finished_at = wall::now();
    if (!error.empty()) t.rec.error = std::move(error);
    t.mailbox.clear();  // undelivered steering messages go with the task
    t.mailbox.shrink_to_fit();
    if (t.attempt) {
        t.attempt->cancel.store(true);
        t.attempt->mailbox_cv.notify_all();
        t.attempt.reset();
    }
    expiry[ttl_class(to)].emplace_back(deadline_after(ttl_for(to)), t.rec.id);
    persist(t, from);
    event_kind k = event_kind::task_completed;
    switch (to) {
        case task_status::completed: ++counters.completed; k = event_kind::task_completed; break;
        case task_status::failed: ++counters.failed; k = event_kind::task_failed; break;
        case task_status::cancelled: ++counters.cancelled; k = event_kind::task_cancelled; break;
        case task_status::timed_out: ++counters.timed_out; k = event_kind::task_timed_out; break;
        default: break;
    }
    emit_task(k, t, to == task_status::completed ? std::string{} : t.rec.error);
    t.terminal_event_seq = emitted;
    fx.wake_waiters = true;
}

// running -> queued, to run again after `delay` (or at once).
void coordinator_impl::requeue(task_entry& t, std::chrono::milliseconds delay, bool front) {
    set_status(t, task_status::queued);
    persist(t, task_status::running);
    t.turn_deadline.reset();
    if (delay.count() > 0) {
        t.delayed_it = delayed.emplace(deadline_after(delay), t.rec.id);
        t.where = location::delayed;
    } else {
        if (front) ready.push_front(t.rec.id); else ready.push_back(t.rec.id);
        t.where = location::ready;
    }
}

// Fences off the current attempt: its token stops being valid and its
// handler is asked to stop. The worker slot stays taken until the
// handler actually returns.
void coordinator_impl::fence_attempt(task_entry& t) {
    if (!t.attempt) return;
    signal_cancel(t.attempt);
    t.attempt.reset();
}

void coordinator_impl::signal_cancel(const std::shared_ptr<attempt_state>& a) {
    a->cancel.store(true);
    a->mailbox_cv.notify_all();
    if (a->strand) {
        asio::post(*a->strand, [a] { a->signal.emit(asio::cancellation_type::all); });
    }
}

std::chrono::milliseconds coordinator_impl::backoff_delay(const task_entry& t) {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    return t.rec.backoff.delay(t.rec.retries, u(rng));
}

void coordinator_impl::start_attempt(task_entry& t, worker_entry& w, effects& fx) {
    const auto now = steady::now();
    set_status(t, task_status::running);
    t.where = location::running;
    ++t.rec.attempts;
    ++counters.started;
    if (!t.rec.started_at) t.rec.started_at = wall::now();
    t.rec.worker_id = w.w->id();
    auto a = std::make_shared<attempt_state>();
    a->c = this;
    a->id = t.rec.id;
    a->type = t.rec.type;
    a->payload = t.rec.payload;
    a->metadata = t.rec.metadata;
    a->worker_id = w.w->id();
    a->attempt = t.rec.attempts;
    a->turn = t.rec.turns;
    // In one process the fence is the task's current attempt
    // (task_entry::attempt): the token numbers attempts for the handler
    // and the events, and no lease table is needed.
    a->token = ++attempt_seq;
    t.attempt = a;
    auto turn_timeout = t.rec.turn_timeout.count() > 0 ? t.rec.turn_timeout : w.w->options().task_timeout;
    if (turn_timeout.count() > 0) t.turn_deadline = saturating_add(now, turn_timeout); else t.turn_deadline.reset();
    persist(t, task_status::queued);
    ++w.busy;
    w.running.push_back(a);
    ++running_count;
    launch ln{w.w, a, nullptr, nullptr};
    if (auto it = async_handlers.find(t.rec.type); it != async_handlers.end()) {
        a->strand.emplace(asio::make_strand(w.w->executor()));
        if (w.w->on_user_executor()) a->keep_alive = shared_from_this();
        ln.async = it->second;
    } else {
        ln.sync = handlers.at(t.rec.type);
    }
    fx.launches.push_back(std::move(ln));
    emit_task(event_kind::task_started, t);
}

// Places waiting tasks on free fitting workers: parked first, then tasks
// due to run again, then the admission queue.
void coordinator_impl::dispatch(effects& fx) {
    if (stopped || workers.empty()) return;
    std::size_t free = free_slots();
    if (free == 0) return;
    // Starts the task on a fitting worker; false if none has room. A
    // task that is gone (cancelled or expired) counts as placed.
    auto place = [&](std::unordered_map<std::string, task_entry>::iterator it) -> bool {
        if (it == tasks.end() || it->second.rec.status != task_status::queued) return true;
        worker_entry* w = pick_worker(it->second.rec.tags);
        if (!w) return false;
        start_attempt(it->second, *w, fx);
        --free;
        return true;
    };
    auto try_place = [&](const std::string& id) { return place(tasks.find(id)); };
    for (auto p = parked.begin(); p != parked.end() && free > 0;) {
        if (try_place(*p)) p = parked.erase(p); else ++p;
    }
    const std::size_t parked_limit = 64 + 2 * (free + running_count);
    while (free > 0 && !ready.empty()) {
        std::string id = std::move(ready.front());
        ready.pop_front();
        if (!try_place(id)) park(id);
    }
    while (free > 0 && parked.size() < parked_limit) {
        auto e = queue->try_pop();
        if (!e) break;
        auto it = tasks.find(e->value);  // one lookup per task taken
        if (it != tasks.end()) it->second.where = location::none;
        if (!place(it)) {
            parked.push_back(std::move(e->value));
            it->second.where = location::parked;
        }
    }
}

void coordinator_impl::park(const std::string& id) {
    parked.push_back(id);
    if (auto it = tasks.find(id); it != tasks.end()) it->second.where = location::parked;
}

}  // namespace orchcore::detail
