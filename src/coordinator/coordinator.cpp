// The coordinator facade.
#include "coordinator_impl.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace orchcore {

// ------------------------------------------------------------- coordinator

coordinator::coordinator(coordinator_options options) {
    options.validate();
    impl_ = std::make_shared<detail::coordinator_impl>(std::move(options));
    detail::effects fx;
    {
        std::lock_guard lk(impl_->mu);
        for (std::size_t i = 0; i < impl_->opt.scaling.min_workers; ++i)
            impl_->create_worker(impl_->opt.worker_template, fx);
    }
    impl_->apply(fx);
    impl_->start_control();
}

coordinator::~coordinator() {
    if (impl_) stop(stop_mode::abort, impl_->opt.cancel_grace);
}

void coordinator::register_handler(std::string type, task_handler h) {
    if (type.empty()) throw invalid_argument("type", "\"\"", "a task type must not be empty");
    if (!h) throw invalid_argument("handler", type, "must not be empty");
    std::lock_guard lk(impl_->mu);
    impl_->async_handlers.erase(type);
    impl_->handlers[std::move(type)] = std::make_shared<const task_handler>(std::move(h));
}

void coordinator::register_async_handler(std::string type, async_task_handler h) {
    if (type.empty()) throw invalid_argument("type", "\"\"", "a task type must not be empty");
    if (!h) throw invalid_argument("handler", type, "must not be empty");
    std::lock_guard lk(impl_->mu);
    impl_->handlers.erase(type);
    impl_->async_handlers[std::move(type)] = std::make_shared<const async_task_handler>(std::move(h));
}


std::vector<submit_result> coordinator::submit_many(std::vector<task_request> tasks) {
    for (const auto& t : tasks) {
        if (t.type.empty()) throw invalid_argument("type", "\"\"", "a task type must not be empty");
        detail::validate_task_options(t.options);
    }
    auto& c = *impl_;
    if (c.dist()) return submit_many_dist(tasks);
    {
        // Every type first: a missing handler rejects the whole call.
        std::lock_guard lk(c.mu);
        for (const auto& t : tasks) c.require_handler(t.type);
    }
    std::vector<submit_result> out(tasks.size());
    // One lock round trip per chunk, not per task; chunks keep each hold
    // short, so workers finishing tasks are not held up for long.
    constexpr std::size_t chunk = 64;
    for (std::size_t first = 0; first < tasks.size(); first += chunk) {
        const std::size_t last = std::min(tasks.size(), first + chunk);
        detail::effects fx;
        {
            std::lock_guard lk(c.mu);
            for (std::size_t i = first; i < last; ++i)
                c.admit_local(tasks[i].type, tasks[i].payload, tasks[i].options, out[i], this, fx);
            c.dispatch(fx);
        }
        c.apply(fx);
    }
    return out;
}

submit_result coordinator::submit_async(std::string type, std::string payload, task_options o) {
    auto& c = *impl_;
    detail::validate_task_options(o);

    submit_result out;
    detail::effects fx;
    if (c.dist()) {
        if (type.empty()) throw invalid_argument("type", "\"\"", "a task type must not be empty");
        std::vector<task_request> one;
        one.push_back({std::move(type), std::move(payload), std::move(o)});
        return std::move(submit_many_dist(one).front());
    }

    {
        std::lock_guard lk(c.mu);
        c.require_handler(type);
        c.admit_local(type, payload, o, out, this, fx);
        if (out.admission.is_accepted) c.dispatch(fx);
    }
    c.apply(fx);
    return out;
}

admission_result<std::monostate, std::string> coordinator::post(std::string type, std::string payload,
                                                                 task_options options) {
    auto r = submit_async(std::move(type), std::move(payload), std::move(options));
    return std::move(r.admission);
}

