// Coordinator in distributed mode over the in-memory backends (the same
// scenarios run over Redis in tests/redis/distributed_test.cpp).
#include "unit/coordinator_test_support.hpp"

// ---------------------------------------------------------------------------
// distributed mode over the in-memory backends (the same scenarios run over
// Redis in tests/redis/distributed_test.cpp)
// ---------------------------------------------------------------------------

TEST_CASE("coordinator/distributed: tasks submitted on one node complete on another's workers",
          "[coordinator][distributed]") {
    oc::test::scenario_cross_node_completion(oc::test::memory_backend);
}

TEST_CASE("coordinator/distributed: a coroutine awaits tasks that run on another node",
          "[coordinator][distributed][async_wait]") {
    oc::test::scenario_async_wait_across_nodes(oc::test::memory_backend);
}

TEST_CASE("coordinator/distributed: a duplicate id is rejected across nodes", "[coordinator][distributed]") {
    oc::test::scenario_duplicate_id_across_nodes(oc::test::memory_backend);
}

TEST_CASE("coordinator/distributed: an expired lease is taken over by another node; the late result is refused",
          "[coordinator][distributed][fencing]") {
    oc::test::scenario_lease_takeover(oc::test::memory_backend);
}

TEST_CASE("coordinator/distributed: cancel reaches a waiting task and a task running on another node",
          "[coordinator][distributed][cancel]") {
    oc::test::scenario_cross_node_cancel(oc::test::memory_backend);
}

TEST_CASE("coordinator/distributed: steering from any node reaches the task in order, across turns",
          "[coordinator][distributed][steering]") {
    oc::test::scenario_cross_node_steering(oc::test::memory_backend);
}

TEST_CASE("coordinator/distributed: bulk submission decides each task as if alone; all accepted complete",
          "[coordinator][distributed][bulk]") {
    oc::test::scenario_bulk_submit(oc::test::memory_backend, 1024);
    oc::test::scenario_bulk_submit(
        [] {
            return oc::test::dist_backend{std::make_shared<oc::memory_transport>(oc::transport_options{.capacity = 100}),
                                          std::make_shared<oc::memory_task_store>(),
                                          std::make_shared<oc::memory_worker_registry>()};
        },
        100);
}

TEST_CASE("coordinator/distributed: a stopping node hands its running task back to the queue",
          "[coordinator][distributed][stop]") {
    oc::test::scenario_stop_hands_back(oc::test::memory_backend);
}

