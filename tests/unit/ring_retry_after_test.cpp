// The lock-free ring measures the dequeue rate as tasks leave, so the first
// rejection after a busy period already reports the measured rate in
// retry_after (as the locked queue's admission_core does), not the default.
// Time is a clock moved by hand: no wall-clock timing.
#include <orchcore/admission_core.hpp>
#include <orchcore/detail/ring_admission_queue.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace oc = orchcore;
using namespace std::chrono_literals;

namespace {

struct manual_clock {
    using duration = std::chrono::steady_clock::duration;
    using rep = duration::rep;
    using period = duration::period;
    using time_point = std::chrono::steady_clock::time_point;
    static constexpr bool is_steady = true;
    static time_point now() noexcept { return time_point{duration{ticks.load()}}; }
    static void set(time_point t) noexcept { ticks.store(t.time_since_epoch().count()); }
    static inline std::atomic<rep> ticks{0};
};

using ring_t = oc::detail::ring_admission_queue<std::string, oc::policy::reject_new, oc::job_id, manual_clock>;
using core_t = oc::admission_core<std::string, oc::policy::reject_new>;

const auto t0 = std::chrono::steady_clock::time_point{} + 1h;

struct pair_of_queues {
    ring_t ring;
    core_t core;
    explicit pair_of_queues(oc::queue_options o) : ring(o), core(o) {}

    void push_both(std::chrono::steady_clock::time_point at) {
        manual_clock::set(at);
        REQUIRE(ring.try_push(std::string("x")));
        REQUIRE(core.admit(std::string("x"), {}, at).result);
    }
    void pop_both(std::chrono::steady_clock::time_point at) {
        manual_clock::set(at);
        REQUIRE(ring.try_pop());
        REQUIRE(core.pop(at));
    }
    // The first rejection, at `at`: both queues' retry_after.
    std::pair<std::chrono::milliseconds, std::chrono::milliseconds> reject_both(std::chrono::steady_clock::time_point at) {
        manual_clock::set(at);
        const auto r = ring.try_push(std::string("over"));
        const auto c = core.admit(std::string("over"), {}, at).result;
        REQUIRE(r.reason == oc::rejection_reason::queue_full);
        REQUIRE(c.reason == oc::rejection_reason::queue_full);
        return {r.retry_after, c.retry_after};
    }
};

// Close to each other: both estimate the same steady interval.
void check_close(std::chrono::milliseconds ring, std::chrono::milliseconds locked) {
    INFO("ring " << ring.count() << "ms, locked " << locked.count() << "ms");
    CHECK(ring.count() >= locked.count() * 9 / 10);
    CHECK(ring.count() <= locked.count() * 11 / 10 + 1);
}

}  // namespace

TEST_CASE("ring queue: the first rejection after a few dequeues reports the measured rate",
          "[queue][ring][retry]") {
    // Four dequeues 200 ms apart, then a full queue rejects at the last one's time.
    pair_of_queues q{{.capacity = 1}};
    for (int i = 0; i < 4; ++i) {
        q.push_both(t0 + i * 200ms);
        q.pop_both(t0 + i * 200ms);
    }
    q.push_both(t0 + 600ms);
    const auto [ring, locked] = q.reject_both(t0 + 600ms);
    CHECK(ring != 1000ms);  // not default_retry_after
    check_close(ring, locked);
    CHECK(locked >= 200ms);
    CHECK(locked <= 201ms);
}

TEST_CASE("ring queue: after a long busy period the first rejection reports its rate, and a silence counts",
          "[queue][ring][retry]") {
    pair_of_queues q{{.capacity = 8}};
    auto now = t0;
    for (int i = 0; i < 500; ++i) {  // 500 tasks through, one every 10 ms
        q.push_both(now);
        now += 10ms;
        q.pop_both(now);
    }
    for (int i = 0; i < 8; ++i) q.push_both(now);
    {
        const auto [ring, locked] = q.reject_both(now);
        check_close(ring, locked);
        CHECK(locked <= 11ms);
    }
    {
        // Nothing has left for 3 s since: both say so.
        const auto [ring, locked] = q.reject_both(now + 3s);
        check_close(ring, locked);
        CHECK(locked >= 3000ms);
    }
}