std::string coordinator::submit(std::string type, std::string payload, task_options options) {
    auto r = submit_async(std::move(type), std::move(payload), std::move(options));
    if (!r) {
        throw rejected_error(r.admission.reason, r.admission.retry_after,
                             "orchcore: submit rejected: " + std::string(to_string(r.admission.reason)) + " (" +
                                 std::string(r.admission.detail) + ")");
    }
    return r.handle.get();
}

std::optional<task_record> coordinator::wait_for(const std::string& id, std::chrono::milliseconds timeout) {
    return wait_until(id, detail::deadline_after(timeout));
}

std::optional<task_record> coordinator::wait_until(const std::string& id, std::chrono::steady_clock::time_point deadline) {
    auto& c = *impl_;
    if (c.dist()) {
        // The record may be finished by any node: poll the shared store with
        // a short backoff; a completion on this node wakes the wait at once.
        auto backoff = std::chrono::milliseconds(1);
        bool seen = false;
        for (;;) {
            if (auto look = c.look_shared(id, seen); look.done) return std::move(look.rec);
            const auto now = detail::steady::now();
            if (now >= deadline) return std::nullopt;
            std::unique_lock lk(c.mu);
            c.done_cv.wait_until(lk, std::min(deadline, now + backoff));
            backoff = std::min(backoff * 2, std::chrono::milliseconds(50));
        }
    }
    std::unique_lock lk(c.mu);
    auto it = c.tasks.find(id);
    if (it == c.tasks.end()) throw error(errc::not_found, "orchcore: no task with id \"" + id + "\"");
    for (bool first = true;; first = false) {
        if (!first) it = c.tasks.find(id);  // the table may have changed while waiting
        if (it == c.tasks.end()) return std::nullopt;  // expired while waiting
        // Terminal, and its terminal event delivered: a subscriber has seen
        // the end of a task by the time its waiter does.
        if (is_terminal(it->second.rec.status) && c.delivered_up_to(it->second.terminal_event_seq))
            return it->second.rec;
        if (c.done_cv.wait_until(lk, deadline) == std::cv_status::timeout) {
            it = c.tasks.find(id);
            if (it != c.tasks.end() && is_terminal(it->second.rec.status)) return it->second.rec;
            return std::nullopt;
        }
    }
}

asio::awaitable<std::optional<task_record>> coordinator::async_wait_for(std::string id,
                                                                        std::chrono::milliseconds timeout) {
    co_return co_await async_wait_until(std::move(id), detail::deadline_after(timeout));
}

asio::awaitable<std::optional<task_record>> coordinator::async_wait_until(std::string id,
                                                                          std::chrono::steady_clock::time_point deadline) {
    using namespace asio::experimental::awaitable_operators;
    auto& c = *impl_;
    auto ex = co_await asio::this_coro::executor;
    auto backoff = std::chrono::milliseconds(1);
    bool seen = false;
    for (;;) {
        auto waiter = std::make_shared<detail::async_waiter>(ex);
        auto wake_at = deadline;
        if (c.dist()) {
            // As wait_until: the shared store is looked at with a backoff;
            // a completion on this node wakes the waiter at once.
            if (auto look = c.look_shared(id, seen); look.done) co_return std::move(look.rec);
            const auto now = detail::steady::now();
            if (now >= deadline) co_return std::nullopt;
            wake_at = std::min(deadline, now + backoff);
            backoff = std::min(backoff * 2, std::chrono::milliseconds(50));
            std::lock_guard lk(c.mu);
            c.add_async_waiter(id, waiter);
        } else {
            std::lock_guard lk(c.mu);
            auto it = c.tasks.find(id);
            if (it == c.tasks.end()) {
                if (!seen) throw error(errc::not_found, "orchcore: no task with id \"" + id + "\"");
                co_return std::nullopt;  // expired while waiting
            }
            seen = true;
            const bool terminal = is_terminal(it->second.rec.status);
            if (terminal && c.delivered_up_to(it->second.terminal_event_seq)) co_return it->second.rec;
            if (detail::steady::now() >= deadline) {
                if (terminal) co_return it->second.rec;
                co_return std::nullopt;
            }
            c.add_async_waiter(id, waiter);
        }
        asio::steady_timer timer(ex);
        timer.expires_at(wake_at);
        (void)co_await (waiter->wake_ch.async_receive(asio::as_tuple(asio::use_awaitable)) ||
                        timer.async_wait(asio::as_tuple(asio::use_awaitable)));
        // Woken or timed out: no longer waiting (a waker erased it already).
        std::lock_guard lk(c.mu);
        auto [b, e] = c.async_waiters.equal_range(id);
        for (auto it = b; it != e; ++it) {
            if (it->second == waiter) {
                c.erase_async_waiter(it);
                break;
            }
        }
    }
}

