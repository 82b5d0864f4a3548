// orchcore error model.
//
// One style across the library:
//  * Expected outcomes are values, not exceptions. An admission that is turned
//    away is an `admission_result` with a `rejection_reason`; a timed wait that
//    expires returns an empty optional.
//  * Misuse and bad input throw `orchcore::invalid_argument`, whose message
//    names the field and the offending value.
//  * An operation that cannot complete because the object was closed, shut
//    down or the operation was cancelled throws a subclass of
//    `orchcore::operation_aborted` (queue_closed, shutdown_error,
//    cancelled_error): one root to catch for "stop waiting".
//  * Every orchcore exception derives from `orchcore::error`
//    (a std::system_error), and carries an `orchcore::errc` code in the
//    `orchcore` error category, so code that prefers std::error_code can
//    compare `e.code() == orchcore::errc::queue_closed`.
#pragma once

#include <orchcore/version.hpp>  // the C++20 check

#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

namespace orchcore {

enum class errc : int {
    invalid_argument = 1,  // a parameter or configuration value is out of its domain
    duplicate_id,          // an id that is already in use
    not_found,             // no object with that id
    queue_closed,          // the queue was closed; nothing more will arrive
    shutdown,              // the owning component is shutting down
    cancelled,             // the operation or task was cancelled
    timed_out,             // a deadline passed
    illegal_transition,    // a state change that the state machine forbids
    stale_token,           // a fencing token that is no longer current
    backend_unavailable,   // storage or transport could not be reached
    task_finished,         // the task already reached a terminal state
    rejected,              // admission turned the task away
    task_failed,           // the task ended failed or timed out
    unplaceable,           // no registered worker could ever hold the task's resource request
};

/// The `orchcore` error category (name "orchcore").
const std::error_category& error_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), error_category()};
}

/// Root of every exception thrown by orchcore.
class error : public std::system_error {
public:
    error(errc code, const std::string& what) : std::system_error(make_error_code(code), what), message_(what) {}
    /// The message exactly as given (std::system_error would append the
    /// category's text to it).
    const char* what() const noexcept override { return message_.c_str(); }

private:
    std::string message_;
};

/// Bad input. The message has the form
/// "orchcore: invalid <field> = <value>: <reason>", the value shown with
/// control bytes as \xNN and cut after 256 bytes ("... (<size> bytes)");
/// value() is the value as given.
class invalid_argument : public error {
public:
    invalid_argument(std::string_view field, std::string_view value, std::string_view reason);
    const std::string& field() const noexcept { return field_; }
    const std::string& value() const noexcept { return value_; }

private:
    std::string field_;
    std::string value_;
};

/// Root of "the operation will not complete": close, shutdown, cancellation.
class operation_aborted : public error {
public:
    using error::error;
};

/// A blocking operation on a closed queue that has nothing left to give.
class queue_closed : public operation_aborted {
public:
    explicit queue_closed(const std::string& what = "orchcore: queue is closed")
        : operation_aborted(errc::queue_closed, what) {}
};

/// The component (pool, coordinator, ...) is shutting down.
class shutdown_error : public operation_aborted {
public:
    explicit shutdown_error(const std::string& what = "orchcore: shutting down")
        : operation_aborted(errc::shutdown, what) {}
};

/// The operation or task was cancelled.
class cancelled_error : public operation_aborted {
public:
    explicit cancelled_error(const std::string& what = "orchcore: cancelled")
        : operation_aborted(errc::cancelled, what) {}
};

}  // namespace orchcore

template <>
struct std::is_error_code_enum<orchcore::errc> : std::true_type {};
