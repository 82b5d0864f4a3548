// admission_core: the admission queue's decisions and bookkeeping as a pure,
// single-threaded state machine. No locks, no threads: the caller passes
// the time of each operation (detail::op_time: a time point, or the clock,
// read only when the operation needs it). admission_queue (admission_queue.hpp) is the thin
// thread-safe shell around it; tests drive this class directly and
// deterministically.
//
// Layout: tasks live in FIFO lanes (detail/admission_lane.hpp), ring
// buffers that grow on demand and keep their storage, so a steady queue does
// not allocate. Policies that look at priorities keep one lane per priority
// level and a bitmap of the non-empty ones; the others keep one lane. Every
// task carries its admission sequence number: the FIFO policy with lanes
// (drop-lru) dequeues the lowest one among the lanes' heads. An id index
// maps ids to (sequence number, lane); it is built lazily (see
// ensure_indexed): while every queued id was generated, none is needed.
// Admission, dequeue and eviction are O(1) (amortised; plus a look at each
// non-empty lane for drop-lru), cancellation O(log depth), position_of
// O(depth), and the first lookup by id after an unindexed period indexes
// the queue (O(depth), once per task).
#pragma once

#include <orchcore/admission_policy.hpp>
#include <orchcore/admission_result.hpp>
#include <orchcore/detail/admission_lane.hpp>
#include <orchcore/detail/id_index.hpp>
#include <orchcore/detail/op_time.hpp>
#include <orchcore/detail/saturating.hpp>
#include <orchcore/detail/sampled_rate.hpp>
#include <orchcore/error.hpp>
#include <orchcore/metrics.hpp>
#include <orchcore/priority.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace orchcore {

namespace detail {
inline void validate_queue_options(const queue_options& o) {
    if (o.capacity > max_queue_capacity)
        throw invalid_argument("capacity", std::to_string(o.capacity),
                               "must be at most " + std::to_string(max_queue_capacity));
    if (o.min_retry_after.count() < 0)
        throw invalid_argument("min_retry_after", std::to_string(o.min_retry_after.count()) + "ms", "must be >= 0");
    if (o.max_retry_after < o.min_retry_after)
        throw invalid_argument("max_retry_after", std::to_string(o.max_retry_after.count()) + "ms",
                               "must be >= min_retry_after (" + std::to_string(o.min_retry_after.count()) + "ms)");
    if (o.default_retry_after < o.min_retry_after || o.default_retry_after > o.max_retry_after)
        throw invalid_argument("default_retry_after", std::to_string(o.default_retry_after.count()) + "ms",
                               "must lie within [min_retry_after, max_retry_after]");
}
}  // namespace detail

template <class T, admission_policy Policy = policy::reject_new, class Id = job_id>
class admission_core {
public:
    using value_type = T;
    using id_type = Id;
    using policy_type = Policy;
    using entry_type = queue_entry<T, Id>;
    using result_type = admission_result<T, Id>;
    using request_type = admission_request<Id>;
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;

    /// Result of admit(): the admission result, plus, for handoff-only
    /// policies, the accepted task to give to the waiting consumer.
    struct admit_outcome {
        result_type result;
        std::optional<entry_type> handoff;
    };

    explicit admission_core(queue_options options = {})
        : capacity_(options.capacity), stamps_(options.wait_time_metrics), options_(options) {
        detail::validate_queue_options(options_);
    }

    /// Decides on one admission and applies it. `consumer_waiting` tells a
    /// handoff-only policy (fail-fast) that a consumer is blocked and would
    /// take the task now. On rejection `value` is left untouched and the
    /// queue is unchanged except for the rejection counter.
    /// Without wait-time metrics an admission needs the time only to answer
    /// a rejection with retry-after.
    admit_outcome admit(T&& value, const request_type& req, detail::op_time now, bool consumer_waiting = false) {
        admit_outcome out;
        out.handoff = admit_into(out.result, std::move(value), req, now, consumer_waiting);
        return out;
    }