std::optional<task_record> coordinator::get_task(const std::string& id) const {
    auto& c = *impl_;
    if (c.write_through) return c.store->get(id);
    std::lock_guard lk(c.mu);
    auto it = c.tasks.find(id);
    if (it == c.tasks.end()) return std::nullopt;
    return it->second.rec;
}

std::optional<task_status> coordinator::get_status(const std::string& id) const {
    auto& c = *impl_;
    if (!c.write_through) {
        std::lock_guard lk(c.mu);
        auto it = c.tasks.find(id);
        if (it == c.tasks.end()) return std::nullopt;
        return it->second.rec.status;
    }
    auto r = c.store->get(id);
    if (!r) return std::nullopt;
    return r->status;
}

std::optional<std::string> coordinator::get_result(const std::string& id) const {
    auto r = get_task(id);
    if (!r || r->status != task_status::completed) return std::nullopt;
    return r->result;
}

bool coordinator::cancel(const std::string& id) {
    auto& c = *impl_;
    detail::effects fx;
    bool ok = false;
    if (c.dist()) {
        {
            std::lock_guard lk(c.mu);
            auto it = c.tasks.find(id);
            if (it != c.tasks.end() && it->second.attempt) {  // running here
                auto& t = it->second;
                if (!t.cancel_requested) {
                    t.cancel_requested = true;
                    t.cancel_deadline = detail::deadline_after(c.opt.cancel_grace);
                    detail::coordinator_impl::signal_cancel(t.attempt);
                }
                return true;
            }
        }
        if (c.tp->cancel(id)) {
            // It was waiting: out of the queue now, so this node settles it.
            auto rec = c.store->get(id);
            if (rec && !is_terminal(rec->status)) {
                task_record r = *rec;
                r.status = task_status::cancelled;
                r.finished_at = detail::wall::now();
                r.error = "cancelled";
                r.metadata.erase(detail::coordinator_impl::cancel_key);
                if (c.owner_write(r, rec->status)) {
                    std::lock_guard lk(c.mu);
                    ++c.counters.cancelled;
                    c.emit(detail::coordinator_impl::make_event_rec(event_kind::task_cancelled, r, r.error));
                    fx.wake_waiters = true;
                }
            }
            c.apply(fx);
            return true;
        }
        // Running on another node (or changing hands right now): leave a
        // marker that its holder sees at the next renewal, or its next
        // leaser when it starts.
        for (int tries = 0; tries < 5; ++tries) {
            auto rec = c.store->get(id);
            if (!rec || is_terminal(rec->status)) return false;
            if (rec->metadata.count(detail::coordinator_impl::cancel_key)) return true;
            task_record r = *rec;
            r.metadata[detail::coordinator_impl::cancel_key] = "requested";
            if (c.store->update(r, rec->status)) return true;
        }
        return false;
    }
    {
        std::lock_guard lk(c.mu);
        auto it = c.tasks.find(id);
        if (it == c.tasks.end() || is_terminal(it->second.rec.status)) return false;
        auto& t = it->second;
        if (t.rec.status == task_status::running) {
            if (!t.cancel_requested) {
                t.cancel_requested = true;
                t.cancel_deadline = detail::deadline_after(c.opt.cancel_grace);
                if (t.attempt) detail::coordinator_impl::signal_cancel(t.attempt);
            }
        } else {
            c.finish(t, task_status::cancelled, "cancelled", fx);
            c.dispatch(fx);
        }
        ok = true;
    }
    c.apply(fx);
    return ok;
}

