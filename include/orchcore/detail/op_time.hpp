// op_time: the time of one queue operation, for admission_core. Either a
// time point the caller already has (tests, a caller that stamps every
// operation), or a clock read at most once, and only if the operation turns
// out to need the time (a rejection's retry-after, a sampled dequeue): a
// queue without wait-time metrics then reads no clock on its fast paths.
#pragma once

#include <chrono>

namespace orchcore::detail {

class op_time {
public:
    using time_point = std::chrono::steady_clock::time_point;
    using reader = time_point (*)() noexcept;

    /// A fixed time (implicit: a time point is an op_time).
    op_time(time_point t) noexcept : t_(t) {}  // NOLINT(google-explicit-constructor)

    /// Clock::now(), read on the first get().
    template <class Clock>
    static op_time on_demand() noexcept {
        op_time o{time_point{}};
        o.read_ = [] () noexcept -> time_point { return Clock::now(); };
        return o;
    }

    time_point get() noexcept {
        if (read_ != nullptr) {
            t_ = read_();
            read_ = nullptr;
        }
        return t_;
    }

private:
    time_point t_;
    reader read_ = nullptr;
};

}  // namespace orchcore::detail
