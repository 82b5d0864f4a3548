// The clock that stamps queue admissions and dequeues (detail/stamp_clock.hpp)
// reads steady_clock time: a stamp lies between steady_clock reads taken
// around it, give or take the mapping's error, also across its refits. The
// tolerance is the line's error, not a duration of anything.
#include <orchcore/admission_queue.hpp>
#include <orchcore/detail/stamp_clock.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <thread>

namespace oc = orchcore;
using namespace std::chrono_literals;

namespace {

using steady = std::chrono::steady_clock;
constexpr auto tolerance = 2ms;

bool within(steady::time_point before, steady::time_point t, steady::time_point after) {
    return t >= before - tolerance && t <= after + tolerance;
}

}  // namespace

TEST_CASE("stamp_clock reads steady_clock time, also across its refits", "[queue][metrics][clock]") {
    using oc::detail::stamp_clock;
    for (int round = 0; round < 4; ++round) {
        for (int i = 0; i < 1000; ++i) {
            const auto before = steady::now();
            const auto t = stamp_clock::now();
            const auto after = steady::now();
            REQUIRE(within(before, t, after));
        }
        // Let more than one refit interval pass.
        std::this_thread::sleep_for(15ms);
    }
}

TEST_CASE("a queue's enqueued_at is the steady_clock time of the admission", "[queue][metrics][clock]") {
    oc::admission_queue<std::string> ring;
    oc::admission_queue<std::string, oc::policy::drop_lru> locked;
    REQUIRE(ring.uses_ring());
    for (int i = 0; i < 3; ++i) {
        const auto before = steady::now();
        REQUIRE(ring.try_push("a"));
        REQUIRE(locked.try_push("b"));
        const auto after = steady::now();
        auto a = ring.try_pop();
        auto b = locked.try_pop();
        REQUIRE(a);
        REQUIRE(b);
        CHECK(within(before, a->enqueued_at, after));
        CHECK(within(before, b->enqueued_at, after));
        std::this_thread::sleep_for(15ms);
    }
    CHECK(ring.metrics().wait_time.count() == 3u);
    CHECK(locked.metrics().wait_time.count() == 3u);
}
