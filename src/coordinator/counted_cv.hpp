// A condition variable that skips notify_all when nobody waits.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>

namespace orchcore::detail {

// A condition variable for the coordinator's adaptive_mutex that knows
// whether anyone waits: condition_variable_any::notify_all takes an
// internal lock, and the hot path notifies once per finished task, nearly
// always with nobody waiting. Every wait happens under the coordinator
// mutex, so a notifier that changed the state under it and then reads the
// waiter count cannot miss a waiter.
class counted_cv {
public:
    template <class Lock, class TimePoint>
    std::cv_status wait_until(Lock& lk, const TimePoint& t) {
        waiters_.fetch_add(1, std::memory_order_relaxed);
        const auto r = cv_.wait_until(lk, t);
        waiters_.fetch_sub(1, std::memory_order_relaxed);
        return r;
    }
    template <class Lock, class TimePoint, class Pred>
    bool wait_until(Lock& lk, const TimePoint& t, Pred p) {
        while (!p()) {
            if (wait_until(lk, t) == std::cv_status::timeout) return p();
        }
        return true;
    }
    template <class Lock, class Pred>
    void wait(Lock& lk, Pred p) {
        while (!p()) {
            waiters_.fetch_add(1, std::memory_order_relaxed);
            cv_.wait(lk);
            waiters_.fetch_sub(1, std::memory_order_relaxed);
        }
    }
    void notify_all() {
        if (waiters_.load(std::memory_order_relaxed) != 0) cv_.notify_all();
    }

private:
    std::condition_variable_any cv_;
    std::atomic<int> waiters_{0};
};

// A counted_cv made by its first wait: a condition_variable_any allocates
// its internal mutex when constructed, and most attempts never wait on
// their mailbox. Every call is made under the coordinator mutex.
class lazy_counted_cv {
public:
    template <class Lock, class TimePoint>
    std::cv_status wait_until(Lock& lk, const TimePoint& t) {
        if (!cv_) cv_ = std::make_unique<counted_cv>();
        return cv_->wait_until(lk, t);
    }
    void notify_all() {
        if (cv_) cv_->notify_all();
    }

private:
    std::unique_ptr<counted_cv> cv_;
};

}  // namespace orchcore::detail