void coordinator::steer(const std::string& id, std::vector<std::string> messages) {
    auto& c = *impl_;
    // Wakes a handler of this node waiting in receive_for for this task.
    auto wake_local = [](detail::task_entry& t) {
        if (!t.attempt) return;
        t.attempt->mailbox_cv.notify_all();
        if (t.attempt->strand) {
            auto a = t.attempt;
            asio::post(*a->strand, [a] {
                std::lock_guard lk2(a->c->mu);
                if (a->waiting_timer) a->waiting_timer->cancel();
            });
        }
    };
    if (c.dist()) {
        // The mailbox is in the transport: whichever node runs the task
        // (now or in a later attempt) reads it there. The record is looked
        // at first: a finished task stays in the transport until its ack,
        // just after its record says how it ended.
        auto check_record = [&] {
            auto rec = c.store->get(id);
            if (!rec) throw error(errc::not_found, "orchcore: steer: no task with id \"" + id + "\"");
            if (is_terminal(rec->status))
                throw error(errc::task_finished, "orchcore: steer: task \"" + id + "\" already " +
                                                     std::string(to_string(rec->status)));
            return rec->status;
        };
        check_record();
        if (!c.tp->post_messages(id, messages)) {
            const auto status = check_record();
            throw error(errc::not_found, "orchcore: steer: task \"" + id + "\" is not in the queue (" +
                                             std::string(to_string(status)) + ", finishing or not yet admitted)");
        }
        std::lock_guard lk(c.mu);
        if (auto it = c.tasks.find(id); it != c.tasks.end()) wake_local(it->second);
        return;
    }
    std::lock_guard lk(c.mu);
    auto it = c.tasks.find(id);
    if (it == c.tasks.end()) throw error(errc::not_found, "orchcore: steer: no task with id \"" + id + "\"");
    auto& t = it->second;
    if (is_terminal(t.rec.status))
        throw error(errc::task_finished, "orchcore: steer: task \"" + id + "\" already " +
                                             std::string(to_string(t.rec.status)));
    for (auto& m : messages) t.mailbox.push_back(std::move(m));
    wake_local(t);
}

std::size_t coordinator::scale(std::size_t n) {
    auto& c = *impl_;
    detail::effects fx;
    std::size_t r;
    {
        std::lock_guard lk(c.mu);
        if (c.stopping) throw shutdown_error("orchcore: scale() after stop()");
        r = c.scale_to(n, "manual scale(" + std::to_string(n) + ")", fx);
    }
    c.apply(fx);
    return r;
}

std::string coordinator::add_worker(worker_options options) {
    auto& c = *impl_;
    detail::effects fx;
    std::string id;
    {
        std::lock_guard lk(c.mu);
        if (c.stopping) throw shutdown_error("orchcore: add_worker() after stop()");
        id = c.create_worker(std::move(options), fx)->id();
        c.dispatch(fx);
    }
    c.apply(fx);
    return id;
}

std::vector<worker_info> coordinator::get_workers() const {
    std::lock_guard lk(impl_->mu);
    std::vector<worker_info> out;
    const auto now = detail::steady::now();
    for (const auto& [id, w] : impl_->workers) {
        worker_info i;
        i.id = id;
        i.tags = w.w->options().tags;
        i.max_concurrent = w.w->options().max_concurrent;
        for (const auto& a : w.running) i.current_tasks.push_back(a->id);
        i.completed = w.completed;
        i.failed = w.failed;
        i.uptime = std::chrono::duration_cast<std::chrono::milliseconds>(now - w.w->started_at());
        i.available = w.draining ? 0 : i.max_concurrent - std::min(w.busy, i.max_concurrent);
        i.last_heartbeat = w.last_heartbeat_wall;
        i.status = w.draining ? worker_status::draining
                              : (w.busy > 0 ? worker_status::busy : worker_status::idle);
        out.push_back(std::move(i));
    }
    return out;
}

