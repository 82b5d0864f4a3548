// A small mutex for very short critical sections: spin briefly, then yield
// the CPU until the lock is free. It never sleeps on a futex (see
// lock_slow), so unlock never makes a system call; on a virtual machine a
// system call costs microseconds, longer than any critical section it
// guards. Word: bit 0 = locked. Meets the Lockable requirements.
#pragma once

#include <orchcore/detail/futex.hpp>
#include <orchcore/detail/spin.hpp>

#include <atomic>
#include <cstdint>
#include <thread>

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
        word_.store(0, std::memory_order_release);
    }

private:
    static constexpr std::uint32_t locked = 1;
    // ~40 x pause: a few microseconds at most, longer than any critical
    // section guarded by this lock unless its holder was preempted.
    static constexpr int spin_limit = 40;

    // Spin, then yield; never sleep on the futex. Profiling the queue's 1x1
    // path showed the sleep/wake protocol costing a system call per item
    // (producer and consumer take this lock once per task each); yielding
    // lets a preempted holder run and makes no wake-up necessary.
    void lock_slow() noexcept {
        for (int i = 0;; ++i) {
            if (i < spin_limit) cpu_relax(); else std::this_thread::yield();
            if (try_lock()) return;
        }
    }

    futex_word word_{0};
};

}  // namespace orchcore::detail
