// admission_lane: one FIFO lane of admission_core's tasks (one priority
// level, or the whole queue for policies that ignore priorities).
//
// A power-of-two ring of slots addressed by logical positions [head, tail).
// A task removed from the middle (cancellation) leaves a hole that is
// skipped once the head or the tail reaches it, so while the lane is not
// empty its first and last slots hold tasks (the holes are counted, so
// without any a dequeue looks at no other slot). A full ring is rebuilt with
// its tasks only, at about 1.5 times their number (holes are dropped;
// amortised O(1) per admission). Every slot carries the queue's admission
// sequence number, ascending from head to tail: a task is found by binary
// search on it (O(log depth)) whatever the ring did since, and lanes are
// merged in admission order by it. A lane's bookkeeping fills one cache
// line. A slot is as small as the task allows: its value lives in raw
// storage, and its sequence number shares one word with the priority and
// the "holds a task" mark (for a 64-bit id and payload, 32 bytes: two
// slots a cache line, so the tasks a dequeue reads and an admission writes
// take fewer lines, to miss on or to move between cores). Not
// thread-safe: the owner locks.
#pragma once

#include <orchcore/admission_result.hpp>
#include <orchcore/priority.hpp>

#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace orchcore::detail {

template <class T, class Id>
class alignas(64) admission_lane {
public:
    using time_point = std::chrono::steady_clock::time_point;
    using entry_type = queue_entry<T, Id>;
    static constexpr std::uint64_t npos = ~std::uint64_t{0};

    /// A task's slot. `tag` is seq << tag_bits | (priority + 1) while the
    /// slot holds a task, and keeps the seq of a cancelled task (a hole)
    /// with the low bits 0, so the binary search sees the order unbroken.
    struct slot {
        Id id{};
        time_point enqueued_at{};
        std::uint64_t tag = 0;  // 0: unused
        union {
            T value;  // constructed iff holds()
        };

        slot() noexcept(std::is_nothrow_default_constructible_v<Id>) {}
        ~slot() {}
        slot(const slot&) = delete;
        slot& operator=(const slot&) = delete;

        bool holds() const noexcept { return (tag & tag_mask) != 0; }
        std::uint64_t seq() const noexcept { return tag >> tag_bits; }
        int priority() const noexcept { return static_cast<int>(tag & tag_mask) - 1; }
    };

    admission_lane() = default;
    admission_lane(const admission_lane&) = delete;
    admission_lane& operator=(const admission_lane&) = delete;
    ~admission_lane() {
        for (std::uint64_t p = head_; p != tail_; ++p) {
            slot& s = slots_[p & mask_];
            if (s.holds()) s.value.~T();
        }
    }

    std::size_t count() const noexcept { return count_; }
    bool empty() const noexcept { return count_ == 0; }
    /// No free slot: the next push_back rebuilds the ring.
    bool full() const noexcept { return tail_ - head_ == mask_ + 1; }
    std::size_t allocated() const noexcept { return mask_ + 1; }

    const slot& front() const noexcept { return at(head_); }
    const slot& back() const noexcept { return at(tail_ - 1); }
    std::uint64_t head() const noexcept { return head_; }
    std::uint64_t last() const noexcept { return tail_ - 1; }

    /// Appends a task; `seq` (below 2^58) must exceed that of every task in
    /// the lane. Precondition: !full() (see rebuild). If moving the value
    /// throws, the lane is unchanged. Returns the task's id, as stored.
    const Id& push_back(Id&& id, T&& value, int priority, time_point enqueued_at, std::uint64_t seq) {
        slot& s = slots_[tail_ & mask_];
        ::new (static_cast<void*>(std::addressof(s.value))) T(std::move(value));
        s.id = std::move(id);
        s.enqueued_at = enqueued_at;
        s.tag = tag_of(seq, priority);
        ++tail_;
        ++count_;
        return s.id;
    }

