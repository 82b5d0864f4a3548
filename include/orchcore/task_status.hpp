// Task lifecycle as a checked state machine. Only the transitions below are
// legal; anything else is a bug in the caller and raises
// orchcore::error(errc::illegal_transition) instead of overwriting state.
//
//   pending -> queued | cancelled
//   queued  -> running | cancelled | timed_out (whole-task timeout while waiting)
//            | failed   (no worker could ever hold its resource request)
//   running -> completed | failed | cancelled | timed_out
//            | queued   (retry with backoff, continuation, or its worker died)
//   completed, failed, cancelled, timed_out: terminal
#pragma once

#include <orchcore/error.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace orchcore {

enum class task_status { pending, queued, running, completed, failed, cancelled, timed_out };

constexpr std::string_view to_string(task_status s) noexcept {
    switch (s) {
        case task_status::pending: return "pending";
        case task_status::queued: return "queued";
        case task_status::running: return "running";
        case task_status::completed: return "completed";
        case task_status::failed: return "failed";
        case task_status::cancelled: return "cancelled";
        case task_status::timed_out: return "timed_out";
    }
    return "unknown";
}

constexpr std::optional<task_status> try_parse_task_status(std::string_view s) noexcept {
    for (auto t : {task_status::pending, task_status::queued, task_status::running, task_status::completed,
                   task_status::failed, task_status::cancelled, task_status::timed_out})
        if (to_string(t) == s) return t;
    return std::nullopt;
}

constexpr bool is_terminal(task_status s) noexcept {
    return s == task_status::completed || s == task_status::failed || s == task_status::cancelled ||
           s == task_status::timed_out;
}

constexpr bool is_legal_transition(task_status from, task_status to) noexcept {
    using enum task_status;
    switch (from) {
        case pending: return to == queued || to == cancelled;
        case queued: return to == running || to == cancelled || to == timed_out || to == failed;
        case running:
            return to == completed || to == failed || to == cancelled || to == timed_out || to == queued;
        case completed:
        case failed:
        case cancelled:
        case timed_out: return false;
    }
    return false;
}

/// Throws orchcore::error(errc::illegal_transition) naming both states.
inline void check_transition(task_status from, task_status to) {
    if (!is_legal_transition(from, to))
        throw error(errc::illegal_transition, std::string("orchcore: illegal task transition ")
                                                  .append(to_string(from))
                                                  .append(" -> ")
                                                  .append(to_string(to)));
}

}  // namespace orchcore
