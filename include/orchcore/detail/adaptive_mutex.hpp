// A small mutex for very short critical sections: spin briefly (reading, not
// hammering the line with CAS), then sleep on a futex. Unlike glibc's
// std::mutex it counts its sleepers, so unlock makes a wake-up system call
// only when a thread really sleeps (glibc's mutex, once contended, leaves a
// "maybe waiters" state that costs a futex_wake on the next unlock even when
// nobody waits; on a virtual machine a system call costs microseconds).
//
// Word layout: bit 0 = locked, bits 1.. = number of sleeping (or about to
// sleep) threads. Meets the Lockable requirements (std::unique_lock works).
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
        const std::uint32_t prev = word_.fetch_sub(locked, std::memory_order_release);
        if (prev != locked) futex_wake_one(word_);  // someone sleeps (or is about to)
    }

private:
    static constexpr std::uint32_t locked = 1;
    static constexpr std::uint32_t sleeper = 2;
    // ~40 x pause: a few microseconds at most, longer than any critical
    // section guarded by this lock unless its holder was preempted.
    static constexpr int spin_limit = 40;

    void lock_slow() noexcept {
        for (int i = 0; i < spin_limit; ++i) {
            cpu_relax();
            if (try_lock()) return;
        }
        word_.fetch_add(sleeper, std::memory_order_relaxed);
        for (;;) {
            std::uint32_t s = word_.load(std::memory_order_relaxed);
            if ((s & locked) == 0) {
                // Take the lock and deregister as a sleeper in one step.
                if (word_.compare_exchange_weak(s, (s | locked) - sleeper, std::memory_order_acquire,
                                                std::memory_order_relaxed))
                    return;
                continue;
            }
            futex_wait(word_, s);
        }
    }

    futex_word word_{0};
};

}  // namespace orchcore::detail