    /// admit() writing its result into `r` (default-constructed), so that a
    /// caller returning it moves nothing. Returns the task to hand off.
    std::optional<entry_type> admit_into(result_type& r, T&& value, const request_type& req, detail::op_time now,
                                         bool consumer_waiting = false) {
        // g++ 12 at -O3 reports a false -Wmaybe-uninitialized here when
        // `req` is a defaulted temporary: it reads the payload of the empty
        // optional only on the path where it is engaged.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
        r.id = req.id;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

        if (closed_) return reject(r, rejection_reason::closed, "queue is closed", now);
        if (!priority::is_valid(req.priority))
            return reject(r, rejection_reason::invalid_request, "priority out of range [0, 20]", now);
        if (req.id && find_index(*req.id) != npos)
            return reject(r, rejection_reason::invalid_request, "duplicate id: a task with this id is queued", now);

        if constexpr (Policy::handoff_only) {
            if (!consumer_waiting)
                return reject(r, rejection_reason::policy_violation, "fail-fast: no consumer is waiting", now);
            Id id = req.id ? *req.id : next_generated_id();
            ++accepted_;
            ++handed_off_;
            r.is_accepted = true;
            r.id = id;
            r.position = 0;
            std::optional<entry_type> handoff{entry_type{std::move(id), std::move(value), req.priority, stamp(now)}};
            note_dequeue(*handoff, now);
            return handoff;
        } else {
            if (size_ >= capacity_ && !make_room(r, req.priority, now)) return std::nullopt;
            const bool generated = !req.id;
            Id id = generated ? next_generated_id() : *req.id;
            r.position = position_for_new(req.priority);
            r.id = insert(std::move(id), generated, std::move(value), req.priority, now);
            r.is_accepted = true;
            ++accepted_;
            return std::nullopt;
        }
    }

    /// Removes and returns the next task in dequeue order.
    std::optional<entry_type> pop(detail::op_time now) {
        if (size_ == 0) return std::nullopt;
        const std::size_t l = next_lane();
        entry_type e = take(l, lanes_[l].head());
        note_dequeue(e, now);
        return e;
    }

    /// Removes up to `max` tasks in dequeue order, appending them to `out`.
    template <class OutputIt>
    std::size_t pop_batch(OutputIt out, std::size_t max, detail::op_time now) {
        std::size_t n = 0;
        for (; n < max && size_ > 0; ++n) {
            const std::size_t l = next_lane();
            entry_type e = take(l, lanes_[l].head());
            note_dequeue(e, now);
            *out++ = std::move(e);
        }
        return n;
    }

    /// Removes a queued task by id (cancellation). Returns it, or nullopt if
    /// no task with that id is queued (so cancelling twice is a no-op).
    std::optional<entry_type> cancel(const Id& id) {
        const std::uint64_t k = find_index(id);
        if (k == npos) return std::nullopt;
        ++cancelled_;
        const std::size_t l = lane_in(k);
        return take(l, lanes_[l].find(seq_in(k)));
    }

    bool contains(const Id& id) const { return find_index(id) != npos; }

    /// 0-based position of a queued task in dequeue order, or nullopt.
    std::optional<std::size_t> position_of(const Id& id) const {
        const std::uint64_t k = find_index(id);
        if (k == npos) return std::nullopt;
        const std::size_t l = lane_in(k);
        std::size_t pos = lanes_[l].count_before(seq_in(k));
        for (std::size_t q = 0; q < lane_count; ++q) {
            if (q == l) continue;
            if constexpr (Policy::order == policy::dequeue_order::fifo) pos += lanes_[q].count_before(seq_in(k));
            else if (q > l) pos += lanes_[q].count();
        }
        return pos;
    }

