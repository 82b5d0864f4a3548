// Local mode: the public operations on the task table (cancel, steer,
// queries, waits, stop) and what the shared components ask of the engine.
#include "local_engine.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <type_traits>

namespace orchcore::detail {

local_engine::local_engine(coordinator_impl& co)
    : c(co),
      queue(make_admission_queue<std::string>(
          c.opt.policy == queue_policy::fail_fast ? queue_policy::reject_new : c.opt.policy, c.opt.queue)) {}

bool local_engine::cancel(const std::string& id) {
    effects fx;
    {
        std::lock_guard lk(c.mu);
        auto it = c.tasks.find(id);
        if (it == c.tasks.end() || is_terminal(it->second.rec.status)) return false;
        auto& t = it->second;
        if (t.rec.status == task_status::running) {
            c.request_cancel(t);
        } else {
            finish(t, task_status::cancelled, "cancelled", fx);
            dispatch(fx);
        }
    }
    c.apply(fx);
    return true;
}

bool local_engine::promote(const std::string& id) {
    effects fx;
    {
        std::lock_guard lk(c.mu);
        auto it = c.tasks.find(id);
        if (it == c.tasks.end() || it->second.where != location::delayed) return false;
        auto& t = it->second;
        delayed.erase(t.delayed_it());
        t.where = location::ready;
        ready.push_back(id);
        dispatch(fx);
    }
    c.apply(fx);
    return true;
}

void local_engine::steer(const std::string& id, std::vector<std::string> messages) {
    std::lock_guard lk(c.mu);
    auto it = c.tasks.find(id);
    if (it == c.tasks.end()) throw error(errc::not_found, "orchcore: steer: no task with id \"" + id + "\"");
    auto& t = it->second;
    if (is_terminal(t.rec.status))
        throw error(errc::task_finished, "orchcore: steer: task \"" + id + "\" already " +
                                             std::string(to_string(t.rec.status)));
    if (!messages.empty()) {
        auto& box = t.mailbox();
        for (auto& m : messages) box.push_back(std::move(m));
    }
    c.wake_receiver(t);
}

// The table holds what the coordinator decided; a task it no longer
// holds is looked up in the user's store, outside the lock.
std::optional<task_record> local_engine::get(const std::string& id) const {
    {
        std::lock_guard lk(c.mu);
        if (auto it = c.tasks.find(id); it != c.tasks.end()) return it->second.rec;
    }
    if (c.write_through) return c.store->get(id);
    return std::nullopt;
}

std::optional<task_status> local_engine::status(const std::string& id) const {
    {
        std::lock_guard lk(c.mu);
        if (auto it = c.tasks.find(id); it != c.tasks.end()) return it->second.rec.status;
    }
    if (!c.write_through) return std::nullopt;
    auto r = c.store->get(id);
    if (!r) return std::nullopt;
    return r->status;
}

// One lock round trip per chunk of ids the table holds (chunks keep each
// hold short); the others are looked up in the user's store, outside the lock.
template <class T, class Take>
std::vector<std::optional<T>> local_engine::read_many(std::span<const std::string> ids, Take take) const {
    constexpr std::size_t chunk = 64;
    std::vector<std::optional<T>> out(ids.size());
    std::vector<std::size_t> elsewhere;
    for (std::size_t first = 0; first < ids.size(); first += chunk) {
        std::lock_guard lk(c.mu);
        for (std::size_t i = first; i < std::min(ids.size(), first + chunk); ++i) {
            if (auto it = c.tasks.find(ids[i]); it != c.tasks.end()) out[i] = take(it->second.rec);
            else if (c.write_through) elsewhere.push_back(i);
        }
    }
    for (const auto i : elsewhere) {
        if (auto r = c.store->get(ids[i])) {
            if constexpr (std::is_same_v<T, task_record>) out[i] = std::move(*r);
            else out[i] = T::of(std::move(*r));
        }
    }
    return out;
}

std::vector<std::optional<task_record>> local_engine::get_many(std::span<const std::string> ids) const {
    return read_many<task_record>(ids, [](const entry_record& r) { return task_record(r); });
}

std::vector<std::optional<task_outcome>> local_engine::get_outcomes(std::span<const std::string> ids) const {
    return read_many<task_outcome>(ids, [](const entry_record& r) {
        return task_outcome{r.status, r.created_at, r.started_at.get(), r.finished_at.get(), r.result(), r.error()};
    });
}

std::optional<task_record> local_engine::wait_until(const std::string& id, steady::time_point deadline) {
    std::unique_lock lk(c.mu);
    auto it = c.tasks.find(id);
    if (it == c.tasks.end()) throw error(errc::not_found, "orchcore: no task with id \"" + id + "\"");
    for (bool first = true;; first = false) {
        if (!first) it = c.tasks.find(id);          // the table may have changed while waiting
        if (it == c.tasks.end()) return std::nullopt;  // expired while waiting
        if (settled(it->second)) return it->second.rec;
        if (c.done_cv.wait_until(lk, deadline) == std::cv_status::timeout) {
            it = c.tasks.find(id);
            if (it != c.tasks.end() && is_terminal(it->second.rec.status)) return it->second.rec;
            return std::nullopt;
        }
    }
}

asio::awaitable<std::optional<task_record>> local_engine::async_wait_until(std::string id,
                                                                         steady::time_point deadline) {
    using namespace asio::experimental::awaitable_operators;
    auto ex = co_await asio::this_coro::executor;
    bool seen = false;
    for (;;) {
        auto waiter = std::make_shared<async_waiter>(ex);
        {
            std::lock_guard lk(c.mu);
            auto it = c.tasks.find(id);
            if (it == c.tasks.end()) {
                if (!seen) throw error(errc::not_found, "orchcore: no task with id \"" + id + "\"");
                co_return std::nullopt;  // expired while waiting
            }
            seen = true;
            if (settled(it->second)) co_return it->second.rec;
            if (steady::now() >= deadline) {
                if (is_terminal(it->second.rec.status)) co_return it->second.rec;
                co_return std::nullopt;
            }
            c.add_async_waiter(id, waiter);
        }
        asio::steady_timer timer(ex);
        timer.expires_at(deadline);
        (void)co_await (waiter->wake_ch.async_receive(asio::as_tuple(asio::use_awaitable)) ||
                        timer.async_wait(asio::as_tuple(asio::use_awaitable)));
        c.drop_async_waiter(id, waiter);
    }
}

coordinator_stats local_engine::stats() const {
    std::lock_guard lk(c.mu);
    coordinator_stats s = c.counters;
    s.queue = queue->metrics();
    s.queued = queue->size() + ready.size() + parked.size();
    s.delayed = delayed.size();
    s.running = c.running_count;
    s.workers = c.live_workers();
    s.tracked_tasks = c.tasks.size();
    return s;
}

std::size_t local_engine::unfinished() const {
    return queue->size() + ready.size() + parked.size() + delayed.size() + c.running_count;
}

std::optional<bool> local_engine::drain(stop_mode mode, std::chrono::milliseconds deadline) {
    std::unique_lock lk(c.mu);
    if (c.stopped) return std::nullopt;
    c.stopping = true;
    queue->close();
    if (mode == stop_mode::graceful)
        c.done_cv.wait_until(lk, deadline_after(deadline), [&] { return unfinished() == 0; });
    // Whatever is left is cancelled: waiting tasks at once, running ones
    // cooperatively (fenced after cancel_grace).
    bool clean = true;
    effects fx;
    for (auto& [id, t] : c.tasks) {
        if (is_terminal(t.rec.status)) continue;
        clean = false;
        if (t.rec.status == task_status::running) c.request_cancel(t);
        else finish(t, task_status::cancelled, "coordinator stopped", fx);
    }
    lk.unlock();
    c.apply(fx);
    lk.lock();
    // Give cooperative handlers their grace period; the tick fences the rest.
    c.done_cv.wait_until(lk, deadline_after(saturating_add(c.opt.cancel_grace, std::chrono::milliseconds(100))),
                         [&] { return c.running_count == 0; });
    c.stopped = true;
    return clean;
}

void local_engine::close_admission() { queue->close(); }

// Anything still running at this point has been fenced; mark it.
void local_engine::settle_fenced(effects& fx) {
    for (auto& [id, t] : c.tasks) {
        if (!is_terminal(t.rec.status) && t.rec.status == task_status::running) {
            c.fence_attempt(t);
            finish(t, task_status::cancelled, "coordinator stopped", fx);
        }
    }
}

// Woken once its task ended and the terminal event was delivered (as for
// wait_for), or the task is gone, or the coordinator stopped.
bool local_engine::async_waiter_due(const std::string& task_id) const {
    auto t = c.tasks.find(task_id);
    return c.stopped || t == c.tasks.end() || settled(t->second);
}

// Lock held. Whether a waiter on `t` may return: it is terminal, its
// terminal event was delivered (a subscriber has seen the end of a task by
// the time its waiter does) and its last store write was carried out (a
// store of the user's holds the ending the waiter returns).
bool local_engine::settled(const task_entry& t) const {
    return is_terminal(t.rec.status) && c.delivered_up_to(t.terminal_event_seq) && c.store_io.done_up_to(t.store_seq);
}

// Lock held. Takes the mailbox if this attempt still holds the task.
std::vector<std::string> local_engine::drain_mailbox(attempt_state& a) {
    auto it = c.tasks.find(a.id);
    if (it == c.tasks.end() || it->second.attempt.get() != &a) throw c.stale_read(a);
    return it->second.take_mailbox();
}

std::vector<std::string> local_engine::receive(attempt_state& a) {
    std::lock_guard lk(c.mu);
    return drain_mailbox(a);
}

std::vector<std::string> local_engine::receive_for(attempt_state& a, steady::time_point deadline) {
    std::unique_lock lk(c.mu);
    for (;;) {
        auto msgs = drain_mailbox(a);
        if (!msgs.empty() || a.cancel.load()) return msgs;
        if (a.mailbox_cv.wait_until(lk, deadline) == std::cv_status::timeout) return drain_mailbox(a);
    }
}

asio::awaitable<std::vector<std::string>> local_engine::async_receive_for(std::shared_ptr<attempt_state> a,
                                                                        steady::time_point deadline) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (;;) {
        {
            std::lock_guard lk(c.mu);
            auto msgs = drain_mailbox(*a);
            if (!msgs.empty() || a->cancel.load() || steady::now() >= deadline) co_return msgs;
            a->waiting_timer = &timer;
        }
        timer.expires_at(deadline);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        std::lock_guard lk(c.mu);
        a->waiting_timer = nullptr;
    }
}

