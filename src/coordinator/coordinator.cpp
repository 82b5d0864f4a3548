// The coordinator facade.
#include "coordinator_impl.hpp"


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
    std::optional<std::vector<worker_record>> listed;
    for (const auto& t : tasks) impl_->require_placeable(t.options, listed);
    return impl_->eng->submit_many(tasks, this);
}

submit_result coordinator::submit_async(std::string type, std::string payload, task_options o) {
    detail::validate_task_options(o);
    if (type.empty()) throw invalid_argument("type", "\"\"", "a task type must not be empty");
    std::optional<std::vector<worker_record>> listed;
    impl_->require_placeable(o, listed);
    task_request one{std::move(type), std::move(payload), std::move(o)};
    return impl_->eng->submit_one(one, this);
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

std::optional<task_record> coordinator::wait_until(const std::string& id,
                                                   std::chrono::steady_clock::time_point deadline) {
    const detail::attempt_state* running = detail::attempt_on_this_thread();
    if (running && running->c == impl_.get() && running->id == id)
        throw invalid_argument("id", "\"" + id + "\"",
                               "a handler cannot wait for its own task (it ends only when the handler returns)");
    return impl_->eng->wait_until(id, deadline);
}

asio::awaitable<std::optional<task_record>> coordinator::async_wait_for(std::string id,
                                                                        std::chrono::milliseconds timeout) {
    co_return co_await async_wait_until(std::move(id), detail::deadline_after(timeout));
}

asio::awaitable<std::optional<task_record>> coordinator::async_wait_until(
    std::string id, std::chrono::steady_clock::time_point deadline) {
    auto impl = impl_;
    co_return co_await impl->eng->async_wait_until(std::move(id), deadline);
}

std::optional<task_record> coordinator::get_task(const std::string& id) const { return impl_->eng->get(id); }

std::optional<task_status> coordinator::get_status(const std::string& id) const { return impl_->eng->status(id); }

std::vector<std::optional<task_record>> coordinator::get_tasks(std::span<const std::string> ids) const {
    return impl_->eng->get_many(ids);
}

std::vector<std::optional<task_outcome>> coordinator::get_outcomes(std::span<const std::string> ids) const {
    return impl_->eng->get_outcomes(ids);
}

std::unique_ptr<transport_watch> coordinator::watch_finished(std::function<void(const std::string&)> on_finished) {
    if (!on_finished) throw invalid_argument("on_finished", "empty", "a watcher must be callable");
    return impl_->eng->watch_finished([f = std::move(on_finished)](std::span<const std::string> ids) {
        for (const auto& id : ids) {
            try {
                f(id);
            } catch (...) {
                // The watcher's failure for one id: it is still told the others.
            }
        }
    });
}

std::unique_ptr<transport_watch> coordinator::watch_finished_many(
    std::function<void(std::span<const std::string>)> on_finished) {
    if (!on_finished) throw invalid_argument("on_finished", "empty", "a watcher must be callable");
    return impl_->eng->watch_finished(std::move(on_finished));
}

std::unique_ptr<transport_watch> coordinator::watch_outcomes(
    std::function<void(std::span<const finished_task>)> on_finished) {
    if (!on_finished) throw invalid_argument("on_finished", "empty", "a watcher must be callable");
    return impl_->eng->watch_outcomes(std::move(on_finished));
}

std::optional<std::string> coordinator::get_result(const std::string& id) const {
    auto r = get_task(id);
    if (!r || r->status != task_status::completed) return std::nullopt;
    return r->result;
}

bool coordinator::cancel(const std::string& id) { return impl_->eng->cancel(id); }
bool coordinator::promote(const std::string& id) { return impl_->eng->promote(id); }

void coordinator::steer(const std::string& id, std::vector<std::string> messages) {
    impl_->eng->steer(id, std::move(messages));
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
        c.eng->capacity_changed(fx);
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
        i.resources = w.res.inventory();
        i.free = w.res.free();
        i.status = w.draining ? worker_status::draining
                              : (w.busy > 0 ? worker_status::busy : worker_status::idle);
        out.push_back(std::move(i));
    }
    return out;
}

coordinator_stats coordinator::get_stats() const { return impl_->eng->stats(); }

event_bus& coordinator::events() noexcept { return impl_->bus; }

bool coordinator::stop(stop_mode mode, std::chrono::milliseconds deadline) {
    if (impl_->stop_from_inside([c = impl_, mode, deadline] { (void)stop_on(*c, mode, deadline); })) return false;
    impl_->await_stopper();
    return stop_on(*impl_, mode, deadline);
}

bool coordinator::stop_on(detail::coordinator_impl& c, stop_mode mode, std::chrono::milliseconds deadline) {
    const auto clean = c.eng->drain(mode, deadline);
    if (!clean) return true;  // stopped already
    c.stop_control();
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
        detail::effects fx;
        c.eng->settle_fenced(fx);
        // The workers are going away with whatever slots they still hold.
        c.running_count = 0;
        c.done_cv.notify_all();
    }
    c.carry_out_io();
    c.flush_events();
    for (auto& w : all) c.end_worker(*w);
    c.carry_out_io();  // before forget: a late registry call would bring an entry back
    c.forget(leaving);
    {
        std::lock_guard lk(c.mu);
        c.torn_down = true;
        c.wake_async_waiters();  // they find their tasks ended (or gone)
    }
    return *clean;
}

const std::string& coordinator::node_id() const noexcept { return impl_->node; }
bool coordinator::distributed() const noexcept { return impl_->opt.node.has_value(); }

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
