#include "node_wakeups.hpp"

#include <algorithm>
#include <exception>

namespace orchcore::detail {

work_waker::work_waker(transport& tp, std::function<void()> wake, std::chrono::milliseconds timeout)
    : tp_(tp), wake_(std::move(wake)), timeout_(timeout), thread_([this] { run(); }) {}

work_waker::~work_waker() { stop(); }

void work_waker::idle() {
    {
        std::lock_guard lk(m_);
        idle_ = true;
    }
    cv_.notify_one();
}

void work_waker::stop() {
    {
        std::lock_guard lk(m_);
        if (stop_) {
            if (thread_.joinable()) thread_.join();
            return;
        }
        stop_ = true;
    }
    cv_.notify_one();
    try {
        tp_.interrupt_waits();
    } catch (const std::exception&) {
        // The wait ends at its timeout instead.
    }
    if (thread_.joinable()) thread_.join();
}

void work_waker::run() {
    std::unique_lock lk(m_);
    for (;;) {
        cv_.wait(lk, [&] { return idle_ || stop_; });
        if (stop_) return;
        idle_ = false;
        lk.unlock();
        bool failed = false;
        try {
            (void)tp_.wait_for_work(timeout_);
        } catch (const std::exception&) {
            failed = true;  // the backend did not answer: look again after a pause
        }
        lk.lock();
        if (failed) cv_.wait_for(lk, std::min(timeout_, std::chrono::milliseconds(100)), [&] { return stop_; });
        if (stop_) return;
        lk.unlock();
        wake_();  // a lease round; finding nothing makes the node idle() again
        lk.lock();
    }
}

bool finish_watch::ensure(transport& tp) {
    std::lock_guard lk(m_);
    if (!tried_ && !closed_) {
        tried_ = true;
        try {
            watch_ = tp.watch_finished(notify_);
        } catch (const std::exception&) {
            watch_.reset();  // polled instead
        }
    }
    return watch_ != nullptr;
}

void finish_watch::close() {
    std::unique_ptr<transport_watch> w;
    {
        std::lock_guard lk(m_);
        closed_ = true;
        w.swap(watch_);
    }
    w.reset();
}

void announce_finished(transport& tp, std::span<const std::string> ids) noexcept {
    if (ids.empty()) return;
    try {
        tp.publish_finished(ids);
    } catch (...) {
        // Waiters look again at their safety interval.
    }
}

std::chrono::milliseconds remote_wait_step(bool notified, std::chrono::milliseconds& backoff) {
    if (notified) return std::chrono::milliseconds(1'000);
    const auto b = backoff;
    backoff = std::min(backoff * 2, std::chrono::milliseconds(50));
    return b;
}

}  // namespace orchcore::detail
