// A small mutex for very short critical sections: spin briefly, yield a
// few times, then sleep on a futex. A holder preempted mid-section (likely
// on 2 cores) costs its waiters one sleep and one wake-up, not a storm of
// sched_yield calls. Unlock makes a system call only when a thread sleeps.
// Word: bit 0 = locked, bit 1 = a thread may sleep on the word. Meets the
// Lockable requirements.
#pragma once

#include <orchcore/detail/futex.hpp>
#include <orchcore/detail/spin.hpp>

#include <atomic>
#include <cstdint>

namespace orchcore::detail {

class adaptive_mutex {
public:
    adaptive_mutex() = default;
    adaptive_mutex(const adaptive_mutex&) = delete;
    adaptive_mutex& operator=(const adaptive_mutex&) = delete;

    bool try_lock() noexcept {
        std::uint32_t s = word_.load(std::memory_order_relaxed);
        return (s & locked) == 0 && word_.compare_exchange_strong(s, s | locked, std::memory_order_acquire,
                                                                  std::memory_order_relaxed);
    }

    void lock() noexcept {
        if (try_lock()) return;
        lock_slow();
    }

    void unlock() noexcept {
        if (word_.exchange(0, std::memory_order_release) & sleepers) futex_wake_one(word_);
    }

private:
    static constexpr std::uint32_t locked = 1;
    static constexpr std::uint32_t sleepers = 2;
    // ~40 x pause: a few microseconds at most, longer than any critical
    // section guarded by this lock unless its holder was preempted; then a
    // few yields, which let a preempted holder on this core finish.
    using backoff = bounded_backoff<40, 4>;

    void lock_slow() noexcept {
        for (backoff b; b.pause();) {
            if (try_lock()) return;
        }
        // Sleep. A thread that takes the lock this way keeps `sleepers`
        // set, as others may still sleep: its unlock wakes one of them.
        while (word_.exchange(locked | sleepers, std::memory_order_acquire) & locked)
            futex_wait(word_, locked | sleepers);
    }

    futex_word word_{0};
};

}  // namespace orchcore::detail
