// Measurement building blocks shared by the queue and the execution engine.
// Both are plain values (no locks, no clock reads): the owner decides when to
// sample time and how to synchronise, which keeps them usable inside the pure
// state machines.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>

namespace orchcore {

/// Fixed log2 histogram of durations. Bucket i counts samples <= 2^i
/// microseconds (bucket 0: <= 1us); the last bucket is +inf. 32 buckets span
/// 1us .. ~36 minutes, enough for queue waits, with no allocation.
class latency_histogram {
public:
    static constexpr std::size_t bucket_count = 33;  // 32 finite bounds + inf

    void record(std::chrono::nanoseconds d) noexcept {
        const auto ns = d.count() < 0 ? std::uint64_t{0} : static_cast<std::uint64_t>(d.count());
        ++buckets_[bucket_for(ns)];
        ++count_;
        sum_ns_ = sum_ns_ > std::numeric_limits<std::uint64_t>::max() - ns ? std::numeric_limits<std::uint64_t>::max()
                                                                            : sum_ns_ + ns;
        max_ns_ = std::max(max_ns_, ns);
    }

    /// Upper bound of bucket i, or nanoseconds::max() for the last one.
    static constexpr std::chrono::nanoseconds upper_bound(std::size_t i) noexcept {
        if (i + 1 >= bucket_count) return std::chrono::nanoseconds::max();
        return std::chrono::nanoseconds{static_cast<std::int64_t>(1000ULL << i)};
    }

    std::uint64_t count() const noexcept { return count_; }
    /// Sum of the samples, stopping at nanoseconds::max() (a few samples
    /// near the maximum would otherwise wrap).
    std::chrono::nanoseconds sum() const noexcept { return as_duration(sum_ns_); }
    std::chrono::nanoseconds max() const noexcept { return as_duration(max_ns_); }
    std::uint64_t bucket(std::size_t i) const noexcept { return buckets_[i]; }

    /// Estimate of quantile q in [0,1]: the upper bound of the bucket holding
    /// it, never more than the largest sample seen. Zero when empty. A q
    /// outside [0, 1] is clamped; NaN counts as 0.
    std::chrono::nanoseconds quantile(double q) const noexcept {
        if (count_ == 0) return std::chrono::nanoseconds{0};
        q = q >= 0.0 ? std::min(q, 1.0) : 0.0;  // NaN fails the comparison
        auto rank = static_cast<std::uint64_t>(q * static_cast<double>(count_));
        if (rank == 0) rank = 1;
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < bucket_count; ++i) {
            seen += buckets_[i];
            if (seen >= rank) return std::min(upper_bound(i), max());
        }
        return max();
    }

    /// Rebuilds a histogram from its parts (bucket counts, sum and max in
    /// nanoseconds), for owners that record into their own concurrent
    /// counters and publish a snapshot.
    static latency_histogram from_parts(const std::array<std::uint64_t, bucket_count>& buckets,
                                        std::uint64_t sum_ns, std::uint64_t max_ns) noexcept {
        latency_histogram h;
        h.buckets_ = buckets;
        for (auto b : buckets) h.count_ += b;
        h.sum_ns_ = sum_ns;
        h.max_ns_ = max_ns;
        return h;
    }

    /// Bucket index of a duration in nanoseconds.
    static std::size_t bucket_for(std::uint64_t ns) noexcept {
        const std::uint64_t us = (ns + 999) / 1000;  // round up: bucket i holds <= 2^i us
        if (us <= 1) return 0;
        const auto b = static_cast<std::size_t>(64 - __builtin_clzll(us - 1));
        return std::min(b, bucket_count - 1);
    }

    friend bool operator==(const latency_histogram&, const latency_histogram&) = default;

private:
    static std::chrono::nanoseconds as_duration(std::uint64_t ns) noexcept {
        constexpr auto top = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
        return std::chrono::nanoseconds{static_cast<std::int64_t>(std::min(ns, top))};
    }

    // The totals first: with them, a record() of a short wait (the first
    // buckets) writes one cache line, not two.
    std::uint64_t count_ = 0;
    std::uint64_t sum_ns_ = 0;
    std::uint64_t max_ns_ = 0;
    std::array<std::uint64_t, bucket_count> buckets_{};
};

/// Event rate as an exponentially weighted mean of inter-event intervals.
/// A long silence counts: the rate reported at `now` never exceeds one event
/// per (now - last event), so a stalled consumer drives the rate towards zero.
class rate_estimator {
public:
    using clock = std::chrono::steady_clock;

    void record(clock::time_point now) noexcept {
        if (has_last_) {
            const double dt = std::chrono::duration<double>(now - last_).count();
            mean_interval_s_ = primed_ ? (1.0 - alpha) * mean_interval_s_ + alpha * dt : dt;
            primed_ = true;
        }
        last_ = now;
        has_last_ = true;
    }

    /// True once two events have been seen (an interval exists).
    bool has_estimate() const noexcept { return primed_; }

    /// Estimated mean interval between events at `now`, in seconds.
    double interval_seconds(clock::time_point now) const noexcept {
        if (!primed_) return 0.0;
        const double silence = std::chrono::duration<double>(now - last_).count();
        return std::max(mean_interval_s_, silence);
    }

    double per_second(clock::time_point now) const noexcept {
        const double i = interval_seconds(now);
        return i > 0.0 ? 1.0 / i : 0.0;
    }

private:
    static constexpr double alpha = 0.05;
    clock::time_point last_{};
    double mean_interval_s_ = 0.0;
    bool has_last_ = false;
    bool primed_ = false;
};

}  // namespace orchcore
