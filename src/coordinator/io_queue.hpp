// Backend calls decided under the coordinator's lock and carried out after
// it is released, in the order they were decided (like the event outbox).
#pragma once

#include <orchcore/detail/adaptive_mutex.hpp>

#include <atomic>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>

namespace orchcore::detail {

class io_queue {
public:
    // Lock held.
    void push(std::function<void()> op) {
        ops_.push_back(std::move(op));
        nonempty_.store(true, std::memory_order_relaxed);
    }

    // Outside the lock. One thread carries out the calls at a time, in
    // order; a call pushed meanwhile is carried out by that thread before
    // it returns. The first exception a call throws is returned (the calls
    // after it still run), for the caller to raise.
    std::exception_ptr drain(adaptive_mutex& mu) {
        if (!nonempty_.load(std::memory_order_relaxed)) return {};
        std::unique_lock lk(mu);
        if (draining_) return {};
        draining_ = true;
        std::exception_ptr first;
        while (!ops_.empty()) {
            auto op = std::move(ops_.front());
            ops_.pop_front();
            nonempty_.store(!ops_.empty(), std::memory_order_relaxed);
            lk.unlock();
            try {
                op();
            } catch (...) {
                if (!first) first = std::current_exception();
            }
            lk.lock();
        }
        draining_ = false;
        return first;
    }

private:
    std::deque<std::function<void()>> ops_;
    bool draining_ = false;
    std::atomic<bool> nonempty_{false};
};

}  // namespace orchcore::detail
