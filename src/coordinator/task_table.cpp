// The task table: status changes, fencing and the start of an attempt, shared by both engines.
#include "coordinator_impl.hpp"

namespace orchcore::detail {

void coordinator_impl::set_status(task_entry& t, task_status to) {
    check_transition(t.rec.status, to);
    t.rec.status = to;
}

// Lock held. Write-through of a record whose stored status was
// `expected`, carried out after the lock (carry_out_io).
void coordinator_impl::persist(task_entry& t, task_status expected) {
    if (!write_through) return;
    t.store_seq = store_io.push([this, rec = task_record(t.rec), expected] {
        if (store->update(rec, expected)) return;
        std::lock_guard lk(mu);
        ++counters.store_conflicts;
    });
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

attempt_facts<steady::time_point> coordinator_impl::facts_of(const task_entry& t) {
    return {t.rec.retries,     t.rec.max_retries,  t.rec.backoff(),        t.cancel_requested,
            t.cancel_deadline(), t.deadline().get(), t.turn_deadline.get()};
}

double coordinator_impl::draw() {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    return u(rng);
}

// Lock held. A new attempt of `t` on `w`, numbered by `token` (local mode:
// the coordinator's count; distributed mode: the lease's fencing token).
std::shared_ptr<attempt_state> coordinator_impl::new_attempt(const task_entry& t, const worker_entry& w,
                                                             std::uint64_t token) {
    auto a = std::make_shared<attempt_state>();
    a->c = this;
    a->owner = weak_from_this();
    a->id = t.rec.id;
    a->type = t.rec.type;
    a->payload = t.rec.payload;
    a->metadata = t.rec.shared_metadata();
    a->worker_id = w.w->id();
    a->attempt = t.rec.attempts;
    a->turn = t.rec.turns;
    a->token = token;
    return a;
}

// Lock held. The attempt takes a slot of `w` and becomes the task's
// current one (its fence); `ln` launches it after the lock.
void coordinator_impl::take_slot(task_entry& t, worker_entry& w, const std::shared_ptr<attempt_state>& a,
                                 launch& ln) {
    t.attempt = a;
    const auto turn_timeout = t.rec.turn_timeout().count() > 0 ? t.rec.turn_timeout() : w.w->options().task_timeout;
    if (turn_timeout.count() > 0) t.turn_deadline = saturating_add(steady::now(), turn_timeout);
    else t.turn_deadline.reset();
    ++w.busy;
    if (const auto& r = t.rec.resources(); !r.empty()) a->hold = w.res.hold(r).value_or(0);
    if (const auto& s = t.rec.session(); !s.empty())
        sessions.bind(s, w.w->id(), [this](const std::string& session, const std::string& worker) {
            return session_running(session, worker);
        });
    w.running.push_back(a);
    ++running_count;
    ln = launch{w.w, a, nullptr, nullptr};
    // A type has a plain handler or a coroutine one, never both.
    if (auto it = handlers.find(t.rec.type); it != handlers.end()) {
        ln.sync = it->second;
    } else {
        a->strand.emplace(asio::make_strand(w.w->executor()));
        if (w.w->on_user_executor()) a->keep_alive = shared_from_this();
        ln.async = async_handlers.at(t.rec.type);
    }
}

// Lock held. A running task asked to stop: cooperative, fenced after
// cancel_grace by the tick.
void coordinator_impl::request_cancel(task_entry& t) {
    if (t.cancel_requested) return;
    t.cancel_requested = true;
    t.set_cancel_deadline(deadline_after(opt.cancel_grace));
    if (t.attempt) signal_cancel(t.attempt);
}

// Lock held. Wakes a handler of this node waiting in receive_for (or
// async_receive_for) for this task.
void coordinator_impl::wake_receiver(task_entry& t) {
    if (!t.attempt) return;
    t.attempt->mailbox_cv.notify_all();
    if (t.attempt->strand) {
        auto a = t.attempt;
        asio::post(*a->strand, [a] {
            std::lock_guard lk2(a->c->mu);
            if (a->waiting_timer) a->waiting_timer->cancel();
        });
    }
}

}  // namespace orchcore::detail