coordinator_stats coordinator::get_stats() const {
    auto& c = *impl_;
    std::optional<transport_stats> ts;
    if (c.dist()) {
        try {
            ts = c.tp->stats();  // the shared queue, outside the lock
        } catch (const std::exception&) {
        }
    }
    std::lock_guard lk(c.mu);
    coordinator_stats s = c.counters;
    s.queue = c.queue->metrics();
    s.queued = c.queue->size() + c.ready.size() + c.parked.size();
    s.delayed = c.delayed.size();
    if (c.dist()) {
        s.queued = ts ? ts->waiting : 0;
        s.delayed = ts ? ts->delayed : 0;
    }
    s.running = c.running_count;
    s.workers = c.live_workers();
    s.tracked_tasks = c.tasks.size();
    return s;
}

event_bus& coordinator::events() noexcept { return impl_->bus; }

bool coordinator::stop(stop_mode mode, std::chrono::milliseconds deadline) {
    if (impl_->stop_from_inside([c = impl_, mode, deadline] { (void)stop_on(*c, mode, deadline); })) return false;
    impl_->await_stopper();
    return stop_on(*impl_, mode, deadline);
}

bool coordinator::stop_on(detail::coordinator_impl& c, stop_mode mode, std::chrono::milliseconds deadline) {
    bool clean = true;
    if (c.dist()) {
        // A node stops taking leases; graceful lets its running attempts
        // finish until the deadline; what is left goes back to the shared
        // queue for other nodes (not cancelled).
        std::unique_lock lk(c.mu);
        if (c.stopped) return true;
        c.stopping = true;
        if (mode == stop_mode::graceful) {
            c.done_cv.wait_until(lk, detail::deadline_after(deadline),
                                 [&] { return c.running_count == 0 && c.io_inflight == 0; });
        }
        std::vector<detail::dist_op> ops;
        for (auto it = c.tasks.begin(); it != c.tasks.end();) {
            if (it->second.attempt) {
                clean = false;
                ops.push_back(c.make_op(it->second, task_status::queued, {}, {}, event_kind::task_requeued,
                                        "node stopping", detail::dist_op::why::stop));
            }
            it = c.tasks.erase(it);
        }
        c.io_inflight += c.retry_ops.size();  // one last try for what the backend failed to record
        std::move(c.retry_ops.begin(), c.retry_ops.end(), std::back_inserter(ops));
        c.retry_ops.clear();
        lk.unlock();
        c.run_ops(ops);
        lk.lock();
        c.done_cv.wait_until(lk, detail::deadline_after(detail::saturating_add(c.opt.cancel_grace, std::chrono::milliseconds(100))),
                             [&] { return c.running_count == 0 && c.io_inflight == 0; });
        // Lease calls in flight must end before the control thread goes.
        c.done_cv.wait(lk, [&] { return c.io_inflight == 0; });
        c.stopped = true;
    }
    if (!c.dist()) {
        std::unique_lock lk(c.mu);
        if (c.stopped) return true;
        c.stopping = true;
        c.queue->close();
        auto unfinished = [&] {
            return c.queue->size() + c.ready.size() + c.parked.size() + c.delayed.size() + c.running_count;
        };
        if (mode == stop_mode::graceful) {
            const auto until = detail::deadline_after(deadline);
            c.done_cv.wait_until(lk, until, [&] { return unfinished() == 0; });
        }
        // Whatever is left is cancelled: waiting tasks at once, running ones
        // cooperatively (fenced after cancel_grace).
        detail::effects fx;
        for (auto& [id, t] : c.tasks) {
            if (is_terminal(t.rec.status)) continue;
            clean = false;
            if (t.rec.status == task_status::running) {
                if (!t.cancel_requested) {
                    t.cancel_requested = true;
                    t.cancel_deadline = detail::deadline_after(c.opt.cancel_grace);
                    if (t.attempt) detail::coordinator_impl::signal_cancel(t.attempt);
                }
            } else {
                c.finish(t, task_status::cancelled, "coordinator stopped", fx);
            }
        }
        lk.unlock();
        c.apply(fx);
        lk.lock();
        // Give cooperative handlers their grace period; the tick fences the rest.
        c.done_cv.wait_until(lk, detail::deadline_after(detail::saturating_add(c.opt.cancel_grace, std::chrono::milliseconds(100))),
                             [&] { return c.running_count == 0; });
        c.stopped = true;
    }
    // Stop the control loop (thread or user executor), then every worker.
    c.stop_user_control();
    asio::post(c.ctl, [&c] { c.tick_timer.cancel(); });
    c.ctl.stop();
    if (c.ctl_thread.joinable()) c.ctl_thread.join();
    if (c.io) c.io->join();
    std::vector<std::shared_ptr<worker>> all;
    std::vector<std::string> leaving;  // registry entries to remove
    {
        std::lock_guard lk(c.mu);
        leaving = c.registry_entries();
        for (auto& [id, w] : c.workers) all.push_back(w.w);
        c.workers.clear();
        for (auto& w : c.retired) all.push_back(w);
        c.retired.clear();
        for (auto& w : c.dead_workers) all.push_back(w);
        c.dead_workers.clear();
        while (!c.beats.empty()) c.stop_heartbeats(c.beats.begin()->first);
        // Anything still running at this point has been fenced; mark it.
        detail::effects fx;
        for (auto& [id, t] : c.tasks) {
            if (!is_terminal(t.rec.status) && t.rec.status == task_status::running) {
                c.fence_attempt(t);
                c.finish(t, task_status::cancelled, "coordinator stopped", fx);
            }
        }
        // The workers are going away with whatever slots they still hold.
        c.running_count = 0;
        c.done_cv.notify_all();
    }
    c.flush_events();
    for (auto& w : all) c.end_worker(*w);
    c.forget(leaving);
    {
        std::lock_guard lk(c.mu);
        c.torn_down = true;
        c.wake_async_waiters();  // they find their tasks ended (or gone)
    }
    return clean;
}

const std::string& coordinator::node_id() const noexcept { return impl_->node; }

void coordinator::suspend_heartbeats(const std::string& worker_id) {
    std::lock_guard lk(impl_->mu);
    auto it = impl_->workers.find(worker_id);
    if (it == impl_->workers.end())
        throw error(errc::not_found, "orchcore: no worker with id \"" + worker_id + "\"");
    it->second.heartbeats_suspended = true;
}

void coordinator::resume_heartbeats(const std::string& worker_id) {
    auto& c = *impl_;
    std::lock_guard lk(c.mu);
    auto it = c.workers.find(worker_id);
    if (it != c.workers.end()) {
        it->second.heartbeats_suspended = false;
        if (auto b = c.beats.find(worker_id); b != c.beats.end()) c.arm_heartbeat(b->second, worker_id, {});
        return;
    }
    // Declared dead meanwhile: the worker comes back and heartbeats once,
    // from its own threads, as a wedged worker would; that is refused.
    if (auto dead = c.dead_worker(worker_id)) {
        dead->post_control([&c, wid = worker_id] { (void)c.heartbeat(wid); });
        return;
    }
    throw error(errc::not_found, "orchcore: no worker with id \"" + worker_id + "\"");
}

}  // namespace orchcore
