// Saturating time arithmetic: a duration added to a time point (or
// converted to a finer unit) never wraps. Any duration up to its type's
// maximum means "a very long time": the result stops at the time point's
// (or the target duration's) maximum instead of overflowing into the past.
// Negative durations saturate at the minimum the same way.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <ratio>
#include <type_traits>

namespace orchcore::detail {

/// `d` in `To`, rounded up (a deadline is never earlier than asked). A `d`
/// beyond half of `To`'s range becomes To::max() (or To::min() if
/// negative): past that point every value means "forever", and the margin
/// keeps the decision exact whatever the two units are. A NaN count (a
/// floating-point duration) is zero.
template <class To, class Rep, class Period>
constexpr To saturating_ceil(const std::chrono::duration<Rep, Period>& d) noexcept {
    using ratio = std::ratio_divide<Period, typename To::period>;  // To ticks per tick of d
    const long double v = static_cast<long double>(d.count()) * ratio::num / ratio::den;
    if (v != v) return To::zero();
    constexpr long double limit = static_cast<long double>(std::numeric_limits<typename To::rep>::max()) / 2;
    if (v >= limit) return To::max();
    if (v <= -limit) return To::min();
    return std::chrono::ceil<To>(d);
}

/// `t + d`, stopping at time_point::max() (or min() for a negative `d`).
template <class Clock, class Dur, class Rep, class Period>
constexpr std::chrono::time_point<Clock, Dur> saturating_add(const std::chrono::time_point<Clock, Dur>& t,
                                                             const std::chrono::duration<Rep, Period>& d) noexcept {
    using tp = std::chrono::time_point<Clock, Dur>;
    const Dur step = saturating_ceil<Dur>(d);
    const auto since = t.time_since_epoch();
    if (step > Dur::zero() && since > Dur::max() - step) return tp::max();
    if (step < Dur::zero() && since < Dur::min() - step) return tp::min();
    return t + step;
}

/// `a + b`, stopping at the duration's maximum (or minimum).
template <class Rep, class Period>
constexpr std::chrono::duration<Rep, Period> saturating_add(const std::chrono::duration<Rep, Period>& a,
                                                            const std::chrono::duration<Rep, Period>& b) noexcept {
    using dur = std::chrono::duration<Rep, Period>;
    if (b > dur::zero() && a > dur::max() - b) return dur::max();
    if (b < dur::zero() && a < dur::min() - b) return dur::min();
    return a + b;
}

/// A count of milliseconds computed in floating point, as a duration: NaN
/// and values beyond the range stop at its ends instead of overflowing.
constexpr std::chrono::milliseconds saturating_millis(long double ms) noexcept {
    constexpr long double top = static_cast<long double>(std::chrono::milliseconds::max().count());
    if (!(ms > -top)) return ms != ms ? std::chrono::milliseconds::zero() : std::chrono::milliseconds::min();
    if (ms >= top) return std::chrono::milliseconds::max();
    return std::chrono::milliseconds{static_cast<std::chrono::milliseconds::rep>(ms)};
}

/// A steady_clock deadline `d` from now; any `d` up to its type's maximum
/// is a deadline far in the future, never one already past.
template <class Rep, class Period>
std::chrono::steady_clock::time_point deadline_after(const std::chrono::duration<Rep, Period>& d) noexcept {
    return saturating_add(std::chrono::steady_clock::now(), d);
}

/// `d * factor` for a factor >= 0, stopping at the duration's maximum.
template <class Rep, class Period>
constexpr std::chrono::duration<Rep, Period> saturating_mul(const std::chrono::duration<Rep, Period>& d,
                                                            std::int64_t factor) noexcept {
    using dur = std::chrono::duration<Rep, Period>;
    if (factor <= 0) return dur::zero();
    if (d.count() > std::numeric_limits<Rep>::max() / factor) return dur::max();
    if (d.count() < std::numeric_limits<Rep>::min() / factor) return dur::min();
    return d * factor;
}

}  // namespace orchcore::detail
