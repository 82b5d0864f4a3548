// admission_queue<T, Policy, Id>: a bounded, thread-safe admission queue.
//
//   orchcore::admission_queue<std::string, orchcore::policy::drop_lru> q{{.capacity = 100}};
//   auto r = q.try_push("job", {.priority = orchcore::priority::high});
//   if (!r) reply_429(r.retry_after);          // backpressure
//   auto e = q.pop_for(std::chrono::seconds(1)); // consumer side
//
// Verbs: try_* never blocks. pop() blocks; pop_for/pop_until block up to a
// deadline and return an empty optional on timeout. Admission itself never
// blocks: a full queue answers at once, with a retry-after hint, which is
// what admission control is for.
//
// Close: close() rejects further admissions (reason `closed`) and wakes every
// blocked consumer. Tasks already queued can still be taken; a blocking pop
// on a closed queue with nothing left throws orchcore::queue_closed.
//
// Many producers and many consumers may call any member concurrently.
//
// Two implementations sit behind this one type, with the same behaviour
// (the same property tests run on both):
//  * a lock-free ring (detail/ring_admission_queue.hpp) for FIFO policies
//    that reject when full (reject-new) with a capacity of at most
//    detail::ring_max_capacity (65,536) and nothrow-movable T and Id. Its
//    slots are preallocated; admissions with generated ids and pops take no
//    lock. Cancellation, lookups by id and snapshots pause those fast paths
//    briefly and cost O(depth); caller-supplied ids switch the queue to a
//    locked, indexed mode until it is next empty.
//  * a locked queue (detail/locked_admission_queue.hpp) around the
//    admission_core state machine, for every other case (drop-lru,
//    fail-fast, priority, large capacities). Its storage grows on demand.
// uses_ring() tells which one a queue uses.
#pragma once

#include <orchcore/detail/locked_admission_queue.hpp>
#include <orchcore/detail/ring_admission_queue.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace orchcore {

template <class T, admission_policy Policy = policy::reject_new, class Id = job_id>
class admission_queue {
    using locked_type = detail::locked_admission_queue<T, Policy, Id>;
    static constexpr bool ring_eligible = detail::ring_eligible<T, Policy, Id>;
    // The ring type is only named when it can exist.
    using ring_type = std::conditional_t<ring_eligible, detail::ring_admission_queue<T, Policy, Id>, locked_type>;

public:
    using value_type = T;
    using id_type = Id;
    using policy_type = Policy;
    using entry_type = queue_entry<T, Id>;
    using result_type = admission_result<T, Id>;
    using request_type = admission_request<Id>;
    using clock = std::chrono::steady_clock;
    /// Called after a task was evicted to make room (drop-lru, priority),
    /// outside the queue's lock, on the thread whose admission evicted it.
    /// The evicted entry is also returned in that admission's result. If the
    /// handler throws, the exception propagates out of try_push; the
    /// admission has already taken effect.
    using eviction_handler = std::function<void(const entry_type&)>;

    /// Throws orchcore::invalid_argument naming the field for invalid options.
    explicit admission_queue(queue_options options = {}, eviction_handler on_evict = {})
        : impl_(make_impl(options, std::move(on_evict))) {}

    admission_queue(const admission_queue&) = delete;
    admission_queue& operator=(const admission_queue&) = delete;

    /// True if this queue runs on the lock-free ring.
    bool uses_ring() const noexcept {
        if constexpr (ring_eligible) return impl_.index() == 0;
        else return false;
    }

    /// Admits `value` or rejects it, without blocking. On rejection `value`
    /// is not moved from.
    result_type try_push(T&& value, const request_type& req = {}) {
        return with([&](auto& q) { return q.try_push(std::move(value), req); });
    }
    result_type try_push(const T& value, const request_type& req = {}) {
        return with([&](auto& q) { return q.try_push(value, req); });
    }

    /// Takes the next task if there is one.
    std::optional<entry_type> try_pop() {
        return with([](auto& q) { return q.try_pop(); });
    }

    /// Takes the next task, waiting as long as needed.
    /// Throws queue_closed once the queue is closed and empty.
    entry_type pop() {
        return with([](auto& q) { return q.pop(); });
    }

    /// Takes the next task, waiting up to `timeout`; empty on timeout.
    /// Throws queue_closed once the queue is closed and empty.
    template <class Rep, class Period>
    std::optional<entry_type> pop_for(const std::chrono::duration<Rep, Period>& timeout) {
        return with([&](auto& q) { return q.pop_for(timeout); });
    }

    template <class Clock, class Duration>
    std::optional<entry_type> pop_until(const std::chrono::time_point<Clock, Duration>& deadline) {
        return with([&](auto& q) { return q.pop_until(deadline); });
    }

