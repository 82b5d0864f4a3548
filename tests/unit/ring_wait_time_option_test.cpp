// queue_options::wait_time_metrics on the lock-free ring: off, admissions
// and dequeues read no clock, and retry-after is still measured. Time is a
// clock moved by hand that counts its reads.
#include <orchcore/admission_queue.hpp>
#include <orchcore/detail/ring_admission_queue.hpp>

#include "../support/counting_clock.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <string>

namespace oc = orchcore;
using namespace std::chrono_literals;

namespace {

using orchcore::test::counting_clock;
using orchcore::test::push_pop_reads;

using ring_t = oc::detail::ring_admission_queue<std::string, oc::policy::reject_new, oc::job_id, counting_clock>;
const auto t0 = std::chrono::steady_clock::time_point{} + 1h;

}  // namespace

TEST_CASE("ring queue: without wait-time metrics, admissions and dequeues read no clock",
          "[queue][ring][metrics]") {
    // 1000 round trips: with metrics, two reads each; without, only the few
    // dequeues that sample the rate (1, 2, 4, ..., 64, then every 64th).
    CHECK(push_pop_reads<ring_t>(true, 1000) >= 2000);
    CHECK(push_pop_reads<ring_t>(false, 1000) <= 30);
}

TEST_CASE("ring queue: without wait-time metrics, wait_time stays empty and the counters still add up",
          "[queue][ring][metrics]") {
    ring_t q{{.capacity = 4, .wait_time_metrics = false}};
    counting_clock::set(t0);
    for (int i = 0; i < 3; ++i) REQUIRE(q.try_push(std::string("x")));
    const auto e = q.try_pop();
    REQUIRE(e);
    CHECK(e->enqueued_at == std::chrono::steady_clock::time_point{});
    const auto m = q.metrics();
    CHECK(m.wait_time.count() == 0u);
    CHECK(m.dequeued == 1u);
    CHECK(m.accepted == m.depth + m.dequeued + m.evicted + m.cancelled);
}

TEST_CASE("ring queue: without wait-time metrics, retry_after is still the measured dequeue interval",
          "[queue][ring][metrics][retry]") {
    ring_t q{{.capacity = 1, .wait_time_metrics = false}};
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
    // A second later with nothing dequeued: the silence counts, without a lock.
    counting_clock::set(t0 + 1600ms);
    CHECK(q.try_push(std::string("over")).retry_after >= 1000ms);
}

TEST_CASE("admission_queue: the wait-time option reaches the ring", "[queue][ring][metrics]") {
    oc::admission_queue<int> q{{.capacity = 8, .wait_time_metrics = false}};
    REQUIRE(q.uses_ring());
    REQUIRE(q.try_push(1));
    REQUIRE(q.try_pop());
    CHECK(q.metrics().wait_time.count() == 0u);
}
