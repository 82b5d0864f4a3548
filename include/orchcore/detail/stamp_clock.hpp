// stamp_clock: steady_clock time points for stamping queue admissions and
// dequeues (wait times), at a fraction of steady_clock::now()'s cost.
//
// steady_clock::now() goes through the vDSO: a sequence lock, a serialised
// time-stamp counter read and a conversion, about 25-50 ns on a virtual
// machine, twice per task. Where the time-stamp counter is invariant (x86-64
// with the "invariant TSC" CPUID bit: constant rate, ticking in every
// power state, synchronised across cores) stamp_clock reads the counter
// itself, unserialised, and maps it onto steady_clock by a line:
//
//   t = base_ns + (tsc - base_tsc) * ns_per_tick
//
// The first read fits the line to two steady_clock readings ~250 us apart
// (a one-time cost; reads meanwhile go to steady_clock). Every ~10 ms of ticks a reader refits it: the slope
// comes from the whole time since the first fit (so the rate estimate
// sharpens as it runs) plus a term that steers the offset measured at the
// refit to zero over the next interval. A refit keeps the line continuous
// (no step); only when the line has fallen behind steady_clock by more than
// an interval does it jump forward to it. Readers that meet a refit in
// progress read steady_clock. The stamps thus track steady_clock to within
// microseconds, with nanosecond resolution; like any two clock reads on
// different threads, two stamps may be out of order by that much (a wait
// time that comes out negative is recorded as 0). Elsewhere stamp_clock is
// steady_clock.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define ORCHCORE_STAMP_CLOCK_TSC 1
#else
#define ORCHCORE_STAMP_CLOCK_TSC 0
#endif

namespace orchcore::detail {

#if ORCHCORE_STAMP_CLOCK_TSC
// The line, published under a sequence lock (odd: a refit is writing).
// Readers that meet a refit read steady_clock instead of waiting. No
// fences: the fields are stored with release and loaded with acquire
// (plain moves on x86-64), so a reader that sees any field of a refit
// also sees the sequence it started with.
//
// Constant-initialised (no guard on the read path): the line starts
// due for a refit (refit_at_ 0), and the first refit calibrates it, or
// finds the counter unusable and leaves refit_at_ at 0, so every read
// then takes the refit path, which reads steady_clock.
class tsc_line {
public:
    using base = std::chrono::steady_clock;
    using duration = base::duration;
    using time_point = base::time_point;

    constexpr tsc_line() noexcept = default;

    bool usable() noexcept {
        while (state_.load(std::memory_order_acquire) == unknown) (void)now();
        return state_.load(std::memory_order_acquire) == counter;
    }

    time_point now() noexcept {
        const std::uint64_t s = seq_.load(std::memory_order_acquire);
        const auto base_tsc = base_tsc_.load(std::memory_order_acquire);
        const auto base_ns = base_ns_.load(std::memory_order_acquire);
        const double per_tick = ns_per_tick_.load(std::memory_order_acquire);
        const auto refit_at = refit_at_.load(std::memory_order_acquire);
        const auto tsc = static_cast<std::int64_t>(__builtin_ia32_rdtsc());
        if ((s & 1) != 0 || s != seq_.load(std::memory_order_relaxed)) return base::now();
        if (tsc >= refit_at) [[unlikely]] return refit(s);
        const auto ns = base_ns + static_cast<std::int64_t>(static_cast<double>(tsc - base_tsc) * per_tick);
        return time_point{std::chrono::duration_cast<duration>(std::chrono::nanoseconds(ns))};
    }

private:
    static constexpr std::int64_t refit_ns = 10'000'000;  // 10 ms
    static constexpr std::int64_t calibration_ns = 250'000;
    static constexpr std::uint32_t unknown = 0, counter = 1, steady = 2;  // state_

    // Under the sequence (odd): decides whether the counter is usable
    // and, if so, fits the line to two steady_clock readings
    // calibration_ns apart.
    void calibrate_locked() noexcept {
        bool ok = invariant_tsc();
        if (ok) {
            first_ = sample();
            pair p = first_;
            while (p.ns - first_.ns < calibration_ns) p = sample();
            const double per_tick =
                static_cast<double>(p.ns - first_.ns) / static_cast<double>(p.tsc - first_.tsc);
            ok = per_tick > 0.0;
            if (ok) publish_locked(p.tsc, p.ns, per_tick);
        }
        state_.store(ok ? counter : steady, std::memory_order_release);
    }

    struct pair {
        std::int64_t tsc;
        std::int64_t ns;
    };

