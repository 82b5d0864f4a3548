// Retry backoff: exponential with full jitter, bounded by a cap.
// delay(attempt) = uniform(0, min(cap, base * 2^(attempt-1))) with jitter,
// or exactly that bound without. Pure: the caller supplies the random draw.
#pragma once

#include <orchcore/detail/saturating.hpp>
#include <orchcore/error.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>

namespace orchcore {

struct backoff_policy {
    std::chrono::milliseconds base{100};
    std::chrono::milliseconds cap{30'000};
    /// Full jitter (AWS style): spreads retries of tasks that failed together.
    bool jitter = true;

    void validate() const {
        if (base.count() < 0) throw invalid_argument("backoff.base", std::to_string(base.count()) + "ms", "must be >= 0");
        if (cap < base)
            throw invalid_argument("backoff.cap", std::to_string(cap.count()) + "ms",
                                   "must be >= backoff.base (" + std::to_string(base.count()) + "ms)");
    }

    /// Upper bound of the delay before retry number `attempt` (1-based).
    std::chrono::milliseconds ceiling(std::uint32_t attempt) const noexcept {
        if (attempt == 0) return std::chrono::milliseconds{0};
        const std::uint32_t shift = std::min<std::uint32_t>(attempt - 1, 40);
        const long double raw = static_cast<long double>(base.count()) * static_cast<long double>(1ULL << shift);
        const long double capped = std::min(raw, static_cast<long double>(cap.count()));
        return std::min(cap, detail::saturating_millis(capped));
    }

    /// Delay before retry `attempt`, with `unit_random` drawn from [0, 1).
    std::chrono::milliseconds delay(std::uint32_t attempt, double unit_random) const noexcept {
        const auto c = ceiling(attempt);
        if (!jitter) return c;
        const long double u = std::clamp(unit_random, 0.0, 1.0);
        // Never above the ceiling, whatever the rounding near the maximum.
        return std::min(c, detail::saturating_millis(static_cast<long double>(c.count()) * u));
    }
};

}  // namespace orchcore
