// ring_admission_queue<T, Policy, Id>: the lock-free implementation behind
// admission_queue for FIFO policies that reject when full (reject-new), with
// the same behaviour, verbs and metrics as the locked implementation
// (locked_admission_queue.hpp). admission_queue picks it when the policy,
// the types and the capacity allow (see admission_queue.hpp).
//
// Why: with one lock per item, producer and consumer hand the lock's cache
// line back and forth on every operation; measured on a 2-vCPU machine that
// made the queue slower than a plain mutex+deque (bench/README.md). Here the
// common operations touch no lock at all.
//
// Design.
//  * Slots: a preallocated ring of exactly `capacity` slots (not rounded up:
//    the capacity asked for is the capacity enforced). Each slot carries a
//    sequence number (Vyukov's bounded MPMC queue): a producer claims
//    position p by a CAS on tail_ when slot p%N reads seq == p, fills it and
//    publishes seq = p+1; a consumer claims p by a CAS on head_ when the
//    slot reads seq == p+1, empties it and publishes seq = p+N (free for
//    the next lap). A slot whose previous lap is still occupied means the
//    queue is full: the admission is rejected at once. So head_ counts
//    dequeues and tail_ admissions (less cancellations), and nothing else
//    needs a shared counter.
//  * Fast operations are admissions with a generated id, pops, and the
//    size hint. Everything else (cancel, lookups by id, exact size, metrics
//    snapshots, close, admissions with a caller-supplied id or an invalid
//    request) is exclusive: it raises `exclusive_`, waits until no fast
//    operation is in flight (each side announces itself in its own
//    in-flight counter: an uncontended atomic increment), and then works on
//    a quiescent ring. That is what keeps cancellation exact (the cancelled
//    task is removed and the tasks behind it move up by exactly one) and
//    the metrics snapshot consistent, without slowing the fast path.
//  * Ids: generated ids need no index (they are unique by construction).
//    The first caller-supplied id switches the queue to indexed mode: every
//    queued id is indexed and, until the queue is next empty, all
//    operations run exclusively so that the index stays exact. A queue fed
//    only caller-supplied ids thus behaves like a locked queue.
//  * Waiting: a consumer that finds the queue empty polls briefly, then
//    registers in waiters_ and sleeps on the epoch_ futex word. A producer
//    checks waiters_ after publishing (one load of a line that changes only
//    when a consumer goes to sleep) and bumps epoch_ + wakes one sleeper only
//    when there is one. The store/fence/load pairs on both sides guarantee
//    that either the producer sees the waiter or the waiter sees the task.
//  * Metrics: the wait-time histogram is striped per consuming thread
//    (relaxed atomics). The dequeue rate behind retry-after is sampled by
//    the consumers themselves, amortised (at a few early dequeues, then at
//    every 64th, with a try-lock that never waits), and by a rejection from
//    head_ at most about once a millisecond, so the first rejection after a
//    busy period already knows it. The estimate is published under a
//    sequence lock: a rejection reads it without taking any lock.
//    With queue_options::wait_time_metrics off, admissions and dequeues read
//    no clock (only the sampling dequeues do).
#pragma once

#include <orchcore/admission_core.hpp>
#include <orchcore/admission_policy.hpp>
#include <orchcore/admission_result.hpp>
#include <orchcore/detail/futex.hpp>
#include <orchcore/detail/id_index.hpp>
#include <orchcore/detail/saturating.hpp>
#include <orchcore/detail/spin.hpp>
#include <orchcore/detail/stamp_clock.hpp>
#include <orchcore/detail/thread_stripe.hpp>
#include <orchcore/detail/timed_pops.hpp>
#include <orchcore/error.hpp>
#include <orchcore/metrics.hpp>
#include <orchcore/priority.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__SANITIZE_THREAD__)
#define ORCHCORE_RING_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ORCHCORE_RING_UNDER_TSAN 1
#endif
#endif
#ifndef ORCHCORE_RING_UNDER_TSAN
#define ORCHCORE_RING_UNDER_TSAN 0
#endif

