// sampled_dequeue_rate: the dequeue rate behind admission_core's
// retry-after hint when it does not stamp every dequeue
// (queue_options::wait_time_metrics off): a sample now and then covers the
// dequeues since the previous one.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace orchcore::detail {

/// Mean interval between dequeues, from samples each covering one or more
/// dequeues (time of the sample, dequeues counted so far): an owner that
/// does not stamp every dequeue samples now and then. Single-threaded.
class sampled_dequeue_rate {
public:
    using clock = std::chrono::steady_clock;

    /// Folds the dequeues since the last sample in (the first sample after
    /// two dequeues only starts the measurement).
    void sample(clock::time_point now, std::uint64_t dequeued) noexcept {
        if (dequeued < 2 || (has_last_ && (dequeued <= count_ || now < at_))) return;
        if (has_last_) {
            const double dt = std::chrono::duration<double>(now - at_).count();
            const double per = dt / static_cast<double>(dequeued - count_);
            mean_ = primed_ ? (1.0 - alpha) * mean_ + alpha * per : per;
            primed_ = true;
        }
        at_ = now;
        count_ = dequeued;
        has_last_ = true;
    }

    bool has_estimate() const noexcept { return primed_; }

    /// Estimated mean interval at `now`, in seconds (0 without an estimate).
    /// No dequeue since the last sample: the silence since counts in full.
    double interval_seconds(clock::time_point now, std::uint64_t dequeued) const noexcept {
        if (!primed_) return 0.0;
        const double silence = dequeued == count_ ? std::chrono::duration<double>(now - at_).count() : 0.0;
        return std::max(mean_, silence);
    }

    /// Sample points: dequeues 1, 2, 4, ..., 64, then every 64th.
    static constexpr bool due(std::uint64_t n) noexcept {
        return n < every ? (n & (n - 1)) == 0 : n % every == 0;
    }

private:
    static constexpr std::uint64_t every = 64;
    static constexpr double alpha = 0.2;
    clock::time_point at_{};
    std::uint64_t count_ = 0;
    double mean_ = 0.0;
    bool has_last_ = false, primed_ = false;
};

}  // namespace orchcore::detail
