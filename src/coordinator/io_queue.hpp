// Backend calls decided under the coordinator's lock and carried out after
// it is released, in the order they were decided (like the event outbox).
#pragma once

#include <orchcore/detail/adaptive_mutex.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>

namespace orchcore::detail {

class io_queue {
public:
    // Lock held. Returns the call's number (1, 2, ...), for done_up_to.
    std::uint64_t push(std::function<void()> op) {
        ops_.push_back(std::move(op));
        nonempty_.store(true, std::memory_order_relaxed);
        return ++pushed_;
    }

    // Lock held. Whether calls up to number `seq` have been carried out.
    bool done_up_to(std::uint64_t seq) const noexcept { return done_ >= seq; }

    // Outside the lock. One thread carries out the calls at a time, in
    // order; a call pushed meanwhile is carried out by that thread before
    // it returns. The first exception a call throws is returned (the calls
    // after it still run), for the caller to raise; `carried` counts the
    // calls this thread carried out.
    std::exception_ptr drain(adaptive_mutex& mu, std::size_t& carried) {
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
            ++done_;
            ++carried;
        }
        draining_ = false;
        return first;
    }

private:
    std::deque<std::function<void()>> ops_;
    std::uint64_t pushed_ = 0, done_ = 0;
    bool draining_ = false;
    std::atomic<bool> nonempty_{false};
};

}  // namespace orchcore::detail