namespace orchcore::detail {

/// Largest capacity served by the ring (its slots are preallocated); larger
/// reject-new queues use the locked implementation, whose storage grows on
/// demand.
inline constexpr std::size_t ring_max_capacity = 65'536;

/// Whether a policy and the entry types can use the ring at all.
template <class T, class Policy, class Id>
inline constexpr bool ring_eligible = Policy::order == policy::dequeue_order::fifo &&
                                      Policy::on_full == policy::when_full::reject && !Policy::handoff_only &&
                                      std::is_nothrow_move_constructible_v<T> &&
                                      std::is_nothrow_move_constructible_v<Id> && std::is_nothrow_destructible_v<T>;

/// Wait-time histogram written concurrently by consuming threads: each
/// thread records into one of a few stripes (its own cache lines), with
/// relaxed atomics; a snapshot sums the stripes.
class striped_wait_histogram {
public:
    void record(std::chrono::nanoseconds d) noexcept {
        const auto ns = d.count() < 0 ? std::uint64_t{0} : static_cast<std::uint64_t>(d.count());
        stripe& s = stripes_[stripe_of_this_thread()];
        s.buckets[latency_histogram::bucket_for(ns)].fetch_add(1, std::memory_order_relaxed);
        s.sum_ns.fetch_add(ns, std::memory_order_relaxed);
        if (ns > s.max_ns.load(std::memory_order_relaxed)) s.max_ns.store(ns, std::memory_order_relaxed);
    }

    /// Exact when no thread is recording (the queue takes it quiescent).
    latency_histogram snapshot() const noexcept {
        std::array<std::uint64_t, latency_histogram::bucket_count> b{};
        std::uint64_t sum = 0, mx = 0;
        for (const stripe& s : stripes_) {
            for (std::size_t i = 0; i < b.size(); ++i) b[i] += s.buckets[i].load(std::memory_order_relaxed);
            sum += s.sum_ns.load(std::memory_order_relaxed);
            mx = std::max(mx, s.max_ns.load(std::memory_order_relaxed));
        }
        return latency_histogram::from_parts(b, sum, mx);
    }

private:
    static constexpr std::size_t stripe_count = 8;
    struct alignas(64) stripe {
        std::array<std::atomic<std::uint64_t>, latency_histogram::bucket_count> buckets{};
        std::atomic<std::uint64_t> sum_ns{0};
        // Written only by the threads of this stripe; a racing pair may lose
        // a maximum to a smaller one only if two threads share a stripe.
        std::atomic<std::uint64_t> max_ns{0};
    };

    static std::size_t stripe_of_this_thread() noexcept { return thread_stripe<stripe_count>(); }

