// The node engine over a node_backend (node_options::backend):
// the distributed scenarios (distributed_scenarios.hpp) plus the task life
// cycle on the combined hot path, run over composed_node_backend on the
// memory backend (tests/unit/node_fastpath_test.cpp) and redis_node_backend
// (tests/redis/node_fastpath_test.cpp).
#pragma once

#include "unit/distributed_scenarios.hpp"

#include <orchcore/node_backend.hpp>

namespace orchcore::test {

/// Retries, continuations, a turn timeout, a non-retryable failure and
/// worker tags, each started and finished through the node backend.
inline void scenario_fastpath_lifecycle(const dist_backend_factory& make) {
    auto b = make();
    REQUIRE(b.nb);
    coordinator n1{node_options(b, 2, "n1")};
    std::atomic<int> flaky_calls{0};
    n1.register_handler("flaky", [&](task_context& ctx) -> std::string {
        if (++flaky_calls < 3) throw std::runtime_error("boom " + std::to_string(ctx.attempt()));
        return "ok after " + std::to_string(ctx.attempt());
    });
    n1.register_handler("never", [](task_context&) -> std::string { throw non_retryable_error("nope"); });
    n1.register_handler("turns", [](task_context& ctx) -> std::string {
        if (ctx.turn() < 2) ctx.continue_later(1ms);
        return "turn " + std::to_string(ctx.turn());
    });
    n1.register_handler("slow", [](task_context& ctx) -> std::string {
        while (!ctx.cancellation_requested()) std::this_thread::sleep_for(1ms);
        return "late";
    });
    task_options retries;
    retries.max_retries = 5;
    auto f = n1.submit_async("flaky", "", retries).handle.wait_for(10s);
    REQUIRE(f);
    CHECK(status_of(f) == "completed");
    CHECK(f->result == "ok after 3");
    CHECK(f->retries == 2);
    CHECK(f->attempts == 3);
    CHECK_THAT(f->worker_id, Catch::StartsWith("n1/"));
    CHECK(f->started_at.has_value());

    auto nv = n1.submit_async("never", "").handle.wait_for(10s);
    REQUIRE(nv);
    CHECK(status_of(nv) == "failed");
    CHECK(nv->error == "nope");

    auto tr = n1.submit_async("turns", "payload kept").handle.wait_for(10s);
    REQUIRE(tr);
    CHECK(status_of(tr) == "completed");
    CHECK(tr->result == "turn 2");
    CHECK(tr->turns == 2);
    CHECK(tr->payload == "payload kept");

    task_options slow_o;
    slow_o.max_retries = 1;
    slow_o.turn_timeout = 50ms;
    auto sl = n1.submit_async("slow", "", slow_o).handle.wait_for(10s);
    REQUIRE(sl);
    CHECK(status_of(sl) == "timed_out");
    CHECK(sl->attempts == 2);

    // A tagged task is left for a node whose workers have the tag.
    task_options gpu;
    gpu.tags = {"gpu"};
    auto tagged = n1.submit_async("flaky", "", gpu);
    REQUIRE(tagged);
    std::this_thread::sleep_for(100ms);
    CHECK(n1.get_status(tagged.handle.id()) == task_status::queued);
    coordinator n2{node_options(b, 0, "n2")};
    n2.register_handler("flaky", [](task_context& ctx) { return "gpu@" + ctx.worker_id(); });
    worker_options wo;
    wo.tags = {"gpu"};
    wo.heartbeat_interval = 20ms;
    (void)n2.add_worker(wo);
    auto tg = tagged.handle.wait_for(10s);
    REQUIRE(tg);
    CHECK(status_of(tg) == "completed");
    CHECK_THAT(tg->result, Catch::StartsWith("gpu@n2/"));
    CHECK(tg->attempts == 1);
}

/// Many tasks through one node: every one completes once, records agree
/// with the node's counters.
inline void scenario_fastpath_throughput(const dist_backend_factory& make) {
    auto b = make();
    coordinator producer{node_options(b, 0, "producer")};
    coordinator worker_node{node_options(b, 1, "worker")};
    std::atomic<int> runs{0};
    worker_node.register_handler("t", [&](task_context& ctx) {
        ++runs;
        return "r" + ctx.payload();
    });
    std::vector<task_request> reqs;
    for (int i = 0; i < 300; ++i) reqs.push_back({"t", std::to_string(i), {}});
    const auto res = producer.submit_many(std::move(reqs));
    for (std::size_t i = 0; i < res.size(); ++i) {
        REQUIRE(res[i]);
        auto r = res[i].handle.wait_for(20s);
        REQUIRE(r);
        CHECK(status_of(r) == "completed");
        CHECK(r->result == "r" + std::to_string(i));
        CHECK(r->attempts == 1);
    }
    CHECK(runs.load() == 300);
    CHECK(dist_eventually([&] { return worker_node.get_stats().completed == 300; }));
}

}  // namespace orchcore::test
