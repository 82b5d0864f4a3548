// The attempt outcome: what becomes of a task when its attempt returns, is
// judged by the control tick (cancellation grace, task and turn timeouts),
// loses its worker, or loses its lease. A pure state machine: no threads, no
// clocks (the time and the backoff's random draw are passed in), no I/O.
// Both engines carry its decisions out, each in its own way (local mode in
// the task table, distributed mode as record changes of the lease holder).
#pragma once

#include <orchcore/backoff.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace orchcore::detail {

// The task's state as the decision needs it.
template <class TimePoint>
struct attempt_facts {
    std::uint32_t retries = 0;      // retries taken so far
    std::uint32_t max_retries = 0;
    backoff_policy backoff{};
    bool cancel_requested = false;
    TimePoint cancel_deadline{};                 // cancel_requested: when the grace ends
    std::optional<TimePoint> deadline{};         // whole task
    std::optional<TimePoint> turn_deadline{};    // this attempt
};

// What the handler returned.
struct attempt_report {
    bool succeeded = true;
    bool retryable = true;            // failure: may it run again
    bool continue_requested = false;  // success: ctx.continue_later()
    std::chrono::milliseconds continue_delay{0};
};

enum class verdict : unsigned char {
    keep_running,    // tick: nothing due
    complete,        // completed with the handler's result
    retry,           // back to the queue after `delay`; retries + 1
    continue_later,  // back to the queue after `delay`; turns + 1
    requeue,         // back to the queue at once, no retry taken (worker or lease lost)
    fail,            // failed with the handler's error
    cancel,          // cancelled
    time_out,        // timed out
    dead_letter,     // failed: its lease expired too often (a poison task)
};

struct decision {
    verdict v = verdict::keep_running;
    std::chrono::milliseconds delay{0};
    std::string_view reason{};  // error/detail text, empty for complete and continue_later
};

namespace attempt_outcome {

// The backoff before retry number retries + 1; `unit_random` in [0, 1).
template <class TimePoint>
std::chrono::milliseconds backoff_for(const attempt_facts<TimePoint>& f, double unit_random) noexcept {
    return f.backoff.delay(f.retries + 1, unit_random);
}

/// The handler returned.
template <class TimePoint>
decision returned(const attempt_facts<TimePoint>& f, const attempt_report& r, TimePoint now, double unit_random) {
    if (f.cancel_requested) return {verdict::cancel, {}, "cancelled"};
    if (r.succeeded && r.continue_requested) return {verdict::continue_later, r.continue_delay, {}};
    if (r.succeeded) return {verdict::complete, {}, {}};
    const bool past_deadline = f.deadline && now >= *f.deadline;
    if (r.retryable && !past_deadline && f.retries < f.max_retries)
        return {verdict::retry, backoff_for(f, unit_random), {}};
    return {verdict::fail, {}, {}};
}

/// The control tick looks at a running attempt.
template <class TimePoint>
decision judged(const attempt_facts<TimePoint>& f, TimePoint now, double unit_random) {
    if (f.cancel_requested && now >= f.cancel_deadline)
        return {verdict::cancel, {}, "cancelled (handler did not stop within cancel_grace)"};
    if (f.deadline && now >= *f.deadline) return {verdict::time_out, {}, "task timeout"};
    if (f.turn_deadline && now >= *f.turn_deadline) {
        if (f.retries < f.max_retries) return {verdict::retry, backoff_for(f, unit_random), "turn timeout"};
        return {verdict::time_out, {}, "turn timeout"};
    }
    return {};
}

/// The attempt's worker was declared dead.
template <class TimePoint>
decision worker_lost(const attempt_facts<TimePoint>& f) {
    if (f.cancel_requested) return {verdict::cancel, {}, "cancelled"};
    return {verdict::requeue, {}, "worker declared dead"};
}

/// The attempt's lease expired and was recovered; `dead_lettered`: the
/// transport moved the task to its dead-letter set instead of the queue.
inline decision lease_expired(bool dead_lettered) {
    if (dead_lettered) return {verdict::dead_letter, {}, "dead-lettered"};
    return {verdict::requeue, {}, "lease expired (holder lost)"};
}

}  // namespace attempt_outcome
}  // namespace orchcore::detail