    std::array<stripe, stripe_count> stripes_{};
};

/// `StampClock` stamps admissions and dequeues (wait times, the dequeue
/// rate behind retry-after): by default stamp_clock (steady_clock time
/// points from the time-stamp counter); tests give it a clock they move by
/// hand. Its time points are steady_clock's. Deadlines of the blocking pops are
/// always on steady_clock.
template <class T, admission_policy Policy, class Id, class StampClock = stamp_clock>
class ring_admission_queue
    : public timed_pops<ring_admission_queue<T, Policy, Id, StampClock>, queue_entry<T, Id>> {
    friend class timed_pops<ring_admission_queue<T, Policy, Id, StampClock>, queue_entry<T, Id>>;

    static_assert(ring_eligible<T, Policy, Id>);
    static_assert(std::is_same_v<typename StampClock::time_point, std::chrono::steady_clock::time_point>);

public:
    using value_type = T;
    using id_type = Id;
    using policy_type = Policy;
    using entry_type = queue_entry<T, Id>;
    using result_type = admission_result<T, Id>;
    using request_type = admission_request<Id>;
    using clock = std::chrono::steady_clock;
    using eviction_handler = std::function<void(const entry_type&)>;

    /// `on_evict` is accepted for interface parity and never called: a
    /// policy that rejects when full evicts nothing.
    explicit ring_admission_queue(queue_options options = {}, eviction_handler /*on_evict*/ = {})
        : options_((validate_queue_options(options), options)),
          cap_(options.capacity),
          ring_(cap_ == 1 ? 2 : cap_),
          slots_(cap_ == 0 ? nullptr : new slot[ring_]) {
        for (std::uint64_t i = 0; i < ring_; ++i) slots_[i].seq.store(i, std::memory_order_relaxed);
    }

    ring_admission_queue(const ring_admission_queue&) = delete;
    ring_admission_queue& operator=(const ring_admission_queue&) = delete;

    ~ring_admission_queue() {
        const std::uint64_t t = tail_.load(std::memory_order_relaxed);
        for (std::uint64_t p = head_.load(std::memory_order_relaxed); p != t; ++p) slot_at(p).destroy();
    }

    result_type try_push(T&& value, const request_type& req = {}) {
        // Without wait-time metrics an admission reads no clock.
        const auto now = options_.wait_time_metrics ? StampClock::now() : clock::time_point{};
        if (req.id || !priority::is_valid(req.priority)) return push_exclusive(std::move(value), req, now);
        // Every return below is a prvalue: the result is built in place, in
        // the caller's object, never moved.
        std::optional<Id> id;
        std::size_t position = 0;
        switch (push_fast(value, req.priority, now, id, position)) {
            case fast_push::accepted:
                notify_one();
                return accepted(std::move(id), position);
            case fast_push::exclusive: return push_exclusive(std::move(value), req, now);
            case fast_push::no_capacity: return reject(req, rejection_reason::queue_full, "queue capacity is 0");
            case fast_push::full: break;
        }
        return reject(req, rejection_reason::queue_full, "queue is full");
    }

    result_type try_push(const T& value, const request_type& req = {}) {
        T copy(value);
        return try_push(std::move(copy), req);
    }

    std::optional<entry_type> try_pop() { return pop_any(); }

    std::vector<entry_type> try_pop_batch(std::size_t max) {
        std::vector<entry_type> out;
        while (out.size() < max) {
            auto e = pop_any();
            if (!e) break;
            if (out.empty()) out.reserve(std::min(max, size_approx() + 1));
            out.push_back(std::move(*e));
        }
        return out;
    }

    /// Removes a queued task; the tasks behind it move up by one. O(depth).
    std::optional<entry_type> cancel(const Id& id) {
        exclusive_section x(*this);
        const std::uint64_t h = head_.load(std::memory_order_relaxed);
        const std::uint64_t t = tail_.load(std::memory_order_relaxed);
        const auto p = find_position(id, h, t);
        if (!p) return std::nullopt;
        slot& victim = slot_at(*p);
        std::optional<entry_type> out(std::move(victim.entry()));
        victim.destroy();
        // Close the gap: move every later task one position forward. Their
        // slots keep their "full at position q" sequence numbers; only the
        // last slot becomes free again, for the producer at the new tail.
        for (std::uint64_t q = *p + 1; q != t; ++q) {
            slot& from = slot_at(q);
            slot_at(q - 1).construct_from(std::move(from.entry()));
            from.destroy();
        }
        slot_at(t - 1).seq.store(t - 1, std::memory_order_relaxed);
        tail_.store(t - 1, std::memory_order_relaxed);
        ++cancelled_;
        // Position t - 1 is free again: the next generated id stays new.
        id_base_.store(id_base_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        if (indexed_.load(std::memory_order_relaxed)) {
            index_.erase(out->id);
            leave_indexed_mode_if_empty();
        }
        return out;
    }

    std::optional<std::size_t> position_of(const Id& id) const {
        exclusive_section x(*this);
        const std::uint64_t h = head_.load(std::memory_order_relaxed);
        const auto p = find_position(id, h, tail_.load(std::memory_order_relaxed));
        if (!p) return std::nullopt;
        return static_cast<std::size_t>(*p - h);
    }

    bool contains(const Id& id) const {
        exclusive_section x(*this);
        return find_position(id, head_.load(std::memory_order_relaxed), tail_.load(std::memory_order_relaxed))
            .has_value();
    }

    std::vector<Id> ids_in_dequeue_order() const {
        exclusive_section x(*this);
        std::vector<Id> ids;
        const std::uint64_t t = tail_.load(std::memory_order_relaxed);
        for (std::uint64_t p = head_.load(std::memory_order_relaxed); p != t; ++p) ids.push_back(slot_at(p).entry().id);
        return ids;
    }

    void close() {
        {
            exclusive_section x(*this);
            closed_.store(true, std::memory_order_seq_cst);
        }
        epoch_.fetch_add(1, std::memory_order_seq_cst);
        futex_wake_all(epoch_);
    }

    bool is_closed() const noexcept { return closed_.load(std::memory_order_acquire); }

    std::size_t size() const {
        exclusive_section x(*this);
        return depth_quiescent();
    }

    std::size_t size_approx() const noexcept {
        const std::uint64_t h = head_.load(std::memory_order_relaxed);
        const std::uint64_t t = tail_.load(std::memory_order_relaxed);
        return t > h ? static_cast<std::size_t>(std::min<std::uint64_t>(t - h, cap_)) : 0;
    }

    std::size_t capacity() const noexcept { return cap_; }

    std::size_t waiting_consumers() const { return waiters_.load(std::memory_order_acquire); }

    queue_metrics metrics() const {
        const auto now = StampClock::now();
        exclusive_section x(*this);
        queue_metrics m;
        m.policy = Policy::name;
        m.depth = depth_quiescent();
        m.capacity = cap_;
        const std::uint64_t dequeued = head_.load(std::memory_order_relaxed);
        m.accepted = tail_.load(std::memory_order_relaxed) + cancelled_;
        m.dequeued = dequeued;
        m.cancelled = cancelled_;
        for (std::size_t i = 0; i < rejection_reason_count; ++i)
            m.rejected_by_reason[i] = rejected_[i].load(std::memory_order_relaxed);
        const double interval = rate_.interval_seconds(now, dequeued);
        m.dequeue_rate_per_second = interval > 0.0 ? 1.0 / interval : 0.0;
        m.wait_time = wait_time_.snapshot();
        return m;
    }

private:
    struct alignas(64) slot {
        std::atomic<std::uint64_t> seq{0};
        alignas(entry_type) unsigned char storage[sizeof(entry_type)];

        entry_type& entry() noexcept { return *std::launder(reinterpret_cast<entry_type*>(storage)); }
        const entry_type& entry() const noexcept {
            return *std::launder(reinterpret_cast<const entry_type*>(storage));
        }
        void construct(Id&& id, T&& value, int prio, clock::time_point at) noexcept {
            ::new (static_cast<void*>(storage)) entry_type{std::move(id), std::move(value), prio, at};
        }
        void construct_from(entry_type&& e) noexcept { ::new (static_cast<void*>(storage)) entry_type(std::move(e)); }
        void destroy() noexcept { entry().~entry_type(); }
    };

    // A fast operation's claim on the ring (see the header comment): it
    // announces itself in its side's counter, then backs off while an
    // exclusive operation runs. The seq_cst increment and load pair with
    // exclusive_section's store and loads (Dekker), so either the exclusive
    // operation waits for this one or this one waits for it.
    class fast_section {
    public:
        explicit fast_section(const ring_admission_queue& q) : in_(&q.in_flight_[in_flight_stripe()].count) {
            auto& in = *in_;
            for (;;) {
                in.fetch_add(1, std::memory_order_seq_cst);
                if (!q.exclusive_.load(std::memory_order_seq_cst)) return;
                in.fetch_sub(1, std::memory_order_release);
                for (int i = 0; q.exclusive_.load(std::memory_order_acquire); ++i) {
                    if (i < 32) cpu_relax(); else std::this_thread::yield();
                }
            }
        }
        fast_section(const fast_section&) = delete;
        fast_section& operator=(const fast_section&) = delete;
        void leave() noexcept {
            if (in_) in_->fetch_sub(1, std::memory_order_release);
            in_ = nullptr;
        }
        ~fast_section() { leave(); }

    private:
        std::atomic<std::uint32_t>* in_;
    };

    class exclusive_section {
    public:
        explicit exclusive_section(const ring_admission_queue& q) : q_(q), lock_(q.exclusive_mutex_) {
            q.exclusive_.store(true, std::memory_order_seq_cst);
            for (const auto& stripe : q.in_flight_) {
                for (int i = 0; stripe.count.load(std::memory_order_seq_cst) != 0; ++i) {
                    if (i < 32) cpu_relax(); else std::this_thread::yield();
                }
            }
        }
        exclusive_section(const exclusive_section&) = delete;
        exclusive_section& operator=(const exclusive_section&) = delete;
        ~exclusive_section() {
            q_.head_seen_.store(q_.head_.load(std::memory_order_relaxed), std::memory_order_relaxed);
            q_.exclusive_.store(false, std::memory_order_release);
        }

    private:
        const ring_admission_queue& q_;
        std::unique_lock<std::mutex> lock_;
    };

    // Dequeue-rate estimate for retry-after, sampled from the dequeue count
    // by consumers (now and then) and by rejections: the mean interval
    // between dequeues since the previous sample, smoothed; a silence since
    // then counts in full.
    class sampled_rate {
    public:
        // Rate mutex held. Takes a sample (the first one after two dequeues
        // only starts the measurement) and publishes the estimate.
        void sample(clock::time_point now, std::uint64_t dequeued) {
            if (dequeued < 2) return;
            // A sample overtaken by a later one (another consumer's) adds nothing.
            if (has_last_ && (dequeued < count_ || now < at_)) return;
            if (has_last_ && dequeued > count_) {
                const double dt = std::chrono::duration<double>(now - at_).count();
                const double per = dt / static_cast<double>(dequeued - count_);
                mean_ = primed_ ? (1.0 - alpha) * mean_ + alpha * per : per;
                primed_ = true;
            }
            if (!has_last_ || dequeued != count_) {
                at_ = now;
                count_ = dequeued;
                has_last_ = true;
            }
            publish();
        }

        // Lock-free: whether dequeues happened since the last sample, which
        // is at least a millisecond old.
        bool stale(clock::time_point now, std::uint64_t dequeued) const noexcept {
            if (dequeued < 2 || dequeued == pub_count_.load(std::memory_order_relaxed)) return false;
            return now.time_since_epoch().count() - pub_at_.load(std::memory_order_relaxed) >=
                   std::chrono::duration_cast<clock::duration>(std::chrono::milliseconds{1}).count();
        }

        // Lock-free: the estimated mean interval between dequeues at `now`,
        // in seconds, 0 while there is none.
        double interval_seconds(clock::time_point now, std::uint64_t dequeued) const noexcept {
            const published p = read();
            if (!p.primed) return 0.0;
            // No dequeue since the last sample: the silence counts in full.
            const double silence =
                dequeued == p.count ? std::chrono::duration<double>(now - clock::time_point{clock::duration{p.at}}).count()
                                    : 0.0;
            return std::max(p.mean, silence);
        }

    private:
        struct published {
            clock::rep at;
            std::uint64_t count;
            double mean;
            bool primed;
        };

        // A sequence lock: the writer (rate mutex held) makes the version odd
        // while it stores; a reader retries a read that overlapped a store.
        void publish() noexcept {
            const std::uint32_t v = ver_.load(std::memory_order_relaxed);
            ver_.store(v + 1, std::memory_order_relaxed);
            std::atomic_thread_fence(std::memory_order_release);
            pub_at_.store(at_.time_since_epoch().count(), std::memory_order_relaxed);
            pub_count_.store(count_, std::memory_order_relaxed);
            pub_mean_.store(mean_, std::memory_order_relaxed);
            pub_primed_.store(primed_, std::memory_order_relaxed);
            ver_.store(v + 2, std::memory_order_release);
        }
        published read() const noexcept {
            published p{};
            for (int i = 0; i < 64; ++i) {
                const std::uint32_t v = ver_.load(std::memory_order_acquire);
                p = {pub_at_.load(std::memory_order_relaxed), pub_count_.load(std::memory_order_relaxed),
                     pub_mean_.load(std::memory_order_relaxed), pub_primed_.load(std::memory_order_relaxed)};
                std::atomic_thread_fence(std::memory_order_acquire);
                if ((v & 1) == 0 && ver_.load(std::memory_order_relaxed) == v) break;
            }
            return p;  // after 64 overlapping writes: a recent, possibly mixed estimate
        }

        static constexpr double alpha = 0.2;
        // Rate mutex.
        clock::time_point at_{};
        std::uint64_t count_ = 0;
        double mean_ = 0.0;
        bool has_last_ = false, primed_ = false;
        // Published.
        std::atomic<std::uint32_t> ver_{0};
        std::atomic<clock::rep> pub_at_{0};
        std::atomic<std::uint64_t> pub_count_{0};
        std::atomic<double> pub_mean_{0.0};
        std::atomic<bool> pub_primed_{false};
    };

    slot& slot_at(std::uint64_t pos) const noexcept { return slots_[pos % ring_]; }

    std::size_t depth_quiescent() const noexcept {
        return static_cast<std::size_t>(tail_.load(std::memory_order_relaxed) - head_.load(std::memory_order_relaxed));
    }

    // exclusive
    std::optional<std::uint64_t> find_position(const Id& id, std::uint64_t h, std::uint64_t t) const {
        if (h == t) return std::nullopt;
        if (indexed_.load(std::memory_order_relaxed) && index_.find(id) == id_index<Id>::npos) return std::nullopt;
        for (std::uint64_t p = h; p != t; ++p)
            if (slot_at(p).entry().id == id) return p;
        return std::nullopt;
    }

    result_type reject(const request_type& req, rejection_reason why, std::string_view detail) {
        rejected_[static_cast<std::size_t>(why)].fetch_add(1, std::memory_order_relaxed);
        result_type r;
        r.is_accepted = false;
        r.id = req.id;
        r.reason = why;
        r.detail = detail;
        if (why == rejection_reason::queue_full || why == rejection_reason::policy_violation)
            r.retry_after = retry_after_hint();
        return r;
    }

    // Lock-free: it reads the published estimate. It folds the dequeues
    // since the last sample in first (a try-lock that never waits) when
    // there are some and the last sample is at least a millisecond old, so
    // a stream of rejections samples about once per millisecond.
    std::chrono::milliseconds retry_after_hint() {
        const auto now = StampClock::now();
        const std::uint64_t dequeued = head_.load(std::memory_order_relaxed);
        if (rate_.stale(now, dequeued)) {
            std::unique_lock<std::mutex> lk(rate_mutex_, std::try_to_lock);
            if (lk.owns_lock()) rate_.sample(now, dequeued);
        }
        const double interval = rate_.interval_seconds(now, dequeued);
        if (interval <= 0.0) return options_.default_retry_after;
        const auto ms = saturating_millis(std::ceil(interval * 1000.0));
        return std::clamp(ms, options_.min_retry_after, options_.max_retry_after);
    }

    enum class fast_push : std::uint8_t { accepted, exclusive, no_capacity, full };

    // The lock-free admission (generated id, valid priority): claims the
    // tail's slot, fills it and publishes it. `value` is moved from only
    // when accepted. A generated id is the admission's ordinal: its
    // position plus id_base_ (see there), so it costs no shared counter.
    fast_push push_fast(T& value, int prio, clock::time_point now, std::optional<Id>& id, std::size_t& position) {
        fast_section in(*this);
        if (closed_.load(std::memory_order_relaxed) || indexed_.load(std::memory_order_relaxed))
            return fast_push::exclusive;
        if (cap_ == 0) return fast_push::no_capacity;
        std::uint64_t pos = tail_.load(std::memory_order_relaxed);
        slot* s = nullptr;
        for (;;) {
            s = &slot_at(pos);
            const std::uint64_t seq = s->seq.load(std::memory_order_acquire);
            const auto dif = static_cast<std::int64_t>(seq - pos);
            // A ring of one slot cannot tell "full at p" from "free for
            // p+1", so capacity 1 runs on two slots with an explicit
            // depth check (a stale head only overstates the depth).
            const bool room = cap_ != 1 || pos == head_.load(std::memory_order_acquire);
            if (dif == 0 && room) {
                if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
            } else if (dif < 0 || !room) {
                return fast_push::full;
            } else {
                pos = tail_.load(std::memory_order_relaxed);
            }
        }
        id.emplace(id_traits<Id>::generate(pos + id_base_.load(std::memory_order_relaxed)));
        s->construct(Id(*id), std::move(value), prio, now);
        // Exact when no dequeue overlaps; otherwise an upper bound.
        const std::uint64_t h = head_seen_.load(std::memory_order_relaxed);
        position = static_cast<std::size_t>(pos > h ? pos - h : 0);
        s->seq.store(pos + 1, std::memory_order_release);
        return fast_push::accepted;
    }

    static result_type accepted(std::optional<Id>&& id, std::size_t position) {
        result_type r;
        r.is_accepted = true;
        r.id = std::move(id);
        r.position = position;
        return r;
    }

    // Admissions that need the whole queue: a caller-supplied id (duplicate
    // check, indexed mode), an invalid priority, a closed queue, or any
    // admission while in indexed mode. The checks run in the same order as
    // admission_core's: closed, priority, duplicate id, room.
    result_type push_exclusive(T&& value, const request_type& req, clock::time_point now) {
        result_type r;
        {
            exclusive_section x(*this);
            if (closed_.load(std::memory_order_relaxed)) return reject(req, rejection_reason::closed, "queue is closed");
            if (!priority::is_valid(req.priority))
                return reject(req, rejection_reason::invalid_request, "priority out of range [0, 20]");
            const std::uint64_t h = head_.load(std::memory_order_relaxed);
            const std::uint64_t t = tail_.load(std::memory_order_relaxed);
            if (req.id) {
                enter_indexed_mode(h, t);
                if (index_.find(*req.id) != id_index<Id>::npos)
                    return reject(req, rejection_reason::invalid_request, "duplicate id: a task with this id is queued");
            }
            if (t - h >= cap_)
                return reject(req, rejection_reason::queue_full, cap_ == 0 ? "queue capacity is 0" : "queue is full");
            Id id = req.id ? *req.id : next_generated_id();
            // A caller-supplied id takes a position but no generated number.
            if (req.id) id_base_.store(id_base_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
            if (indexed_.load(std::memory_order_relaxed)) index_.insert(id, 0);
            r.id = id;
            r.position = static_cast<std::size_t>(t - h);
            slot& s = slot_at(t);
            s.construct(std::move(id), std::move(value), req.priority, now);
            s.seq.store(t + 1, std::memory_order_release);
            tail_.store(t + 1, std::memory_order_relaxed);
        }
        r.is_accepted = true;
        notify_one();
        return r;
    }

    // exclusive. A generated id can collide only with a caller-supplied one,
    // which exists only in indexed mode.
    Id next_generated_id() {
        const std::uint64_t t = tail_.load(std::memory_order_relaxed);
        for (;;) {
            Id id = id_traits<Id>::generate(t + id_base_.load(std::memory_order_relaxed));
            if (!indexed_.load(std::memory_order_relaxed) || index_.find(id) == id_index<Id>::npos) return id;
            // Taken by a caller-supplied id: skip it, for good.
            id_base_.store(id_base_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        }
    }

    // exclusive
    void enter_indexed_mode(std::uint64_t h, std::uint64_t t) {
        if (indexed_.load(std::memory_order_relaxed)) return;
        for (std::uint64_t p = h; p != t; ++p) index_.insert(slot_at(p).entry().id, 0);
        indexed_.store(true, std::memory_order_relaxed);
    }
    // exclusive. Once empty, the index is empty too: back to the fast path.
    void leave_indexed_mode_if_empty() {
        if (depth_quiescent() == 0) indexed_.store(false, std::memory_order_relaxed);
    }

    // The next task, by the fast path unless the queue is in indexed mode.
    std::optional<entry_type> pop_any() {
        {
            fast_section in(*this);
            if (!indexed_.load(std::memory_order_relaxed)) {
                std::uint64_t pos = head_.load(std::memory_order_relaxed);
                slot* s = nullptr;
                for (;;) {
                    if (cap_ == 0) return std::nullopt;
                    s = &slot_at(pos);
                    const std::uint64_t seq = s->seq.load(std::memory_order_acquire);
                    const auto dif = static_cast<std::int64_t>(seq - (pos + 1));
                    if (dif == 0) {
                        if (head_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
                    } else if (dif < 0) {
                        return std::nullopt;  // empty
                    } else {
                        pos = head_.load(std::memory_order_relaxed);
                    }
                }
                std::optional<entry_type> e(std::move(s->entry()));
                s->destroy();
                s->seq.store(pos + ring_, std::memory_order_release);
                in.leave();
                head_seen_.store(pos + 1, std::memory_order_relaxed);
                note_dequeue(*e, pos + 1);
                return e;
            }
        }
        return pop_exclusive();
    }

    std::optional<entry_type> pop_exclusive() {
        std::optional<entry_type> e;
        std::uint64_t dequeued = 0;
        {
            exclusive_section x(*this);
            const std::uint64_t h = head_.load(std::memory_order_relaxed);
            if (h == tail_.load(std::memory_order_relaxed)) return std::nullopt;
            slot& s = slot_at(h);
            e.emplace(std::move(s.entry()));
            s.destroy();
            s.seq.store(h + ring_, std::memory_order_release);
            head_.store(h + 1, std::memory_order_relaxed);
            head_seen_.store(h + 1, std::memory_order_relaxed);
            dequeued = h + 1;
            if (indexed_.load(std::memory_order_relaxed)) {
                index_.erase(e->id);
                leave_indexed_mode_if_empty();
            }
        }
        note_dequeue(*e, dequeued);
        return e;
    }

    // After the n-th dequeue (1-based): its wait time, and now and then a
    // sample of the dequeue rate (see the header comment).
    void note_dequeue(const entry_type& e, std::uint64_t n) {
        const bool due = n < rate_sample_every ? (n & (n - 1)) == 0 : n % rate_sample_every == 0;
        if (!due && !options_.wait_time_metrics) return;  // no clock read
        const auto now = StampClock::now();
        if (options_.wait_time_metrics) wait_time_.record(now - e.enqueued_at);
        if (!due) return;
        std::unique_lock<std::mutex> lk(rate_mutex_, std::try_to_lock);
        if (lk.owns_lock()) rate_.sample(now, n);
    }
    static constexpr std::uint64_t rate_sample_every = 64;

    // Whether the next slot holds a task (any mode: exclusive admissions
    // publish their slot the same way).
    bool looks_nonempty() const noexcept {
        if (cap_ == 0) return false;
        const std::uint64_t h = head_.load(std::memory_order_seq_cst);
        return slot_at(h).seq.load(std::memory_order_seq_cst) == h + 1;
    }

    // Producer side of the sleep/wake handshake (see the header comment).
    void notify_one() noexcept {
#if ORCHCORE_RING_UNDER_TSAN
        // ThreadSanitizer does not model fences: an RMW gives it the same
        // store-load ordering (slower, which only matters outside TSan).
        if (waiters_.fetch_add(0, std::memory_order_seq_cst) != 0) {
#else
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (waiters_.load(std::memory_order_relaxed) != 0) {
#endif
            epoch_.fetch_add(1, std::memory_order_release);
            futex_wake_one(epoch_);
        }
    }

    // Polling budget of a consumer before it sleeps, tuned on a 2-vCPU VM
    // (see bench/README.md): a few pauses (a task may be a microsecond
    // away), then a few yields, which leave the queue's lines with the
    // producer for a while so it runs a burst at full speed.
    static constexpr int poll_spin = 4;
    static constexpr int poll_yield = 8;

    std::optional<entry_type> wait_pop(std::optional<clock::time_point> deadline) {
        for (;;) {
            // Read closed_ before trying: a queue observed closed and then
            // empty stays empty (no admission succeeds after close).
            const bool closed = closed_.load(std::memory_order_acquire);
            if (auto e = pop_any()) return e;
            if (closed) throw queue_closed();
            if (deadline && clock::now() >= *deadline) return std::nullopt;
            bool ready = false;
            for (int i = 0; i < poll_spin + poll_yield && !ready; ++i) {
                if (i < poll_spin) cpu_relax(); else std::this_thread::yield();
                ready = looks_nonempty() || closed_.load(std::memory_order_relaxed);
            }
            if (ready) continue;
            const std::uint32_t ep = epoch_.load(std::memory_order_seq_cst);
            waiters_.fetch_add(1, std::memory_order_seq_cst);
            if (!looks_nonempty() && !closed_.load(std::memory_order_seq_cst))
                futex_wait(epoch_, ep, deadline ? &*deadline : nullptr);
            waiters_.fetch_sub(1, std::memory_order_seq_cst);
        }
    }

    std::vector<entry_type> wait_pop_batch(std::size_t max, std::optional<clock::time_point> deadline) {
        if (max == 0) throw invalid_argument("max", "0", "batch size must be at least 1");
        std::vector<entry_type> out;
        auto first = wait_pop(deadline);
        if (!first) return out;
        out.push_back(std::move(*first));
        while (out.size() < max) {
            auto e = pop_any();
            if (!e) break;
            out.push_back(std::move(*e));
        }
        return out;
    }

    // Each hot word has a cache line of its own. In particular the in-flight
    // counters are apart from head_/tail_: a producer reads head_ on every
    // admission (the position), and a counter sharing head_'s line would make
    // the consumer's own increment miss on it every time.
    alignas(64) std::atomic<std::uint64_t> tail_{0};
    alignas(64) std::atomic<std::uint64_t> head_{0};
    // head_ as last published by a consumer, for admission positions:
    // producers reading head_ itself on every admission took its line away
    // from the consumers before each of their CASes (measured on 1x1: 2.9
    // M/s with that read, 4.9 M/s without). Consumers store it after
    // leaving the fast section, so the store waits in the store buffer
    // instead of stalling them. It can lag head_ while pops run (two
    // consumers' stores may even land out of order): a position is then an
    // upper bound. Every exclusive operation resynchronises it.
    alignas(64) mutable std::atomic<std::uint64_t> head_seen_{0};
    // In-flight counters of fast operations, striped by thread so that a
    // thread's increment and decrement stay on a cache line of its own (one
    // counter per side bounced between the two producers of a 2x2 run).
    struct alignas(64) in_flight_stripe_t {
        std::atomic<std::uint32_t> count{0};
    };
    static constexpr std::size_t in_flight_stripes = 8;
    static std::size_t in_flight_stripe() noexcept { return thread_stripe<in_flight_stripes>(); }
    mutable std::array<in_flight_stripe_t, in_flight_stripes> in_flight_{};
    // Read-mostly: written only by exclusive operations.
    alignas(64) mutable std::atomic<bool> exclusive_{false};
    std::atomic<bool> indexed_{false};
    std::atomic<bool> closed_{false};
    // Generated ids: the id of a generated admission at position p is
    // p + id_base_ (modulo 2^64), the same sequence as admission_core's
    // counter (1, 2, ...; an id skipped because a caller took it is used up)
    // with no shared counter on the fast path. It stays equal to "numbers
    // used + 1 - tail_": a cancellation (the tail steps back) and a skipped
    // id raise it by one, an admission with a caller-supplied id (a
    // position without a number) lowers it by one. Exclusive writes only.
    std::atomic<std::uint64_t> id_base_{1};
    // Written only when a consumer goes to sleep or wakes up.
    alignas(64) std::atomic<std::uint32_t> waiters_{0};
    futex_word epoch_{0};

    alignas(64) queue_options options_;
    std::uint64_t cap_;   // the capacity asked for, and enforced
    std::uint64_t ring_;  // slots: cap_, or 2 when cap_ is 1
    std::unique_ptr<slot[]> slots_;
    mutable std::mutex exclusive_mutex_;
    id_index<Id> index_;        // indexed mode only; exclusive
    std::uint64_t cancelled_ = 0;  // exclusive
    std::array<std::atomic<std::uint64_t>, rejection_reason_count> rejected_{};
    mutable std::mutex rate_mutex_;
    sampled_rate rate_;
    striped_wait_histogram wait_time_;
};

}  // namespace orchcore::detail
