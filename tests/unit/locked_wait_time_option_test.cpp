// queue_options::wait_time_metrics on the locked queue (drop-lru, priority,
// fail-fast, large capacities): off, admissions and dequeues read no clock,
// and retry-after is still measured, from sampled dequeues and at the
// rejection itself. Time is a clock moved by hand that counts its reads.
#include <orchcore/admission_queue.hpp>
#include <orchcore/detail/locked_admission_queue.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <string>

namespace oc = orchcore;
using namespace std::chrono_literals;

namespace {

struct counting_clock {
    using duration = std::chrono::steady_clock::duration;
    using rep = duration::rep;
    using period = duration::period;
    using time_point = std::chrono::steady_clock::time_point;
    static time_point now() noexcept {
        reads.fetch_add(1);
        return time_point{duration{ticks.load()}};
    }
    static void set(time_point t) noexcept { ticks.store(t.time_since_epoch().count()); }
    static inline std::atomic<rep> ticks{0};
    static inline std::atomic<long> reads{0};
};

template <class Policy>
using locked_t = oc::detail::locked_admission_queue<std::string, Policy, oc::job_id, counting_clock>;
const auto t0 = std::chrono::steady_clock::time_point{} + 1h;

template <class Policy>
long push_pop_reads(bool metrics, int n) {
    locked_t<Policy> q{{.capacity = 16, .wait_time_metrics = metrics}};
    counting_clock::set(t0);
    counting_clock::reads = 0;
    for (int i = 0; i < n; ++i) {
        REQUIRE(q.try_push(std::string("x")));
        REQUIRE(q.try_pop());
    }
    return counting_clock::reads.load();
}

}  // namespace

TEMPLATE_TEST_CASE("locked queue: without wait-time metrics, admissions and dequeues read no clock",
                   "[queue][locked][metrics]", oc::policy::drop_lru, oc::policy::priority, oc::policy::reject_new) {
    // 1000 round trips: with metrics, two reads each; without, only the few
    // dequeues that sample the rate (1, 2, 4, ..., 64, then every 64th).
    CHECK(push_pop_reads<TestType>(true, 1000) >= 2000);
    CHECK(push_pop_reads<TestType>(false, 1000) <= 30);
}

TEST_CASE("locked queue: without wait-time metrics, evictions read no clock either", "[queue][locked][metrics]") {
    locked_t<oc::policy::drop_lru> q{{.capacity = 2, .wait_time_metrics = false}};
    counting_clock::reads = 0;
    for (int i = 0; i < 100; ++i) REQUIRE(q.try_push(std::string("x")));
    CHECK(counting_clock::reads.load() == 0);
    const auto m = q.metrics();
    CHECK(m.evicted == 98u);
    CHECK(m.accepted == m.depth + m.dequeued + m.evicted + m.cancelled);
}

TEST_CASE("locked queue: without wait-time metrics, wait_time stays empty and the counters still add up",
          "[queue][locked][metrics]") {
    locked_t<oc::policy::priority> q{{.capacity = 4, .wait_time_metrics = false}};
    counting_clock::set(t0);
    for (int i = 0; i < 3; ++i) REQUIRE(q.try_push(std::string("x"), {.priority = i}));
    const auto e = q.try_pop();
    REQUIRE(e);
    CHECK(e->priority == 2);  // the policy still decides the order
    CHECK(e->enqueued_at == std::chrono::steady_clock::time_point{});
    const auto m = q.metrics();
    CHECK(m.wait_time.count() == 0u);
    CHECK(m.dequeued == 1u);
    CHECK(m.accepted == m.depth + m.dequeued + m.evicted + m.cancelled);
}

TEST_CASE("locked queue: without wait-time metrics, retry_after is still the measured dequeue interval",
          "[queue][locked][metrics][retry]") {
    locked_t<oc::policy::priority> q{{.capacity = 1, .wait_time_metrics = false}};
    for (int i = 0; i < 4; ++i) {  // dequeues 200 ms apart
        counting_clock::set(t0 + i * 200ms);
        REQUIRE(q.try_push(std::string("x")));
        REQUIRE(q.try_pop());
    }
    REQUIRE(q.try_push(std::string("x")));
    const auto r = q.try_push(std::string("over"));
    REQUIRE(r.reason == oc::rejection_reason::queue_full);
    CHECK(r.retry_after >= 200ms);
    CHECK(r.retry_after <= 201ms);
    // A second later with nothing dequeued: the silence counts.
    counting_clock::set(t0 + 1600ms);
    CHECK(q.try_push(std::string("over")).retry_after >= 1000ms);
}

TEST_CASE("locked queue: without wait-time metrics, a rejection folds in the dequeues since the last sample",
          "[queue][locked][metrics][retry]") {
    locked_t<oc::policy::priority> q{{.capacity = 1, .wait_time_metrics = false}};
    // 70 dequeues 10 ms apart: the last six fall between two sample points
    // (64 and 128).
    for (int i = 0; i < 70; ++i) {
        counting_clock::set(t0 + i * 10ms);
        REQUIRE(q.try_push(std::string("x")));
        REQUIRE(q.try_pop());
    }
    CHECK(q.metrics().dequeue_rate_per_second == Approx(100.0));
    REQUIRE(q.try_push(std::string("x")));
    const auto r = q.try_push(std::string("over"));
    REQUIRE(r.reason == oc::rejection_reason::queue_full);
    CHECK(r.retry_after >= 10ms);
    CHECK(r.retry_after <= 11ms);
    // Half a second later, nothing dequeued since the rejection's sample.
    counting_clock::set(t0 + 1190ms);
    const auto later = q.try_push(std::string("over")).retry_after;
    CHECK(later >= 500ms);
    CHECK(later <= 501ms);
}

TEST_CASE("admission_queue: the wait-time option reaches the locked queue", "[queue][locked][metrics]") {
    oc::admission_queue<int, oc::policy::drop_lru> q{{.capacity = 8, .wait_time_metrics = false}};
    REQUIRE_FALSE(q.uses_ring());
    REQUIRE(q.try_push(1));
    const auto e = q.try_pop();
    REQUIRE(e);
    CHECK(e->enqueued_at == std::chrono::steady_clock::time_point{});
    CHECK(q.metrics().wait_time.count() == 0u);
}
