// Parking a thread on a 32-bit word: the futex system call on Linux, C++20
// atomic wait/notify elsewhere (whose timed form degrades to polling with
// short sleeps, as the standard has no timed atomic wait).
//
//   futex_wait(word, expected, deadline)  sleeps while word == expected, until
//       woken, the deadline (steady_clock) passes, or spuriously; returns
//       false only when the deadline has passed.
//   futex_wake_one(word) / futex_wake_all(word)
//
// futex_wake_tolerates_dead_word: on Linux, waking a word whose owner has
// meanwhile returned (so the memory may be reused) is harmless: the kernel
// only hashes the address and never touches the memory, and the worst case
// is a spurious wake-up of some later waiter at that address, which every
// futex user tolerates. Elsewhere (C++ atomic notify) it would be undefined,
// so callers keep the word alive until the wake is done (see
// admission_queue's waiter protocol).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <cerrno>
#endif

namespace orchcore::detail {

using futex_word = std::atomic<std::uint32_t>;
static_assert(sizeof(futex_word) == sizeof(std::uint32_t) && futex_word::is_always_lock_free);

#if defined(__linux__)

inline constexpr bool futex_wake_tolerates_dead_word = true;

inline std::uint32_t* futex_addr(futex_word& w) noexcept {
    // std::atomic<uint32_t> is a standard-layout wrapper around the value
    // (what libstdc++'s own atomic wait relies on as well).
    return reinterpret_cast<std::uint32_t*>(&w);
}

inline bool futex_wait(futex_word& w, std::uint32_t expected,
                       const std::chrono::steady_clock::time_point* deadline = nullptr) noexcept {
    // steady_clock is CLOCK_MONOTONIC on Linux; FUTEX_WAIT_BITSET takes an
    // absolute CLOCK_MONOTONIC deadline, so no relative-time arithmetic.
    timespec ts{};
    timespec* tsp = nullptr;
    if (deadline) {
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline->time_since_epoch()).count();
        if (ns <= 0) return false;
        ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
        ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
        tsp = &ts;
    }
    const long rc = ::syscall(SYS_futex, futex_addr(w), FUTEX_WAIT_BITSET_PRIVATE, expected, tsp, nullptr,
                              FUTEX_BITSET_MATCH_ANY);
    return !(rc == -1 && errno == ETIMEDOUT);
}

inline void futex_wake_one(futex_word& w) noexcept {
    ::syscall(SYS_futex, futex_addr(w), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

inline void futex_wake_all(futex_word& w) noexcept {
    ::syscall(SYS_futex, futex_addr(w), FUTEX_WAKE_PRIVATE, 0x7fffffff, nullptr, nullptr, 0);
}

#else

inline constexpr bool futex_wake_tolerates_dead_word = false;

inline bool futex_wait(futex_word& w, std::uint32_t expected,
                       const std::chrono::steady_clock::time_point* deadline = nullptr) noexcept {
    if (!deadline) {
        w.wait(expected, std::memory_order_relaxed);
        return true;
    }
    while (w.load(std::memory_order_relaxed) == expected) {
        if (std::chrono::steady_clock::now() >= *deadline) return false;
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    return true;
}

inline void futex_wake_one(futex_word& w) noexcept { w.notify_one(); }
inline void futex_wake_all(futex_word& w) noexcept { w.notify_all(); }

#endif

}  // namespace orchcore::detail