    /// Ids of queued tasks in the order they would be dequeued.
    std::vector<Id> ids_in_dequeue_order() const {
        std::vector<Id> ids;
        ids.reserve(size_);
        if constexpr (Policy::order == policy::dequeue_order::by_priority) {
            for (std::size_t q = lane_count; q-- > 0;) lanes_[q].for_each([&](const slot& s) { ids.push_back(s.id); });
        } else {
            // Admission order across the lanes.
            std::vector<const slot*> all;
            all.reserve(size_);
            for (const auto& lane : lanes_) lane.for_each([&](const slot& s) { all.push_back(&s); });
            if (lane_count > 1)
                std::sort(all.begin(), all.end(), [](const slot* a, const slot* b) { return a->seq() < b->seq(); });
            for (const slot* s : all) ids.push_back(s->id);
        }
        return ids;
    }

    /// Stops admissions (they are rejected with reason `closed`); queued
    /// tasks stay and can still be dequeued or cancelled.
    void close() noexcept { closed_ = true; }
    bool is_closed() const noexcept { return closed_; }

    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    std::size_t capacity() const noexcept { return capacity_; }
    const queue_options& options() const noexcept { return options_; }
    /// Whether every admission and dequeue is stamped (wait-time metrics).
    bool stamps() const noexcept { return stamps_; }

    queue_metrics metrics(time_point now) const {
        queue_metrics m;
        m.policy = Policy::name;
        m.depth = size_;
        m.capacity = options_.capacity;
        m.accepted = accepted_;
        m.dequeued = dequeued_;
        m.handed_off = handed_off_;
        m.evicted = evicted_;
        m.cancelled = cancelled_;
        m.rejected_by_reason = rejected_;
        const double interval = interval_seconds(now);
        m.dequeue_rate_per_second = interval > 0.0 ? 1.0 / interval : 0.0;
        m.wait_time = wait_time_;
        return m;
    }

    /// Retry-after hint at `now`: the measured mean time between dequeues
    /// (one slot frees up per dequeue), clamped to the configured bounds.
    std::chrono::milliseconds retry_after_hint(time_point now) const {
        const bool measured = stamps() ? dequeue_rate_.has_estimate() : sampled_rate_.has_estimate();
        if (!measured) return options_.default_retry_after;
        const auto ms = detail::saturating_millis(std::ceil(interval_seconds(now) * 1000.0));
        return std::clamp(ms, options_.min_retry_after, options_.max_retry_after);
    }

private:
    // Per-priority lanes are needed to order by priority or to pick a
    // victim by priority; reject-new and fail-fast keep one lane.
    static constexpr bool tracks_levels =
        Policy::order == policy::dequeue_order::by_priority || Policy::on_full != policy::when_full::reject;
    static constexpr std::size_t lane_count = tracks_levels ? static_cast<std::size_t>(priority::levels) : 1;
    using lane_type = detail::admission_lane<T, Id>;
    using slot = typename lane_type::slot;

    // The index maps an id to a key: (admission sequence number, lane).
    using index_type = detail::id_index<Id, std::hash<Id>, std::uint64_t>;
    static constexpr std::uint64_t npos = index_type::npos;
    static constexpr int lane_bits = 5;
    static_assert(lane_count <= (std::size_t{1} << lane_bits));
    static std::uint64_t key_of(std::uint64_t seq, std::size_t lane) noexcept { return (seq << lane_bits) | lane; }
    static std::size_t lane_in(std::uint64_t key) noexcept { return key & ((1u << lane_bits) - 1); }
    static std::uint64_t seq_in(std::uint64_t key) noexcept { return key >> lane_bits; }
    static std::size_t lane_of(int p) noexcept { return tracks_levels ? static_cast<std::size_t>(p) : 0; }

    std::nullopt_t reject(result_type& r, rejection_reason why, std::string_view detail, detail::op_time& now) {
        ++rejected_[static_cast<std::size_t>(why)];
        r.is_accepted = false;
        r.reason = why;
        r.detail = detail;
        const bool retry_helps = why == rejection_reason::queue_full || why == rejection_reason::policy_violation;
        if (retry_helps) {
            const time_point t = now.get();
            // Unstamped dequeues since the last sample count from here on.
            if (!stamps()) sampled_rate_.sample(t, dequeued_);
            r.retry_after = retry_after_hint(t);
        }
        return std::nullopt;
    }

