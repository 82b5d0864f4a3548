// locked_admission_queue<T, Policy, Id>: the implementation behind
// admission_queue for every policy (and for reject-new queues that the ring
// cannot serve, see ring_admission_queue.hpp).
//
// The decisions are made by admission_core under one lock (adaptive_mutex:
// it spins briefly, yields a few times, then sleeps). With wait-time metrics the clock is read
// once per admission and dequeue, before locking; without, only a rejection
// (for its retry-after) and a sampled dequeue now and then read it (under
// the lock: see detail/op_time.hpp). A
// consumer that blocks registers a handoff record, and a producer that finds
// one moves the task straight into it and wakes exactly that consumer (no
// thundering herd, no notify at all while nobody sleeps, and the wake-up
// system call is made after the lock is released). See wait_pop for how a
// consumer waits; bench/README.md for the measurements behind it.
#pragma once

#include <orchcore/admission_core.hpp>
#include <orchcore/detail/adaptive_mutex.hpp>
#include <orchcore/detail/futex.hpp>
#include <orchcore/detail/op_time.hpp>
#include <orchcore/detail/spin.hpp>
#include <orchcore/detail/stamp_clock.hpp>
#include <orchcore/detail/timed_pops.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace orchcore::detail {

/// `StampClock` stamps admissions and dequeues (wait times, the dequeue
/// rate), by default stamp_clock (steady_clock time points from the
/// time-stamp counter); deadlines of blocking pops use
/// std::chrono::steady_clock. Tests
/// substitute a clock that counts its reads.
template <class T, admission_policy Policy, class Id, class StampClock = stamp_clock>
class locked_admission_queue
    : public timed_pops<locked_admission_queue<T, Policy, Id, StampClock>, queue_entry<T, Id>> {
    friend class timed_pops<locked_admission_queue<T, Policy, Id, StampClock>, queue_entry<T, Id>>;

public:
    using core_type = admission_core<T, Policy, Id>;
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

    explicit locked_admission_queue(queue_options options = {}, eviction_handler on_evict = {})
        : notify_evictions_(static_cast<bool>(on_evict)), core_(options), on_evict_(std::move(on_evict)) {}

    locked_admission_queue(const locked_admission_queue&) = delete;
    locked_admission_queue& operator=(const locked_admission_queue&) = delete;

    /// Admits `value` or rejects it, without blocking. On rejection `value`
    /// is not moved from.
    result_type try_push(T&& value, const request_type& req = {}) {
        op_time now = stamp_time();
        result_type result;
        waiter* to_wake = nullptr;
        {
            auto lock = acquire();
            auto handoff = core_.admit_into(result, std::move(value), req, now, wait_head_ != nullptr);
            if (result.accepted()) {
                if constexpr (Policy::handoff_only) {
                    to_wake = deliver(std::move(*handoff));
                } else if (wait_head_ != nullptr) {
                    // A consumer is waiting, so the queue was empty: the new
                    // task is the next one out.
                    to_wake = deliver(std::move(*core_.pop(now)));
                }
                publish_size();
            }
        }
        wake(to_wake);
        if (notify_evictions_ && result.evicted) on_evict_(*result.evicted);
        return result;
    }

    result_type try_push(const T& value, const request_type& req = {}) {
        T copy(value);
        return try_push(std::move(copy), req);
    }

    /// Takes the next task if there is one.
    std::optional<entry_type> try_pop() {
        if (size_approx_.load(std::memory_order_relaxed) == 0) return std::nullopt;
        const op_time now = stamp_time();
        auto lock = acquire();
        auto e = core_.pop(now);
        if (e) publish_size();
        return e;
    }

    /// Takes up to `max` tasks without blocking.
    std::vector<entry_type> try_pop_batch(std::size_t max) {
        std::vector<entry_type> out;
        if (max == 0 || size_approx_.load(std::memory_order_relaxed) == 0) return out;
        const op_time now = stamp_time();
        auto lock = acquire();
        out.reserve(std::min(max, core_.size()));
        core_.pop_batch(std::back_inserter(out), max, now);
        publish_size();
        return out;
    }

    /// Removes a queued task (cancellation) and returns it; empty if no task
    /// with that id is queued. Cancelling twice is a no-op.
    std::optional<entry_type> cancel(const Id& id) {
        auto lock = acquire();
        auto e = core_.cancel(id);
        publish_size();
        return e;
    }

    /// 0-based position in dequeue order of a queued task.
    std::optional<std::size_t> position_of(const Id& id) const {
        auto lock = acquire();
        return core_.position_of(id);
    }

    bool contains(const Id& id) const {
        auto lock = acquire();
        return core_.contains(id);
    }

    /// Ids in dequeue order (a consistent snapshot).
    std::vector<Id> ids_in_dequeue_order() const {
        auto lock = acquire();
        return core_.ids_in_dequeue_order();
    }

    /// Rejects further admissions and wakes all blocked consumers.
    void close() {
        auto lock = acquire();
        core_.close();
        closed_.store(true, std::memory_order_release);
        // Rare: settle and wake every waiter under the lock.
        while (wait_head_ != nullptr) {
            waiter& w = *wait_head_;
            unlink(w);
            wake(settle(w, waiter::closed));
        }
    }

    bool is_closed() const noexcept { return closed_.load(std::memory_order_acquire); }

    /// Exact depth (takes the lock).
    std::size_t size() const {
        auto lock = acquire();
        return core_.size();
    }

    /// Depth without locking: may be stale by the time it is read.
    std::size_t size_approx() const noexcept { return size_approx_.load(std::memory_order_relaxed); }

    std::size_t capacity() const noexcept { return core_.capacity(); }

    /// Consumers currently blocked in pop/pop_for/pop_batch.
    std::size_t waiting_consumers() const {
        auto lock = acquire();
        return waiting_;
    }

    /// Consistent snapshot of all counters.
    queue_metrics metrics() const {
        auto lock = acquire();
        return core_.metrics(StampClock::now());
    }

private:
    // A consumer blocked in wait_pop. It lives on that consumer's stack and is
    // linked into the queue's FIFO of waiters (under the lock) while the queue
    // is empty. A producer that admits a task hands it over: under the lock
    // it unlinks the record, fills `slot` and publishes the outcome in
    // `state`. The consumer first spins on `state` (its own cache line, so
    // a handoff while it spins costs no system call on either side), then
    // announces that it sleeps and parks on the futex. Only a producer that
    // finds it sleeping wakes it, after releasing the queue lock. On Linux
    // that wake may hit a record whose owner has already returned (harmless,
    // see detail/futex.hpp), so the consumer never waits for its waker: a
    // consumer that waited for the waker could spin while the waker, which
    // its own wake-up preempted, is not running. Elsewhere the producer sets
    // `released` after the wake, and a consumer that slept yields until it
    // sees that bit before its record goes out of scope.
    struct waiter {
        static constexpr std::uint32_t waiting = 0, sleeping = 1, delivered = 2, closed = 3;
        static constexpr std::uint32_t outcome_mask = 3, released = 4;
        alignas(64) futex_word state{waiting};
        std::optional<entry_type> slot;
        waiter* prev = nullptr;
        waiter* next = nullptr;
        bool linked = false;
    };

    // Every lock is held for exactly one scope: a lock_guard (no ownership
    // flag to test and clear, unlike std::unique_lock).
    using lock_type = std::lock_guard<adaptive_mutex>;

    lock_type acquire() const { return lock_type(mutex_); }

    // The time of an admission or dequeue: read now, before locking, when
    // every operation is stamped; otherwise on demand.
    op_time stamp_time() const noexcept {
        if (core_.stamps()) return op_time{StampClock::now()};
        return op_time::on_demand<StampClock>();
    }

    void publish_size() noexcept { size_approx_.store(core_.size(), std::memory_order_relaxed); }

    // lock held
    void link(waiter& w) noexcept {
        w.prev = wait_tail_;
        w.next = nullptr;
        if (wait_tail_) wait_tail_->next = &w; else wait_head_ = &w;
        wait_tail_ = &w;
        w.linked = true;
        ++waiting_;
    }
    void unlink(waiter& w) noexcept {
        if (!w.linked) return;
        if (w.prev) w.prev->next = w.next; else wait_head_ = w.next;
        if (w.next) w.next->prev = w.prev; else wait_tail_ = w.prev;
        w.linked = false;
        --waiting_;
    }
    // lock held. Gives the longest-waiting consumer its outcome. Returns the
    // record if its owner sleeps: the caller must then call wake() (after
    // unlocking, ideally).
    static waiter* settle(waiter& w, std::uint32_t outcome) noexcept {
        const std::uint32_t prev = w.state.exchange(outcome, std::memory_order_acq_rel);
        return prev == waiter::sleeping ? &w : nullptr;
    }
    waiter* deliver(entry_type&& e) {
        waiter& w = *wait_head_;
        unlink(w);
        w.slot.emplace(std::move(e));
        return settle(w, waiter::delivered);
    }
    static constexpr bool wake_handshake = !futex_wake_tolerates_dead_word;

    static void wake(waiter* w) noexcept {
        if (w == nullptr) return;
        futex_wake_one(w->state);
        // Last touch: after this store the owner may return.
        if constexpr (wake_handshake) w->state.fetch_or(waiter::released, std::memory_order_release);
    }

    // Waiting strategy of a consumer that finds the queue empty, tuned on a
    // 2-vCPU virtual machine where a system call costs microseconds and a
    // cache line takes ~0.5us to move between cores:
    //  1. a few pauses polling the size hint (a task may be microseconds away);
    //  2. a few yields, still polling the hint: unlike spinning, a yield
    //     leaves the queue's cache lines with the producer for a while, so
    //     it runs a burst of admissions at full speed instead of the two
    //     cores bouncing lines on every operation, and a task that arrives
    //     meanwhile is taken without any futex traffic;
    //  3. register a handoff record and spin briefly on it (its own line);
    //  4. sleep on the record's futex until a producer hands a task over.
    static constexpr int pre_lock_spin = 4;
    static constexpr int pre_lock_yield = 8;
    static constexpr int handoff_spin = 16;

    // Blocks for one task (or until deadline). Invariant: while any consumer
    // is registered as waiting, the queue is empty.
    std::optional<entry_type> wait_pop(std::optional<clock::time_point> deadline) {
        // Steps 1-2 (see above). Not for handoff-only policies (their queue is
        // always empty: a task is admitted only into a registered record),
        // nor when the deadline has passed.
        if (!Policy::handoff_only && (!deadline || *deadline > clock::now())) {
            for (int i = 0; i < pre_lock_spin + pre_lock_yield; ++i) {
                if (size_approx_.load(std::memory_order_relaxed) != 0 || closed_.load(std::memory_order_relaxed))
                    break;
                if (i < pre_lock_spin) cpu_relax(); else std::this_thread::yield();
            }
        }
        const op_time now = stamp_time();
        const auto checked_at = deadline ? clock::now() : clock::time_point{};
        waiter w;
        {
            auto lock = acquire();
            if (auto e = core_.pop(now)) {
                publish_size();
                return e;
            }
            if (core_.is_closed()) throw queue_closed();
            if (deadline && *deadline <= checked_at) return std::nullopt;
            link(w);
        }

        std::uint32_t s = waiter::waiting;
        for (int i = 0; i < handoff_spin; ++i) {
            s = w.state.load(std::memory_order_acquire);
            if (s != waiter::waiting) break;
            cpu_relax();
        }
        bool slept = false;
        if (s == waiter::waiting) {
            slept = w.state.compare_exchange_strong(s, waiter::sleeping, std::memory_order_acq_rel,
                                                    std::memory_order_acquire);
            if (slept) {
                s = waiter::sleeping;
                for (;;) {
                    const bool in_time = futex_wait(w.state, waiter::sleeping, deadline ? &*deadline : nullptr);
                    s = w.state.load(std::memory_order_acquire);
                    if (s != waiter::sleeping) break;
                    if (!in_time || (deadline && clock::now() >= *deadline)) {
                        // Timed out: withdraw, unless a producer settled us meanwhile.
                        auto lock = acquire();
                        s = w.state.load(std::memory_order_acquire);
                        if (s == waiter::sleeping) {
                            unlink(w);
                            return std::nullopt;
                        }
                        break;
                    }
                }
            }
        }
        if (wake_handshake && slept) {
            // The settling producer saw us asleep: wait until it is done with
            // our record (yielding: it may need this core to get there).
            while ((s & waiter::released) == 0) {
                std::this_thread::yield();
                s = w.state.load(std::memory_order_acquire);
            }
        }
        if ((s & waiter::outcome_mask) == waiter::closed) throw queue_closed();
        return std::move(w.slot);
    }

    std::vector<entry_type> wait_pop_batch(std::size_t max, std::optional<clock::time_point> deadline) {
        if (max == 0) throw invalid_argument("max", "0", "batch size must be at least 1");
        std::vector<entry_type> out;
        if (size_approx_.load(std::memory_order_relaxed) != 0) {
            const op_time now = stamp_time();
            auto lock = acquire();
            if (!core_.empty()) {
                out.reserve(std::min(max, core_.size()));
                core_.pop_batch(std::back_inserter(out), max, now);
                publish_size();
                return out;
            }
        }
        auto first = wait_pop(deadline);
        if (!first) return out;
        out.push_back(std::move(*first));
        if (max > 1) {
            auto more = try_pop_batch(max - 1);
            for (auto& e : more) out.push_back(std::move(e));
        }
        return out;
    }

    // The lock word, the waiter list, the size hint and whether an eviction
    // handler is set share a cache line;
    // admission_core keeps its hot fields in its first line, and each of its
    // lanes in one line of its own: under contention every line the lock
    // holder touches may have to travel from the other core, so the fewer
    // the better.
    alignas(64) mutable adaptive_mutex mutex_;
    std::atomic<bool> closed_{false};
    std::atomic<std::size_t> size_approx_{0};
    waiter* wait_head_ = nullptr;
    waiter* wait_tail_ = nullptr;
    std::size_t waiting_ = 0;
    const bool notify_evictions_;
    core_type core_;
    eviction_handler on_evict_;
};

}  // namespace orchcore::detail
