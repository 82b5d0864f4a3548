// Coordinator (one process): an admission that makes room by evicting a
// queued task (drop-lru, priority) reports that task in its result, as the
// admission queue and distributed mode do; the evicted task ends cancelled.
#include <orchcore/coordinator.hpp>

#include <catch2/catch.hpp>

#include "support/sync_helpers.hpp"

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

namespace oc = orchcore;
using namespace std::chrono_literals;
using orchcore::test::eventually;
using orchcore::test::gate;
using orchcore::test::gate_guard;

namespace {

oc::coordinator_options one_blocked_worker(oc::queue_policy policy) {
    oc::coordinator_options o;
    o.policy = policy;
    o.queue.capacity = 1;
    o.scaling.min_workers = 1;
    o.scaling.max_workers = 1;
    o.worker_template.heartbeat_interval = 20ms;
    o.worker_timeout = 1000ms;
    o.cancel_grace = 200ms;
    return o;
}

oc::task_options at(int priority) {
    oc::task_options o;
    o.priority = priority;
    return o;
}

// Occupies the only worker, so that later submissions stay queued.
struct blocked_coordinator {
    gate g;
    std::atomic<int> started{0};
    oc::coordinator c;
    gate_guard guard{g};
    explicit blocked_coordinator(oc::queue_policy policy) : c(one_blocked_worker(policy)) {
        c.register_handler("t", [this](oc::task_context&) {
            ++started;
            g.wait();
            return std::string("ok");
        });
        REQUIRE(c.submit_async("t", "running"));
        REQUIRE(eventually([&] { return started.load() == 1; }));
    }
};

void check_evicted_cancelled(oc::coordinator& c, const std::string& id) {
    const auto r = c.wait_for(id, 5s);
    REQUIRE(r);
    CHECK(r->status == oc::task_status::cancelled);
    CHECK_THAT(r->error, Catch::Contains("evicted"));
}

}  // namespace

TEST_CASE("coordinator eviction: drop_lru reports the evicted task in submit_async and post results",
          "[coordinator][eviction]") {
    blocked_coordinator b{oc::queue_policy::drop_lru};
    auto old = b.c.submit_async("t", "old", at(oc::priority::low));
    REQUIRE(old);
    CHECK_FALSE(old.admission.evicted);
    auto young = b.c.submit_async("t", "young");
    REQUIRE(young);
    REQUIRE(young.admission.evicted);
    CHECK(young.admission.evicted->id == old.handle.id());
    CHECK(young.admission.evicted->priority == oc::priority::low);
    check_evicted_cancelled(b.c, old.handle.id());

    const auto posted = b.c.post("t", "posted");
    REQUIRE(posted);
    REQUIRE(posted.evicted);
    CHECK(posted.evicted->id == young.handle.id());
    check_evicted_cancelled(b.c, young.handle.id());
}

TEST_CASE("coordinator eviction: the priority policy reports the lower-priority task it pushed out",
          "[coordinator][eviction]") {
    blocked_coordinator b{oc::queue_policy::priority};
    auto low = b.c.submit_async("t", "low", at(oc::priority::low));
    REQUIRE(low);
    auto high = b.c.submit_async("t", "high", at(oc::priority::high));
    REQUIRE(high);
    REQUIRE(high.admission.evicted);
    CHECK(high.admission.evicted->id == low.handle.id());
    CHECK(high.admission.evicted->priority == oc::priority::low);
    check_evicted_cancelled(b.c, low.handle.id());
    b.g.open();
    CHECK(high.handle.get() == "ok");
}

TEST_CASE("coordinator eviction: submit_many reports each eviction on the result that caused it",
          "[coordinator][eviction][bulk]") {
    blocked_coordinator b{oc::queue_policy::drop_lru};
    std::vector<oc::task_request> reqs;
    for (int i = 0; i < 3; ++i) reqs.push_back({"t", "bulk-" + std::to_string(i), {}});
    const auto out = b.c.submit_many(std::move(reqs));
    REQUIRE(out.size() == 3);
    for (const auto& r : out) REQUIRE(r);
    CHECK_FALSE(out[0].admission.evicted);
    for (std::size_t i = 1; i < out.size(); ++i) {
        REQUIRE(out[i].admission.evicted);
        CHECK(out[i].admission.evicted->id == out[i - 1].handle.id());
        check_evicted_cancelled(b.c, out[i - 1].handle.id());
    }
    b.g.open();
    CHECK(out.back().handle.get() == "ok");
}
