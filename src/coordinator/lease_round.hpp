// A lease round of a node: how many leases to ask for, what becomes of
// each leased task once its record is read, and whether another round may
// find more. A pure state machine: no threads, no clocks (the time is
// passed in), no I/O; the node engine carries its decisions out (the lease
// call, the record reads and writes, acks and nacks: node_feed.cpp).
#pragma once

#include <orchcore/detail/saturating.hpp>
#include <orchcore/task_status.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>

namespace orchcore::detail::lease_round {

/// How many leases to ask for: the free local slots not promised to lease
/// calls already in flight, at most `batch`. 0: no call.
inline std::size_t to_ask(std::size_t free_slots, std::size_t in_flight, std::size_t batch) noexcept {
    return std::min(free_slots - std::min(free_slots, in_flight), batch);
}

/// The wait before the next poll after a lease call that granted `granted`
/// leases: none while leases come; otherwise doubling from `tick` up to 50 ms.
inline std::chrono::milliseconds next_backoff(std::size_t granted, std::chrono::milliseconds backoff,
                                              std::chrono::milliseconds tick) noexcept {
    if (granted > 0) return std::chrono::milliseconds{0};
    const auto doubled = backoff.count() > std::chrono::milliseconds::max().count() / 2
                             ? std::chrono::milliseconds::max()
                             : backoff * 2;
    return std::clamp(doubled, tick, std::max(tick, std::chrono::milliseconds(50)));
}

/// A leased task's record as read from the store.
template <class TimePoint>
struct leased_record {
    bool exists = true;
    task_status status = task_status::queued;
    bool cancel_marked = false;                // metadata "orchcore.cancel"
    TimePoint created_at{};
    std::chrono::milliseconds timeout{0};      // whole task; 0: none
};

enum class fate : unsigned char {
    leave,      // gone or finished already: ack (it just leaves the queue)
    cancel,     // cancel marker: write cancelled, ack
    time_out,   // whole-task deadline passed while it waited: write timed_out, ack
    start,      // may run here: take a slot, write running, launch
    hand_back,  // no fitting worker or handler here (or stopping): nack with a short delay
};

/// What becomes of a leased task once its record is read, at `now` (the
/// same clock as created_at: the records' wall clock).
template <class TimePoint>
fate read(const leased_record<TimePoint>& r, TimePoint now) {
    if (!r.exists || is_terminal(r.status)) return fate::leave;
    if (r.cancel_marked) return fate::cancel;
    if (r.timeout.count() > 0 && saturating_add(r.created_at, r.timeout) <= now) return fate::time_out;
    return fate::start;
}

/// A task that may start: on a fitting worker with room, if the node takes
/// work and has its handler; otherwise handed back.
inline fate place(bool stopping, bool has_handler, bool worker_found) noexcept {
    return !stopping && has_handler && worker_found ? fate::start : fate::hand_back;
}

/// After a round that asked for `asked` leases, got `granted`, and launched
/// `launched`: another round may find more only if this one filled every
/// slot it asked for and started something.
inline bool another_round(std::size_t asked, std::size_t granted, std::size_t launched) noexcept {
    return launched > 0 && granted == asked;
}

}  // namespace orchcore::detail::lease_round
