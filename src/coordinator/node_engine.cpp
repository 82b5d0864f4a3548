// Distributed mode: the public operations (cancel, steer, queries, waits,
// stop) on the shared store and transport, and what the shared components
// ask of the engine.
#include "node_engine.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <iterator>

namespace orchcore::detail {

namespace {
// How long a wait sleeps between looks at the shared store or mailbox (a
// change made on this node wakes it at once): 1 ms, doubling up to 50 ms.
std::chrono::milliseconds next_poll_of(std::chrono::milliseconds& backoff) {
    const auto b = backoff;
    backoff = std::min(backoff * 2, std::chrono::milliseconds(50));
    return b;
}
}  // namespace

node_engine::node_engine(coordinator_impl& co, const node_options& n)
    : c(co), nopt(n), tp(n.transport), finishes([this](const std::string&) {
          std::lock_guard lk(c.mu);
          ++finished_gen;
          c.done_cv.notify_all();
          c.wake_async_waiters();
      }) {
    path = make_node_path(*this, n.backend ? n.backend : tp->make_node_backend(c.store));
    renew_every = n.lease_renew_interval.count() > 0 ? n.lease_renew_interval : n.lease_duration / 3;
    if (renew_every.count() <= 0) renew_every = std::chrono::milliseconds(1);
    recover_every =
        std::clamp(n.lease_duration / 4, std::chrono::milliseconds(20), std::chrono::milliseconds(1'000));
    next_recover = steady::now();
}

// Lock held. The node has free slots and the queue had nothing.
void node_engine::went_idle() {
    if (!waker) waker = std::make_unique<work_waker>(*tp, [this] { kick_feed(); }, std::chrono::milliseconds(1'000));
    waker->idle();
}

// Ends both (no lock held).
void node_engine::stop_wakeups() {
    std::unique_ptr<work_waker> w;
    {
        std::lock_guard lk(c.mu);
        w.swap(waker);
    }
    if (w) w->stop();
    finishes.close();
}

std::uint64_t node_engine::finish_generation() const {
    std::lock_guard lk(c.mu);
    return finished_gen;
}

bool node_engine::cancel(const std::string& id) {
    {
        std::lock_guard lk(c.mu);
        auto it = c.tasks.find(id);
        if (it != c.tasks.end() && it->second.attempt) {  // running here
            c.request_cancel(it->second);
            return true;
        }
    }
    if (tp->cancel(id)) return settle_waiting_cancel(id);
    return mark_cancel(id);
}

// The queue holds delayed tasks: it makes the task waiting and wakes an
// idle node; this node looks for work too.
bool node_engine::promote(const std::string& id) {
    if (!tp->promote(id)) return false;
    kick_feed();
    return true;
}

// The task was waiting: out of the queue now, so this node settles it.
bool node_engine::settle_waiting_cancel(const std::string& id) {
    effects fx;
    auto rec = c.store->get(id);
    if (rec && !is_terminal(rec->status)) {
        task_record r = *rec;
        r.status = task_status::cancelled;
        r.finished_at = wall::now();
        r.error = "cancelled";
        r.metadata.erase(cancel_key);
        if (owner_write(r, rec->status)) {
            announce_finished(*tp, std::span<const std::string>(&r.id, 1));
            std::lock_guard lk(c.mu);
            ++c.counters.cancelled;
            c.emit(coordinator_impl::make_event_rec(event_kind::task_cancelled, r, r.error));
            fx.wake_waiters = true;
        }
    }
    c.apply(fx);
    return true;
}

// Running on another node (or changing hands right now): leaves a marker
// that its holder sees at the next renewal, or its next leaser when it starts.
bool node_engine::mark_cancel(const std::string& id) {
    for (int tries = 0; tries < 5; ++tries) {
        auto rec = c.store->get(id);
        if (!rec || is_terminal(rec->status)) return false;
        if (rec->metadata.count(cancel_key)) return true;
        task_record r = *rec;
        r.metadata[cancel_key] = "requested";
        if (c.store->update(r, rec->status)) return true;
    }
    return false;
}

// The mailbox is in the transport: whichever node runs the task (now or in
// a later attempt) reads it there. The record is looked at first: a
// finished task stays in the transport until its ack, just after its
// record says how it ended.
void node_engine::steer(const std::string& id, std::vector<std::string> messages) {
    auto check_record = [&] {
        auto rec = c.store->get(id);
        if (!rec) throw error(errc::not_found, "orchcore: steer: no task with id \"" + id + "\"");
        if (is_terminal(rec->status))
            throw error(errc::task_finished, "orchcore: steer: task \"" + id + "\" already " +
                                                 std::string(to_string(rec->status)));
        return rec->status;
    };
    check_record();
    if (!tp->post_messages(id, messages)) {
        const auto status = check_record();
        throw error(errc::not_found, "orchcore: steer: task \"" + id + "\" is not in the queue (" +
                                         std::string(to_string(status)) + ", finishing or not yet admitted)");
    }
    std::lock_guard lk(c.mu);
    if (auto it = c.tasks.find(id); it != c.tasks.end()) c.wake_receiver(it->second);
}

std::optional<task_record> node_engine::get(const std::string& id) const { return c.store->get(id); }

std::vector<std::optional<task_record>> node_engine::get_many(std::span<const std::string> ids) const {
    return c.store->get_many(ids);
}

node_engine::store_look node_engine::look_shared(const std::string& id, bool& seen) const {
    std::optional<task_record> r;
    try {
        r = c.store->get(id);
    } catch (const error& e) {
        if (e.code() != errc::backend_unavailable) throw;
        return {};
    }
    if (!r) {
        if (!seen) throw error(errc::not_found, "orchcore: no task with id \"" + id + "\"");
        return {true, std::nullopt};
    }
    seen = true;
    if (is_terminal(r->status)) return {true, std::move(r)};
    return {};
}

// The record may be finished by any node: a finish notification wakes the
// wait (a slow look at the shared store guards against a lost one);
// without notifications the store is polled with a short backoff. A
// completion on this node wakes it at once.
std::optional<task_record> node_engine::wait_until(const std::string& id, steady::time_point deadline) {
    auto backoff = std::chrono::milliseconds(1);
    bool seen = false;
    const bool notified = finishes.ensure(*tp);
    for (;;) {
        const auto gen = finish_generation();
        if (auto look = look_shared(id, seen); look.done) return std::move(look.rec);
        const auto now = steady::now();
        if (now >= deadline) return std::nullopt;
        const auto look_again = std::min(deadline, now + remote_wait_step(notified, backoff));
        std::unique_lock lk(c.mu);
        if (notified) c.done_cv.wait_until(lk, look_again, [&] { return finished_gen != gen; });
        else c.done_cv.wait_until(lk, look_again);
    }
}

asio::awaitable<std::optional<task_record>> node_engine::async_wait_until(std::string id,
                                                                        steady::time_point deadline) {
    using namespace asio::experimental::awaitable_operators;
    auto ex = co_await asio::this_coro::executor;
    auto backoff = std::chrono::milliseconds(1);
    bool seen = false;
    const bool notified = finishes.ensure(*tp);
    for (;;) {
        // As wait_until: woken by finish notifications, with a slow look
        // at the shared store (or polled without notifications).
        const auto gen = finish_generation();
        if (auto look = look_shared(id, seen); look.done) co_return std::move(look.rec);
        const auto now = steady::now();
        if (now >= deadline) co_return std::nullopt;
        auto waiter = std::make_shared<async_waiter>(ex);
        {
            std::lock_guard lk(c.mu);
            if (finished_gen != gen) continue;  // a notification came meanwhile: look again
            c.add_async_waiter(id, waiter);
        }
        asio::steady_timer timer(ex);
        timer.expires_at(std::min(deadline, now + remote_wait_step(notified, backoff)));
        (void)co_await (waiter->wake_ch.async_receive(asio::as_tuple(asio::use_awaitable)) ||
                        timer.async_wait(asio::as_tuple(asio::use_awaitable)));
        c.drop_async_waiter(id, waiter);
    }
}

coordinator_stats node_engine::stats() const {
    std::optional<transport_stats> ts;
    try {
        ts = tp->stats();  // the shared queue, outside the lock
    } catch (const std::exception&) {
    }
    std::lock_guard lk(c.mu);
    coordinator_stats s = c.counters;
    s.queued = ts ? ts->waiting : 0;
    s.delayed = ts ? ts->delayed : 0;
    s.running = c.running_count;
    s.workers = c.live_workers();
    s.tracked_tasks = c.tasks.size();
    return s;
}

// A node stops taking leases; graceful lets its running attempts finish
// until the deadline; what is left goes back to the shared queue for
// other nodes (not cancelled).
std::optional<bool> node_engine::drain(stop_mode mode, std::chrono::milliseconds deadline) {
    std::unique_lock lk(c.mu);
    if (c.stopped) return std::nullopt;
    c.stopping = true;
    auto idle = [&] { return c.running_count == 0 && io_inflight == 0; };
    if (mode == stop_mode::graceful) c.done_cv.wait_until(lk, deadline_after(deadline), idle);
    bool clean = true;
    std::vector<dist_op> ops;
    for (auto it = c.tasks.begin(); it != c.tasks.end();) {
        if (it->second.attempt) {
            clean = false;
            ops.push_back(make_op(it->second, task_status::queued, {}, {}, event_kind::task_requeued,
                                  "node stopping", dist_op::why::stop));
        }
        it = c.tasks.erase(it);
    }
    io_inflight += retry_ops.size();  // one last try for what the backend failed to record
    std::move(retry_ops.begin(), retry_ops.end(), std::back_inserter(ops));
    retry_ops.clear();
    lk.unlock();
    run_ops(ops);
    lk.lock();
    c.done_cv.wait_until(lk, deadline_after(saturating_add(c.opt.cancel_grace, std::chrono::milliseconds(100))),
                         idle);
    // Lease calls in flight must end before the control thread goes.
    c.done_cv.wait(lk, [&] { return io_inflight == 0; });
    c.stopped = true;
    return clean;
}

// Steering reads: the mailbox is the transport's, shared by every node;
// the take is fenced by the attempt's lease token in the transport.
std::vector<std::string> node_engine::take_remote(attempt_state& a) {
    {
        std::lock_guard lk(c.mu);
        auto it = c.tasks.find(a.id);
        if (it == c.tasks.end() || it->second.attempt.get() != &a) throw c.stale_read(a);
    }
    auto msgs = tp->take_messages(a.id, a.token);
    if (!msgs) {
        std::lock_guard lk(c.mu);
        throw c.stale_read(a);
    }
    return std::move(*msgs);
}

std::vector<std::string> node_engine::receive(attempt_state& a) { return take_remote(a); }

// Looks at the shared mailbox with a backoff from 1 ms to 50 ms; a steer()
// on this node wakes it at once.
std::vector<std::string> node_engine::receive_for(attempt_state& a, steady::time_point deadline) {
    auto backoff = std::chrono::milliseconds(1);
    for (;;) {
        auto msgs = take_remote(a);
        const auto now = steady::now();
        if (!msgs.empty() || a.cancel.load() || now >= deadline) return msgs;
        std::unique_lock lk(c.mu);
        a.mailbox_cv.wait_until(lk, std::min(deadline, now + next_poll_of(backoff)));
    }
}

asio::awaitable<std::vector<std::string>> node_engine::async_receive_for(std::shared_ptr<attempt_state> a,
                                                                       steady::time_point deadline) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    auto backoff = std::chrono::milliseconds(1);
    for (;;) {
        auto msgs = take_remote(*a);
        const auto now = steady::now();
        if (!msgs.empty() || a->cancel.load() || now >= deadline) co_return msgs;
        {
            std::lock_guard lk(c.mu);
            a->waiting_timer = &timer;
        }
        timer.expires_at(std::min(deadline, now + next_poll_of(backoff)));
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        std::lock_guard lk(c.mu);
        a->waiting_timer = nullptr;
    }
}

std::string node_engine::worker_name(std::uint64_t seq) const {
    return c.node + "/worker-" + std::to_string(seq);
}

}  // namespace orchcore::detail