    // A full queue: evicts a task as the policy says (into r.evicted), or
    // rejects the admission. Returns whether there is room now.
    bool make_room(result_type& r, int p, detail::op_time& now) {
        if constexpr (Policy::on_full == policy::when_full::reject) {
            reject(r, rejection_reason::queue_full, "queue is full", now);
            return false;
        } else {
            if (size_ == 0) {
                reject(r, rejection_reason::queue_full, "queue capacity is 0", now);
                return false;
            }
            const int lowest = std::countr_zero(nonempty_levels_);
            const lane_type& lane = lanes_[static_cast<std::size_t>(lowest)];
            std::uint64_t victim = 0;
            if constexpr (Policy::on_full == policy::when_full::evict_oldest_of_lowest) {
                victim = lane.head();
            } else {
                if (p <= lowest) {
                    reject(r, rejection_reason::queue_full, "queue is full and no queued task has a lower priority", now);
                    return false;
                }
                victim = lane.last();
            }
            r.evicted.emplace(take(static_cast<std::size_t>(lowest), victim));
            ++evicted_;
            return true;
        }
    }

    time_point stamp(detail::op_time& now) const noexcept { return stamps() ? now.get() : time_point{}; }

    double interval_seconds(time_point now) const noexcept {
        return stamps() ? dequeue_rate_.interval_seconds(now) : sampled_rate_.interval_seconds(now, dequeued_);
    }

    Id next_generated_id() {
        for (;;) {
            Id id = id_traits<Id>::generate(++id_seq_);
            // Unindexed mode: every queued id was generated, and generated
            // ids never repeat, so there is nothing to collide with.
            if (!indexed_ || index_.find(id) == npos) return id;
        }
    }

    // The id index is kept lazily. While every queued task has a generated
    // id (the common high-throughput case) no index is needed: generated ids
    // are unique by construction. The first operation that looks an id up
    // (an admission with a caller-supplied id, cancel, contains,
    // position_of) indexes the queued tasks once, O(depth), and from then on
    // every admission is indexed, until the queue is next empty. So each
    // task is indexed at most once, as with an always-on index, and a queue
    // whose ids are all generated never pays for hashing.
    //
    // Only for id types whose generated ids cannot repeat: 64-bit integers
    // and the built-in string ids. Others are always indexed.
    static constexpr bool lazy_index =
        (std::is_integral_v<Id> && sizeof(Id) >= sizeof(std::uint64_t)) || std::is_same_v<Id, std::string>;

    std::uint64_t find_index(const Id& id) const {
        ensure_indexed();
        return index_.find(id);
    }

    void ensure_indexed() const {
        if (indexed_) return;
        for (std::size_t l = 0; l < lane_count; ++l)
            lanes_[l].for_each([&](const slot& s) { index_.insert(s.id, key_of(s.seq(), l)); });
        indexed_ = true;
    }

    std::size_t position_for_new(int p) const noexcept {
        if constexpr (Policy::order == policy::dequeue_order::fifo) {
            return size_;
        } else {
            std::size_t ahead = 0;
            for (std::uint32_t bits = nonempty_levels_ & ~((1u << p) - 1); bits != 0; bits &= bits - 1)
                ahead += lanes_[static_cast<std::size_t>(std::countr_zero(bits))].count();
            return ahead;
        }
    }

    // The lane holding the next task in dequeue order. Precondition: size_ > 0.
    std::size_t next_lane() const noexcept {
        if constexpr (!tracks_levels) {
            return 0;
        } else if constexpr (Policy::order == policy::dequeue_order::by_priority) {
            return static_cast<std::size_t>(31 - std::countl_zero(nonempty_levels_));
        } else {
            const std::uint32_t bits = nonempty_levels_;
            if ((bits & (bits - 1)) == 0) return static_cast<std::size_t>(std::countr_zero(bits));
            return oldest_head(bits);
        }
    }

