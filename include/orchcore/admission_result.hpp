// Value types of the admission queue: requests, results, entries, options
// and the metrics snapshot.
#pragma once

#include <orchcore/metrics.hpp>
#include <orchcore/priority.hpp>

#include <array>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace orchcore {

/// Default job id type. Any copyable, hashable, equality-comparable type
/// works; see id_traits for ids the queue generates itself.
using job_id = std::uint64_t;

/// How the queue makes an id when the caller does not supply one. The
/// sequence number is unique per queue; if the generated id collides with a
/// caller-supplied id already queued, the queue tries the next number.
template <class Id>
struct id_traits;

template <std::integral Id>
struct id_traits<Id> {
    static Id generate(std::uint64_t seq) { return static_cast<Id>(seq); }
};

template <>
struct id_traits<std::string> {
    static std::string generate(std::uint64_t seq) { return "job-" + std::to_string(seq); }
};

/// Why an admission was turned away.
enum class rejection_reason : std::uint8_t {
    queue_full,        ///< no room and the policy would not make room
    invalid_request,   ///< duplicate id, priority out of range, ...
    policy_violation,  ///< the policy forbids it now (fail-fast: no consumer waiting)
    closed,            ///< the queue was closed
};
inline constexpr std::size_t rejection_reason_count = 4;

/// "queue_full", "invalid_request", "policy_violation", "closed".
std::string_view to_string(rejection_reason r) noexcept;

/// Optional parts of an admission. Without an id the queue generates one.
template <class Id = job_id>
struct admission_request {
    std::optional<Id> id{};
    int priority = priority::normal;
};

/// A task held by (or leaving) the queue.
template <class T, class Id = job_id>
struct queue_entry {
    Id id;
    T value;
    int priority = priority::normal;
    std::chrono::steady_clock::time_point enqueued_at{};
};

/// Outcome of an admission attempt. Either accepted (id, position) or
/// rejected (reason, detail, retry_after). On rejection the caller's value
/// was not moved from.
template <class T, class Id = job_id>
struct admission_result {
    bool is_accepted = false;
    /// Accepted: the task's id. Rejected: the requested id if one was given.
    std::optional<Id> id{};
    /// Accepted: 0-based position in dequeue order at admission (0 = next).
    std::size_t position = 0;
    /// Rejected: why.
    rejection_reason reason = rejection_reason::queue_full;
    /// Rejected: human-readable detail (static text).
    std::string_view detail{};
    /// Rejected for lack of room: when trying again is likely to succeed,
    /// from the measured dequeue rate (HTTP 429 Retry-After). Zero when a
    /// retry cannot help (invalid request, closed).
    std::chrono::milliseconds retry_after{0};
    /// Accepted by evicting another task (drop-lru, priority): that task.
    std::optional<queue_entry<T, Id>> evicted{};

    bool accepted() const noexcept { return is_accepted; }
    bool rejected() const noexcept { return !is_accepted; }
    explicit operator bool() const noexcept { return is_accepted; }
};

/// Construction options of an admission queue. Invalid values throw
/// orchcore::invalid_argument from the queue's constructor.
struct queue_options {
    /// Maximum number of queued tasks. 0 is legal: nothing is queued (a
    /// fail-fast queue can still hand tasks to waiting consumers).
    std::size_t capacity = 1024;
    /// Bounds of the retry-after hint, and its value before any dequeue has
    /// been measured.
    std::chrono::milliseconds min_retry_after{1};
    std::chrono::milliseconds max_retry_after{60'000};
    std::chrono::milliseconds default_retry_after{1'000};
    /// Queue wait times (queue_metrics::wait_time, queue_entry::enqueued_at).
    /// Off, the queue reads no clock per admission or dequeue (its dequeue
    /// rate, and so retry-after, is still measured, from a sampled dequeue
    /// now and then and at a rejection): enqueued_at is then the clock's
    /// epoch and wait_time stays empty.
    bool wait_time_metrics = true;
};

/// Largest capacity a queue accepts (slots are addressed with 32 bits).
inline constexpr std::size_t max_queue_capacity = 0xFFFF'FFF0u;

/// Consistent snapshot of a queue's counters, taken under its lock.
/// Conservation: accepted == depth + dequeued + evicted + cancelled.
struct queue_metrics {
    std::string_view policy{};
    std::size_t depth = 0;
    std::size_t capacity = 0;
    std::uint64_t accepted = 0;
    std::uint64_t dequeued = 0;   ///< includes tasks handed straight to a waiting consumer
    std::uint64_t handed_off = 0; ///< accepted and dequeued in one step (no queue slot used)
    std::uint64_t evicted = 0;
    std::uint64_t cancelled = 0;
    std::array<std::uint64_t, rejection_reason_count> rejected_by_reason{};
    double dequeue_rate_per_second = 0.0;
    latency_histogram wait_time{};  ///< admission to dequeue

    std::uint64_t rejected(rejection_reason r) const noexcept {
        return rejected_by_reason[static_cast<std::size_t>(r)];
    }
    std::uint64_t rejected_total() const noexcept {
        std::uint64_t n = 0;
        for (auto v : rejected_by_reason) n += v;
        return n;
    }
};

}  // namespace orchcore
