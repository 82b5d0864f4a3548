// A steady clock moved by hand that counts its reads, for the queues'
// clock template parameter: tests check how often a queue looks at the time.
#pragma once

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <string>

namespace orchcore::test {

struct counting_clock {
    using duration = std::chrono::steady_clock::duration;
    using rep = duration::rep;
    using period = duration::period;
    using time_point = std::chrono::steady_clock::time_point;
    static constexpr bool is_steady = true;
    static time_point now() noexcept {
        reads.fetch_add(1);
        return time_point{duration{ticks.load()}};
    }
    static void set(time_point t) noexcept { ticks.store(t.time_since_epoch().count()); }
    static inline std::atomic<rep> ticks{0};
    static inline std::atomic<long> reads{0};
};

// The clock reads of n push+pop round trips on a fresh queue of capacity 16.
template <class Queue>
long push_pop_reads(bool wait_time_metrics, int n) {
    Queue q{{.capacity = 16, .wait_time_metrics = wait_time_metrics}};
    counting_clock::set(std::chrono::steady_clock::time_point{} + std::chrono::hours(1));
    counting_clock::reads = 0;
    for (int i = 0; i < n; ++i) {
        REQUIRE(q.try_push(std::string("x")));
        REQUIRE(q.try_pop());
    }
    return counting_clock::reads.load();
}

}  // namespace orchcore::test