TEST_CASE("coordinator/distributed: retries, continuations, timeouts and tags across the shared queue",
          "[coordinator][distributed]") {
    auto b = oc::test::memory_backend();
    auto o = oc::test::node_options(b, 2, "n1");
    oc::coordinator n1{o};
    std::atomic<int> flaky_calls{0};
    n1.register_handler("flaky", [&](oc::task_context& ctx) -> std::string {
        if (++flaky_calls < 3) throw std::runtime_error("boom " + std::to_string(ctx.attempt()));
        return "ok after " + std::to_string(ctx.attempt());
    });
    n1.register_handler("never", [](oc::task_context&) -> std::string { throw oc::non_retryable_error("nope"); });
    n1.register_handler("turns", [](oc::task_context& ctx) -> std::string {
        if (ctx.turn() < 2) ctx.continue_later(1ms);
        return "turn " + std::to_string(ctx.turn());
    });
    n1.register_handler("slow", [](oc::task_context& ctx) -> std::string {
        while (!ctx.cancellation_requested()) std::this_thread::sleep_for(1ms);
        return "late";
    });

    auto flaky = n1.submit_async("flaky", "", with_retries(5));
    REQUIRE(flaky);
    auto f = flaky.handle.wait_for(10s);
    REQUIRE(f);
    CHECK(st(f) == "completed");
    CHECK(f->result == "ok after 3");
    CHECK(f->retries == 2);
    CHECK(f->attempts == 3);

    auto never = n1.submit_async("never", "");
    auto nv = never.handle.wait_for(10s);
    REQUIRE(nv);
    CHECK(st(nv) == "failed");
    CHECK(nv->error == "nope");
    CHECK_THROWS_AS(never.handle.get(), oc::task_failed_error);

    auto turns = n1.submit_async("turns", "");
    auto tr = turns.handle.wait_for(10s);
    REQUIRE(tr);
    CHECK(st(tr) == "completed");
    CHECK(tr->result == "turn 2");
    CHECK(tr->turns == 2);

    oc::task_options slow_o = with_retries(1);
    slow_o.turn_timeout = 50ms;
    auto slow = n1.submit_async("slow", "", slow_o);
    auto sl = slow.handle.wait_for(10s);
    REQUIRE(sl);
    CHECK(st(sl) == "timed_out");
    CHECK(sl->retries == 1);
    CHECK(sl->attempts == 2);

    // A tagged task waits for a node whose workers have the tag; n1 hands
    // it back each time it leases it.
    oc::task_options gpu;
    gpu.tags = {"gpu"};
    auto tagged = n1.submit_async("flaky", "", gpu);
    REQUIRE(tagged);
    std::this_thread::sleep_for(100ms);
    CHECK(n1.get_status(tagged.handle.id()) == oc::task_status::queued);
    auto o2 = oc::test::node_options(b, 0, "n2");
    oc::coordinator n2{o2};
    n2.register_handler("flaky", [](oc::task_context& ctx) { return "gpu@" + ctx.worker_id(); });
    oc::worker_options wo;
    wo.tags = {"gpu"};
    wo.heartbeat_interval = 20ms;
    (void)n2.add_worker(wo);
    auto tg = tagged.handle.wait_for(10s);
    REQUIRE(tg);
    CHECK(st(tg) == "completed");
    REQUIRE_THAT(tg->result, Catch::StartsWith("gpu@n2/"));
    CHECK(n1.get_stats().released >= 1);
}

TEST_CASE("coordinator/distributed: options validation", "[coordinator][distributed][options]") {
    auto b = oc::test::memory_backend();
    auto field_of = [](oc::coordinator_options o) -> std::string {
        try {
            o.validate();
        } catch (const oc::invalid_argument& e) {
            return e.field();
        }
        return "<valid>";
    };
    auto o = oc::test::node_options(b, 0, "p");
    CHECK(field_of(o) == "<valid>");  // producer-only node: 0 workers
    auto local = fast_options(0, 0);
    CHECK(field_of(local) == "autoscale.max_workers");  // only for a node
    o = oc::test::node_options(b, 1, "p");
    o.scaling.max_workers = 0;
    CHECK(field_of(o) == "autoscale.min_workers");
    o = oc::test::node_options(b, 1, "p");
    o.node->lease_duration = 0ms;
    CHECK(field_of(o) == "node.lease_duration");
    o = oc::test::node_options(b, 1, "p");
    o.node->lease_renew_interval = o.node->lease_duration;
    CHECK(field_of(o) == "node.lease_renew_interval");
    o = oc::test::node_options(b, 1, "p");
    o.node->lease_batch = 0;
    CHECK(field_of(o) == "node.lease_batch");
    o = oc::test::node_options(b, 1, "p");
    o.policy = oc::queue_policy::priority;  // the transport's is reject_new
    CHECK(field_of(o) == "policy");
    o.policy = oc::queue_policy::fail_fast;
    CHECK(field_of(o) == "<valid>");
    o = oc::test::node_options(b, 1, "p");
    o.node->transport = nullptr;  // a node without the shared queue
    CHECK(field_of(o) == "node.transport");
    local = fast_options(1, 1);
    local.node = oc::node_options{};
    CHECK(field_of(local) == "node.transport");

    // Generated node ids are distinct; local mode is "local".
    oc::coordinator l{fast_options(1, 1)};
    CHECK(l.node_id() == "local");
    auto g1 = oc::test::node_options(b, 0, "");
    oc::coordinator n1{g1}, n2{g1};
    CHECK(n1.node_id() != n2.node_id());
    CHECK_FALSE(n1.node_id().empty());
}