    // FIFO across several non-empty lanes: the one whose head was admitted
    // first. Out of line: the dequeue path stays small enough to inline.
    [[gnu::noinline]] std::size_t oldest_head(std::uint32_t bits) const noexcept {
        auto best = static_cast<std::size_t>(std::countr_zero(bits));
        for (bits &= bits - 1; bits != 0; bits &= bits - 1) {
            const auto q = static_cast<std::size_t>(std::countr_zero(bits));
            if (lanes_[q].front().seq() < lanes_[best].front().seq()) best = q;
        }
        return best;
    }

    // Queues a task; returns its id.
    Id insert(Id&& id, bool generated, T&& value, int p, detail::op_time& now) {
        // A caller-supplied id may equal a future generated one: index it
        // (an eviction just before may have emptied and unindexed the queue).
        if (!generated) ensure_indexed();
        const std::size_t l = lane_of(p);
        lane_type& lane = lanes_[l];
        if (lane.full()) grow(lane);
        const std::uint64_t seq = accepted_ + 1;
        const Id& stored = lane.push_back(std::move(id), std::move(value), p, stamp(now), seq);
        if (indexed_) index_.insert(stored, key_of(seq, l));
        if constexpr (tracks_levels) nonempty_levels_ |= (1u << p);
        ++size_;
        return stored;
    }

    // Rebuilds a full lane. Lanes keep their storage; once they hold more
    // than slot_budget slots together, the empty ones give theirs back.
    void grow(lane_type& lane) {
        const std::size_t before = lane.allocated();
        lane.rebuild();
        allocated_ = allocated_ - before + lane.allocated();
        const std::size_t slot_budget = 4 * options_.capacity + 16 * lane_count;
        if (allocated_ <= slot_budget) return;
        for (lane_type& other : lanes_) {
            if (&other == &lane || !other.empty()) continue;
            allocated_ -= other.allocated();
            other.release();
        }
    }

    // Removes the task at position `pos` of lane l and returns it.
    entry_type take(std::size_t l, std::uint64_t pos) {
        lane_type& lane = lanes_[l];
        entry_type e = lane.take(pos);
        if (indexed_) index_.erase(e.id);
        if constexpr (tracks_levels) {
            if (lane.empty()) nonempty_levels_ &= ~(1u << l);
        }
        if (--size_ == 0 && lazy_index) indexed_ = false;  // the index is empty now
        return e;
    }

    void note_dequeue(const entry_type& e, detail::op_time& now) {
        ++dequeued_;
        if (stamps()) {
            const time_point t = now.get();
            wait_time_.record(t - e.enqueued_at);
            dequeue_rate_.record(t);
        } else if (detail::sampled_dequeue_rate::due(dequeued_)) {
            sampled_rate_.sample(now.get(), dequeued_);
        }
    }

    // Layout: what every admission, dequeue and eviction touches fills the
    // first cache line (the capacity and the wait-time switch are copied
    // there from the options), so the hot state of the queue spans as few
    // lines as possible (under contention each line the lock holder touches
    // may have to travel from the other core).
    std::size_t size_ = 0;
    std::uint64_t id_seq_ = 0;
    std::uint64_t accepted_ = 0, dequeued_ = 0, evicted_ = 0;
    std::size_t capacity_;
    std::uint32_t nonempty_levels_ = 0;
    bool closed_ = false;
    mutable bool indexed_ = !lazy_index;
    // Whether every admission and dequeue is stamped (wait times and an
    // exact dequeue rate); otherwise only sampled dequeues read the time.
    bool stamps_;
    queue_options options_;
    std::array<lane_type, lane_count> lanes_{};
    std::size_t allocated_ = 0;  // slots of all lanes

    mutable index_type index_;
    std::uint64_t handed_off_ = 0, cancelled_ = 0;
    std::array<std::uint64_t, rejection_reason_count> rejected_{};
    detail::sampled_dequeue_rate sampled_rate_;
    // What a stamped dequeue records, from a line boundary: the rate, then
    // the histogram's totals and first buckets share one line.
    alignas(64) rate_estimator dequeue_rate_;
    latency_histogram wait_time_;
};

}  // namespace orchcore
