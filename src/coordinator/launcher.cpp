// Launching attempts (plain and coroutine handlers) and taking their outcomes.
#include "coordinator_impl.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>

namespace orchcore::detail {

// ------------------------------------------------------------ attempts

// Lock held. Counts a steering read by an attempt that no longer holds its
// task and returns the error to throw.
error coordinator_impl::stale_read(const attempt_state& a) {
    refuse_stale(a.id, a.worker_id, a.attempt, "steering read of a fenced attempt");
    return error(errc::stale_token, "orchcore: attempt " + std::to_string(a.attempt) + " of task " + a.id +
                                        " no longer holds it (stale fencing token)");
}

// Lock held. Counts and announces an outcome refused because its
// attempt no longer holds the task (stale fencing token).
void coordinator_impl::refuse_stale(const std::string& task_id, const std::string& worker_id, std::uint32_t attempt,
                  std::string detail) {
    ++counters.stale_token_refusals;
    if (torn_down) return;  // counted; nobody is left to tell (see finish_attempt)
    event ev;
    ev.kind = event_kind::stale_token_refused;
    ev.task_id = task_id;
    ev.worker_id = worker_id;
    ev.attempt = attempt;
    ev.detail = std::move(detail);
    emit(std::move(ev));
}

// Lock held. The attempt's worker slot is free again whatever happens to
// its result (a dead worker's attempts were uncounted at its death);
// stop() waits for running attempts to return, hence the wake-up.
void coordinator_impl::release_slot(const attempt_state& a, bool succeeded, effects& fx) {
    if (auto wit = workers.find(a.worker_id); wit != workers.end()) {
        auto& w = wit->second;
        if (std::erase_if(w.running, [&](const auto& p) { return p.get() == &a; }) > 0) {
            release_hold(w, a.hold);
            capacity_freed = true;
            if (w.busy > 0) --w.busy;
            if (running_count > 0) --running_count;
        }
        if (succeeded) ++w.completed; else ++w.failed;
        if (w.draining && w.busy == 0) retire_worker(wit, event_kind::worker_stopped, "drained", fx);
    }
    fx.wake_waiters = true;
}

// Lock held. A returned attempt's first step in either engine: its slot is
// free again, and its task is returned if the attempt is still the task's
// current one; a fenced attempt's late return is refused (nullptr).
task_entry* coordinator_impl::returned_task(const attempt_state& a, bool succeeded, effects& fx) {
    release_slot(a, succeeded, fx);
    auto it = tasks.find(a.id);
    if (it == tasks.end() || it->second.attempt.get() != &a) {
        refuse_stale(a.id, a.worker_id, a.attempt, "late completion of a fenced attempt");
        return nullptr;
    }
    return &it->second;
}

// A result the store would refuse fails its task at once, without
// retries (it would be refused again), decided here with no I/O; the
// result of a turn that continues is ignored anyway.
void coordinator_impl::refuse_oversized(const attempt_state& a, outcome& o) const {
    if (o.kind != outcome::success || a.continue_requested || !write_through) return;
    const auto limit = store->max_value_bytes();
    if (o.result.size() <= limit) return;
    o = {outcome::failure, {},
         "result of " + std::to_string(o.result.size()) + " bytes exceeds max_payload_bytes = " +
             std::to_string(limit),
         false};
}

// An attempt's handler returned: the engine takes its outcome.
void coordinator_impl::finish_attempt(const std::shared_ptr<attempt_state>& a, outcome o) {
    eng->attempt_ended(a, std::move(o));
}

const attempt_state*& attempt_on_this_thread() noexcept {
    thread_local const attempt_state* a = nullptr;
    return a;
}

void coordinator_impl::run_sync(const launch& ln) {
    ln.a->sync_handler = ln.sync;
    ln.a->ends_on_slot = !ln.w->on_user_executor();
    // Through the worker's queue, not an Asio post per task: a stream of
    // launches keeps the worker's drainers busy instead of waking a
    // thread per task. The callable holds only `a`, so std::function
    // stores it without allocating.
    ln.w->post([a = ln.a] {
        outcome o;
        try {
            task_context ctx(a);
            running_attempt mark(a.get());
            o.result = (*a->sync_handler)(ctx);
        } catch (const non_retryable_error& e) {
            o = {outcome::failure, {}, e.what(), false};
        } catch (const std::exception& e) {
            o = {outcome::failure, {}, e.what(), true};
        } catch (...) {
            o = {outcome::failure, {}, "unknown exception", true};
        }
        a->c->finish_attempt(a, std::move(o));
    });
}

asio::awaitable<std::string> coordinator_impl::run_coroutine(std::shared_ptr<attempt_state> a,
                                                  std::shared_ptr<const async_task_handler> h) {
    task_context ctx(a);
    co_return co_await (*h)(ctx);
}

void coordinator_impl::run_async(const launch& ln) {
    auto a = ln.a;
    asio::co_spawn(*a->strand, run_coroutine(a, ln.async),
                   asio::bind_cancellation_slot(a->signal.slot(), [this, a](std::exception_ptr ep, std::string r) {
                       outcome o;
                       if (ep) {
                           try {
                               std::rethrow_exception(ep);
                           } catch (const non_retryable_error& e) {
                               o = {outcome::failure, {}, e.what(), false};
                           } catch (const std::exception& e) {
                               o = {outcome::failure, {}, e.what(), true};
                           } catch (...) {
                               o = {outcome::failure, {}, "unknown exception", true};
                           }
                       } else {
                           o.result = std::move(r);
                       }
                       // Held to the end of this handler: the last
                       // reference may be this one (the coordinator is gone).
                       auto keep = std::move(a->keep_alive);
                       finish_attempt(a, std::move(o));
                   }));
}

}  // namespace orchcore::detail
