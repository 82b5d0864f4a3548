// detail::adaptive_mutex: mutual exclusion whether waiters spin or sleep,
// and a waiter that had to sleep is woken by the unlock.
#include <orchcore/detail/adaptive_mutex.hpp>
#include <orchcore/detail/spin.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

using orchcore::detail::adaptive_mutex;

TEST_CASE("adaptive_mutex: every increment under contention is kept", "[adaptive_mutex]") {
    adaptive_mutex mu;
    std::uint64_t counter = 0;  // plain: only the lock orders it
    constexpr int threads = 4, rounds = 20'000;
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&] {
            for (int i = 0; i < rounds; ++i) {
                std::lock_guard lk(mu);
                ++counter;
                // Now and then hold the lock across a yield, so that waiters
                // run out of spins and yields and sleep.
                if (i % 512 == 0) std::this_thread::yield();
            }
        });
    for (auto& t : ts) t.join();
    CHECK(counter == std::uint64_t{threads} * rounds);
}

TEST_CASE("adaptive_mutex: a waiter that sleeps is woken by unlock", "[adaptive_mutex]") {
    adaptive_mutex mu;
    mu.lock();
    std::atomic<bool> waiting{false}, acquired{false};
    std::thread waiter([&] {
        waiting.store(true);
        mu.lock();  // outlasts its spins and yields: sleeps on the futex
        acquired.store(true);
        mu.unlock();
    });
    while (!waiting.load()) std::this_thread::yield();
    // Long enough for the waiter to get past its bounded spin on any machine
    // that schedules it; correctness does not depend on it.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK_FALSE(acquired.load());
    CHECK_FALSE(mu.try_lock());
    mu.unlock();
    waiter.join();
    CHECK(acquired.load());
    CHECK(mu.try_lock());
    mu.unlock();
}

TEST_CASE("bounded_backoff: pauses a bounded number of times, then says block", "[adaptive_mutex]") {
    orchcore::detail::bounded_backoff<3, 2> b;
    int pauses = 0;
    while (b.pause()) ++pauses;
    CHECK(pauses == 5);
    CHECK_FALSE(b.pause());
}