    /// Takes up to `max` tasks without blocking.
    std::vector<entry_type> try_pop_batch(std::size_t max) {
        return with([&](auto& q) { return q.try_pop_batch(max); });
    }

    /// Takes up to `max` (>= 1) tasks, waiting for the first one. Throws
    /// queue_closed once the queue is closed and empty, invalid_argument
    /// for max == 0.
    std::vector<entry_type> pop_batch(std::size_t max) {
        return with([&](auto& q) { return q.pop_batch(max); });
    }

    /// As pop_batch, waiting up to `timeout`; empty vector on timeout.
    template <class Rep, class Period>
    std::vector<entry_type> pop_batch_for(std::size_t max, const std::chrono::duration<Rep, Period>& timeout) {
        return with([&](auto& q) { return q.pop_batch_for(max, timeout); });
    }

    template <class Clock, class Duration>
    std::vector<entry_type> pop_batch_until(std::size_t max, const std::chrono::time_point<Clock, Duration>& deadline) {
        return with([&](auto& q) { return q.pop_batch_until(max, deadline); });
    }

    /// Removes a queued task (cancellation) and returns it; empty if no task
    /// with that id is queued. Cancelling twice is a no-op. The tasks behind
    /// it move up by exactly one position.
    std::optional<entry_type> cancel(const Id& id) {
        return with([&](auto& q) { return q.cancel(id); });
    }

    /// 0-based position in dequeue order of a queued task.
    std::optional<std::size_t> position_of(const Id& id) const {
        return with([&](const auto& q) { return q.position_of(id); });
    }

    bool contains(const Id& id) const {
        return with([&](const auto& q) { return q.contains(id); });
    }

    /// Ids in dequeue order (a consistent snapshot).
    std::vector<Id> ids_in_dequeue_order() const {
        return with([](const auto& q) { return q.ids_in_dequeue_order(); });
    }

    /// Rejects further admissions and wakes all blocked consumers.
    void close() {
        with([](auto& q) { q.close(); });
    }

    bool is_closed() const noexcept {
        return with([](const auto& q) noexcept { return q.is_closed(); });
    }

    /// Exact depth (a consistent snapshot).
    std::size_t size() const {
        return with([](const auto& q) { return q.size(); });
    }

    /// Depth read without synchronising: may be stale by the time it is read.
    std::size_t size_approx() const noexcept {
        return with([](const auto& q) noexcept { return q.size_approx(); });
    }

    std::size_t capacity() const noexcept {
        return with([](const auto& q) noexcept { return q.capacity(); });
    }

    /// Consumers currently blocked in pop/pop_for/pop_batch.
    std::size_t waiting_consumers() const {
        return with([](const auto& q) { return q.waiting_consumers(); });
    }

    /// Consistent snapshot of all counters.
    queue_metrics metrics() const {
        return with([](const auto& q) { return q.metrics(); });
    }

private:
    template <class F>
    decltype(auto) with(F&& f) {
        if constexpr (ring_eligible) {
            if (impl_.index() == 0) return f(*std::get_if<0>(&impl_));
            return f(*std::get_if<1>(&impl_));
        } else {
            return f(impl_);
        }
    }
    template <class F>
    decltype(auto) with(F&& f) const {
        if constexpr (ring_eligible) {
            if (impl_.index() == 0) return f(*std::get_if<0>(&impl_));
            return f(*std::get_if<1>(&impl_));
        } else {
            return f(impl_);
        }
    }

    // Only a policy the ring can serve needs the choice (a variant whose
    // alternatives were both the locked queue made g++ -O3 see a null
    // dereference that cannot happen).
    using impl_type = std::conditional_t<ring_eligible, std::variant<ring_type, locked_type>, locked_type>;

    // Returns a prvalue, so the (immovable) queue is built in place.
    static impl_type make_impl(const queue_options& options, eviction_handler on_evict) {
        if constexpr (ring_eligible) {
            if (options.capacity <= detail::ring_max_capacity)
                return impl_type(std::in_place_index<0>, options, std::move(on_evict));
            return impl_type(std::in_place_index<1>, options, std::move(on_evict));
        } else {
            return impl_type(options, std::move(on_evict));
        }
    }

    impl_type impl_;
};

/// Named aliases for the built-in policies.
template <class T, class Id = job_id>
using reject_new_queue = admission_queue<T, policy::reject_new, Id>;
template <class T, class Id = job_id>
using drop_lru_queue = admission_queue<T, policy::drop_lru, Id>;
template <class T, class Id = job_id>
using fail_fast_queue = admission_queue<T, policy::fail_fast, Id>;
template <class T, class Id = job_id>
using priority_queue = admission_queue<T, policy::priority, Id>;

}  // namespace orchcore
