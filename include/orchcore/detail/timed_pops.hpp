// The blocking pop verbs of the admission queue implementations, written
// once: an implementation provides wait_pop(deadline) and
// wait_pop_batch(max, deadline) on steady_clock (std::nullopt: no deadline)
// and inherits pop, pop_for, pop_until, pop_batch, pop_batch_for and
// pop_batch_until from this base (CRTP).
#pragma once

#include <orchcore/detail/saturating.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace orchcore::detail {

template <class Derived, class Entry>
class timed_pops {
public:
    using clock = std::chrono::steady_clock;

    /// Takes the next task, waiting as long as needed.
    /// Throws queue_closed once the queue is closed and empty.
    Entry pop() { return std::move(*self().wait_pop(std::nullopt)); }

    /// Takes the next task, waiting up to `timeout`; empty on timeout.
    /// Throws queue_closed once the queue is closed and empty.
    template <class Rep, class Period>
    std::optional<Entry> pop_for(const std::chrono::duration<Rep, Period>& timeout) {
        return self().wait_pop(deadline_after(timeout));
    }

    template <class Clock, class Duration>
    std::optional<Entry> pop_until(const std::chrono::time_point<Clock, Duration>& deadline) {
        return self().wait_pop(to_steady(deadline));
    }

    /// Takes up to `max` (>= 1) tasks, waiting for the first one. Throws
    /// queue_closed once the queue is closed and empty.
    std::vector<Entry> pop_batch(std::size_t max) { return self().wait_pop_batch(max, std::nullopt); }

    /// As pop_batch, waiting up to `timeout`; empty vector on timeout.
    template <class Rep, class Period>
    std::vector<Entry> pop_batch_for(std::size_t max, const std::chrono::duration<Rep, Period>& timeout) {
        return self().wait_pop_batch(max, deadline_after(timeout));
    }

    template <class Clock, class Duration>
    std::vector<Entry> pop_batch_until(std::size_t max, const std::chrono::time_point<Clock, Duration>& deadline) {
        return self().wait_pop_batch(max, to_steady(deadline));
    }

protected:
    timed_pops() = default;

private:
    Derived& self() { return static_cast<Derived&>(*this); }

    // A deadline on another clock becomes the same remaining time on
    // steady_clock.
    template <class Clock, class Duration>
    static clock::time_point to_steady(const std::chrono::time_point<Clock, Duration>& tp) {
        if constexpr (std::is_same_v<Clock, clock>) {
            return saturating_add(clock::time_point{}, tp.time_since_epoch());
        } else {
            const auto there = Clock::now();
            // Compared first: a deadline already past cannot overflow the difference.
            return tp <= there ? clock::now() : deadline_after(tp - there);
        }
    }
};

}  // namespace orchcore::detail