    // A steady_clock reading and the counter at the same instant: the
    // counter is read on both sides, and a pair whose reads were far
    // apart (preempted in between) is taken again.
    static pair sample() noexcept {
        for (int attempt = 0;; ++attempt) {
            const auto a = static_cast<std::int64_t>(__builtin_ia32_rdtsc());
            const std::int64_t ns =
                std::chrono::duration_cast<std::chrono::nanoseconds>(base::now().time_since_epoch()).count();
            const auto b = static_cast<std::int64_t>(__builtin_ia32_rdtsc());
            if (b - a < 2'000 || attempt == 64) return {a + (b - a) / 2, ns};
        }
    }

    static bool invariant_tsc() noexcept {
        unsigned a = 0, b = 0, c = 0, d = 0;
        if (__get_cpuid(0x80000000u, &a, &b, &c, &d) == 0 || a < 0x80000007u) return false;
        if (__get_cpuid(0x80000007u, &a, &b, &c, &d) == 0) return false;
        return (d & (1u << 8)) != 0;
    }

    // Called by a reader whose counter passed refit_at_; `s` is the
    // sequence it read. The reader that wins the sequence refits (the
    // first one calibrates); the others, meanwhile, read steady_clock.
    [[gnu::noinline]] time_point refit(std::uint64_t s) noexcept {
        const std::uint32_t state = state_.load(std::memory_order_acquire);
        if (state == steady) return base::now();
        if (state == unknown) {
            if (seq_.compare_exchange_strong(s, s + 1, std::memory_order_acquire, std::memory_order_relaxed)) {
                calibrate_locked();
                seq_.store(s + 2, std::memory_order_release);
            }
            return base::now();
        }
        const pair p = sample();
        const time_point steady_now{std::chrono::duration_cast<duration>(std::chrono::nanoseconds(p.ns))};
        if (!seq_.compare_exchange_strong(s, s + 1, std::memory_order_acquire, std::memory_order_relaxed))
            return steady_now;
        const double old_per_tick = ns_per_tick_.load(std::memory_order_relaxed);
        const std::int64_t mapped = base_ns_.load(std::memory_order_relaxed) +
            static_cast<std::int64_t>(static_cast<double>(p.tsc - base_tsc_.load(std::memory_order_relaxed)) *
                                      old_per_tick);
        const std::int64_t lag = p.ns - mapped;  // > 0: the line runs behind steady_clock
        const double rate = static_cast<double>(p.ns - first_.ns) / static_cast<double>(p.tsc - first_.tsc);
        if (!(rate > 0.0) || lag > refit_ns) {
            publish_locked(p.tsc, p.ns, rate > 0.0 ? rate : old_per_tick);
        } else {
            // Steer: over the next interval, cover refit_ns + lag of
            // steady time (at most half an interval slower).
            const double steer = static_cast<double>(refit_ns + (lag < -refit_ns / 2 ? -refit_ns / 2 : lag)) /
                                 static_cast<double>(refit_ns);
            publish_locked(p.tsc, mapped, rate * steer);
        }
        seq_.store(s + 2, std::memory_order_release);
        return steady_now;
    }

    void publish_locked(std::int64_t tsc_at, std::int64_t ns, double per_tick) noexcept {
        base_tsc_.store(tsc_at, std::memory_order_release);
        base_ns_.store(ns, std::memory_order_release);
        ns_per_tick_.store(per_tick, std::memory_order_release);
        refit_at_.store(tsc_at + static_cast<std::int64_t>(static_cast<double>(refit_ns) / per_tick),
                        std::memory_order_release);
    }

    alignas(64) std::atomic<std::uint64_t> seq_{0};
    std::atomic<std::int64_t> base_tsc_{0};
    std::atomic<std::int64_t> base_ns_{0};
    std::atomic<double> ns_per_tick_{0.0};
    std::atomic<std::int64_t> refit_at_{0};
    std::atomic<std::uint32_t> state_{unknown};
    pair first_{0, 0};  // written and read under the sequence
};

inline constinit tsc_line stamp_line{};
#endif

struct stamp_clock {
    using base = std::chrono::steady_clock;
    using duration = base::duration;
    using rep = base::rep;
    using period = base::period;
    using time_point = base::time_point;
    static constexpr bool is_steady = false;

    static time_point now() noexcept {
#if ORCHCORE_STAMP_CLOCK_TSC
        return stamp_line.now();
#else
        return base::now();
#endif
    }

    /// Whether now() reads the time-stamp counter (else it is steady_clock).
    static bool uses_tsc() noexcept {
#if ORCHCORE_STAMP_CLOCK_TSC
        return stamp_line.usable();
#else
        return false;
#endif
    }
};

}  // namespace orchcore::detail