    /// Removes the task at logical position `pos` and returns it.
    entry_type take(std::uint64_t pos) {
        slot& s = slots_[pos & mask_];
        entry_type e{std::move(s.id), std::move(s.value), s.priority(), s.enqueued_at};
        s.value.~T();
        s.tag &= ~tag_mask;
        --count_;
        if (pos == head_) {
            ++head_;
            if (holes_ != 0) skip_holes_at_head();
        } else if (pos + 1 == tail_) {
            --tail_;
            if (holes_ != 0) skip_holes_at_tail();
        } else {
            ++holes_;
        }
        return e;
    }

    /// Logical position of the task admitted as `seq`, or npos.
    std::uint64_t find(std::uint64_t seq) const noexcept {
        std::uint64_t lo = head_, hi = tail_;
        while (lo < hi) {
            const std::uint64_t mid = lo + (hi - lo) / 2;
            if (at(mid).seq() < seq) lo = mid + 1; else hi = mid;
        }
        return lo != tail_ && at(lo).seq() == seq && at(lo).holds() ? lo : npos;
    }

    /// Tasks admitted before `seq` (O(their number)).
    std::size_t count_before(std::uint64_t seq) const noexcept {
        std::size_t n = 0;
        for (std::uint64_t p = head_; p != tail_ && at(p).seq() < seq; ++p) n += at(p).holds() ? 1 : 0;
        return n;
    }

    /// Calls f(slot) for every task, head to tail.
    template <class F>
    void for_each(F&& f) const {
        for (std::uint64_t p = head_; p != tail_; ++p)
            if (at(p).holds()) f(at(p));
    }

    /// Makes room for at least one more task: moves the tasks into a fresh
    /// ring of about 1.5 times their number (at least min_slots), dropping
    /// the holes. Strong guarantee (values are moved only if that cannot
    /// throw, else copied).
    void rebuild() {
        const std::size_t want = count_ + count_ / 2 + 1;
        const std::size_t size = std::bit_ceil(want < min_slots ? min_slots : want);
        auto fresh = std::make_unique<slot[]>(size);
        std::size_t n = 0;
        try {
            for (std::uint64_t p = head_; p != tail_; ++p) {
                slot& s = slots_[p & mask_];
                if (!s.holds()) continue;
                slot& d = fresh[n];
                ::new (static_cast<void*>(std::addressof(d.value))) T(std::move_if_noexcept(s.value));
                d.tag = s.tag;
                ++n;
                d.id = std::move_if_noexcept(s.id);
                d.enqueued_at = s.enqueued_at;
            }
        } catch (...) {
            for (std::size_t i = 0; i < n; ++i) fresh[i].value.~T();
            throw;
        }
        for (std::uint64_t p = head_; p != tail_; ++p) {
            slot& s = slots_[p & mask_];
            if (s.holds()) s.value.~T();
        }
        slots_ = std::move(fresh);
        mask_ = size - 1;
        head_ = 0;
        tail_ = n;
        holes_ = 0;
    }

    /// Gives the storage back. Precondition: empty().
    void release() noexcept {
        slots_.reset();
        mask_ = unallocated;
        head_ = tail_ = 0;
    }

private:
    static constexpr std::size_t min_slots = 16;
    static constexpr int tag_bits = 6;
    static constexpr std::uint64_t tag_mask = (std::uint64_t{1} << tag_bits) - 1;
    static_assert(priority::max + 1 <= static_cast<int>(tag_mask) && priority::min >= 0);

    static std::uint64_t tag_of(std::uint64_t seq, int priority) noexcept {
        return (seq << tag_bits) | static_cast<std::uint64_t>(priority + 1);
    }
    // mask_ without storage: allocated() is then 0 (and full() true).
    static constexpr std::size_t unallocated = ~std::size_t{0};

    const slot& at(std::uint64_t pos) const noexcept { return slots_[pos & mask_]; }

    void skip_holes_at_head() noexcept {
        for (; head_ != tail_ && !at(head_).holds(); ++head_) --holes_;
    }
    void skip_holes_at_tail() noexcept {
        for (; tail_ != head_ && !at(tail_ - 1).holds(); --tail_) --holes_;
    }

    std::uint64_t head_ = 0, tail_ = 0;
    std::size_t count_ = 0;
    std::size_t holes_ = 0;  // between head and tail
    std::size_t mask_ = unallocated;
    std::unique_ptr<slot[]> slots_;
};

}  // namespace orchcore::detail
