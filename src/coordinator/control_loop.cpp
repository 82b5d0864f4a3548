// The control loop: its own thread or a timer on the user's executor; stop from inside.
#include "coordinator_impl.hpp"

namespace orchcore::detail {

void coordinator_impl::arm_user_tick() {  // uctl->m held
    uctl->timer.expires_after(tick_every);
    uctl->timer.async_wait([this, u = uctl](boost::system::error_code ec) {
        std::unique_lock g(u->m);
        if (ec || u->closed) return;  // stopped: `this` may be gone
        u->ticking.store(std::this_thread::get_id());
        eng->tick();
        u->ticking.store({});
        {
            std::lock_guard lk(mu);
            if (stopped) return;
        }
        arm_user_tick();
    });
}

void coordinator_impl::stop_user_control() {
    if (!uctl) return;
    if (uctl->ticking.load() == std::this_thread::get_id()) {
        uctl->closed = true;  // stop() from inside a tick (an event subscriber): this thread holds m
        uctl->timer.cancel();
        return;
    }
    std::lock_guard g(uctl->m);
    uctl->closed = true;
    uctl->timer.cancel();
}

void coordinator_impl::start_control() {
    next_autoscale = deadline_after(opt.autoscale_interval);
    next_maintenance = deadline_after(opt.maintenance_interval);
    tick_every = std::min<std::chrono::milliseconds>(
        {std::chrono::milliseconds(10), opt.worker_template.heartbeat_interval, opt.worker_timeout / 4});
    if (tick_every.count() <= 0) tick_every = std::chrono::milliseconds(1);
    if (opt.executor) {
        uctl = std::make_shared<user_control>(*opt.executor);
        std::lock_guard g(uctl->m);
        arm_user_tick();
        return;
    }
    arm_tick();
    ctl_thread = std::thread([this] { ctl.run(); });
    ctl_thread_id = ctl_thread.get_id();
}

// Lock held. Whether the calling thread is one that stop() waits for:
// the control thread, an I/O thread, a worker's, or a tick on the user's
// executor (a handler or an event subscriber runs on one of them).
bool coordinator_impl::on_own_thread() {
    const auto me = std::this_thread::get_id();
    if (me == ctl_thread_id || (uctl && uctl->ticking.load() == me)) return true;
    if (eng->runs_here()) return true;
    auto here = [](const std::shared_ptr<worker>& w) { return w->runs_here(); };
    for (const auto& [id, w] : workers)
        if (here(w.w)) return true;
    return std::any_of(retired.begin(), retired.end(), here) ||
           std::any_of(dead_workers.begin(), dead_workers.end(), here);
}

// A stop() from outside first waits for one started from inside.
void coordinator_impl::await_stopper() {
    std::thread t;
    {
        std::lock_guard lk(mu);
        if (stopper.joinable() && stopper.get_id() != std::this_thread::get_id()) t = std::move(stopper);
    }
    if (t.joinable()) t.join();
}

void coordinator_impl::arm_tick() {
    tick_timer.expires_after(tick_every);
    tick_timer.async_wait([this](boost::system::error_code ec) {
        if (ec) return;
        eng->tick();
        std::lock_guard lk(mu);
        if (!stopped) arm_tick();
    });
}

// stop(): ends the control loop (thread or user executor), then the
// engine's own threads.
void coordinator_impl::stop_control() {
    stop_user_control();
    asio::post(ctl, [this] { tick_timer.cancel(); });
    ctl.stop();
    if (ctl_thread.joinable()) ctl_thread.join();
    eng->join_io();
}

}  // namespace orchcore::detail
