// Admission policies: what a bounded queue does when it is full, and in which
// order it hands tasks out.
//
// A policy is a type with three compile-time switches (see `policy_traits`),
// so the queue compiles only the code its policy needs. The four built-in
// policies have named aliases; a user may define another combination. For
// configuration-driven code, `queue_policy` names the built-ins at run time
// and `make_admission_queue` (any_admission_queue.hpp) picks one.
#pragma once

#include <concepts>
#include <optional>
#include <string_view>

namespace orchcore {

/// Run-time name of a built-in policy.
enum class queue_policy {
    reject_new,  ///< full: the new task is rejected (queue_full)
    drop_lru,    ///< full: the longest-waiting task of the lowest priority is evicted
    fail_fast,   ///< admitted only if a consumer is waiting to take it right now
    priority,    ///< priority order; full: evict the newest lowest task if outranked
};

/// "reject-new", "drop-lru", "fail-fast", "priority".
std::string_view to_string(queue_policy p) noexcept;

/// Parses the names printed by to_string (also accepts '_' for '-', any case).
std::optional<queue_policy> try_parse_queue_policy(std::string_view text) noexcept;

/// As try_parse_queue_policy, but throws orchcore::invalid_argument naming
/// the field "policy" and the rejected text.
queue_policy parse_queue_policy(std::string_view text);

namespace policy {

enum class dequeue_order {
    fifo,         ///< strictly by admission order
    by_priority,  ///< highest priority first, FIFO within one priority
};

enum class when_full {
    reject,                      ///< turn the newcomer away
    evict_oldest_of_lowest,      ///< evict the longest-waiting task among the lowest priority present
    evict_newest_lowest_if_outranked,  ///< evict the most recently queued lowest-priority task if the newcomer outranks it
};

/// Building block for policies. `HandoffOnly` means a task is admitted only
/// when a consumer is blocked waiting for it and is handed over directly;
/// such a task never occupies a queue slot.
template <dequeue_order Order, when_full Full, bool HandoffOnly>
struct basic_policy {
    static constexpr dequeue_order order = Order;
    static constexpr when_full on_full = Full;
    static constexpr bool handoff_only = HandoffOnly;
};

struct reject_new : basic_policy<dequeue_order::fifo, when_full::reject, false> {
    static constexpr std::string_view name = "reject-new";
};
struct drop_lru : basic_policy<dequeue_order::fifo, when_full::evict_oldest_of_lowest, false> {
    static constexpr std::string_view name = "drop-lru";
};
struct fail_fast : basic_policy<dequeue_order::fifo, when_full::reject, true> {
    static constexpr std::string_view name = "fail-fast";
};
struct priority : basic_policy<dequeue_order::by_priority, when_full::evict_newest_lowest_if_outranked, false> {
    static constexpr std::string_view name = "priority";
};

}  // namespace policy

/// What the queue requires of a policy type.
template <class P>
concept admission_policy = requires {
    { P::order } -> std::convertible_to<policy::dequeue_order>;
    { P::on_full } -> std::convertible_to<policy::when_full>;
    { P::handoff_only } -> std::convertible_to<bool>;
    { P::name } -> std::convertible_to<std::string_view>;
};

}  // namespace orchcore