void local_engine::progress_changed(task_entry& t) { c.persist(t, task_status::running); }

std::string local_engine::worker_name(std::uint64_t seq) const { return "worker-" + std::to_string(seq); }

// Registry calls are decided here, under the lock, and carried out after
// it in this order (coordinator_impl::carry_out_io).
void local_engine::worker_added(const worker& w) {
    c.registry_io.push([&r = *c.registry, rec = c.registry_record(w, wall::now(), "in-process")] { r.upsert(rec); });
}

// Retired cleanly: nothing to remember.
void local_engine::worker_retired(const std::string& id) {
    c.registry_io.push([&r = *c.registry, id] { (void)r.remove(id); });
}

void local_engine::worker_beat(worker_entry&, const std::string& id, wall::time_point at) {
    c.registry_io.push([&r = *c.registry, id, at] { (void)r.heartbeat(id, at); });
}

// The tasks that end in this coordinator, told after their events went
// out (coordinator_impl::apply).
std::unique_ptr<transport_watch> local_engine::watch_finished(
    std::function<void(std::span<const std::string>)> on_finished) {
    return c.finish_watch.add(std::move(on_finished));
}

std::unique_ptr<transport_watch> local_engine::watch_outcomes(
    std::function<void(std::span<const finished_task>)> on_finished) {
    return c.outcome_watch.add(std::move(on_finished));
}

}  // namespace orchcore::detail
