// Coordinator: resource-aware placement and session affinity, in local mode
// and in distributed mode over the in-memory backends (the same scenarios
// run over Redis in tests/redis/placement_redis_test.cpp).
#include "unit/coordinator_test_support.hpp"
#include "unit/placement_scenarios.hpp"

namespace ot = oc::test;

TEST_CASE("placement: GPU types match exactly; an impossible request is refused at submission",
          "[coordinator][placement]") {
    SECTION("local") { ot::scenario_gpu_type_exact(ot::local_placement); }
    SECTION("distributed") { ot::scenario_gpu_type_exact(ot::node_placement(ot::memory_backend)); }
}

TEST_CASE("placement: resources are held until the attempt ends; waiting uses no attempt or retry",
          "[coordinator][placement]") {
    SECTION("local") { ot::scenario_hold_until_attempt_ends(ot::local_placement); }
    SECTION("distributed") { ot::scenario_hold_until_attempt_ends(ot::node_placement(ot::memory_backend)); }
}

TEST_CASE("placement: every end of an attempt releases its resources", "[coordinator][placement]") {
    SECTION("local") { ot::scenario_release_on_every_end(ot::local_placement); }
    SECTION("distributed") { ot::scenario_release_on_every_end(ot::node_placement(ot::memory_backend)); }
}

TEST_CASE("placement: a session's tasks stay on its worker and move when it dies", "[coordinator][placement]") {
    SECTION("local") { ot::scenario_session_affinity(ot::local_placement); }
    SECTION("distributed") { ot::scenario_session_affinity(ot::node_placement(ot::memory_backend)); }
}

TEST_CASE("placement: small tasks flow past a task waiting for a GPU", "[coordinator][placement]") {
    oc::coordinator c{ot::local_placement()};
    c.add_worker(ot::gpu_worker("g", {{"t4", 16000}}, 4));
    gate g;
    gate_guard guard{g};
    c.register_handler("hold", [&](oc::task_context&) {
        g.wait();
        return std::string("held");
    });
    c.register_handler("ok", [](oc::task_context&) { return std::string("ok"); });
    auto first = c.submit_async("hold", "", ot::asking_gpus(1, "t4"));
    auto waiting = c.submit_async("hold", "", ot::asking_gpus(1, "t4"));
    REQUIRE(first);
    REQUIRE(waiting);
    for (int i = 0; i < 5; ++i) CHECK(c.submit("ok", "") == "ok");
    CHECK(c.get_status(waiting.handle.id()) == oc::task_status::queued);
    g.open();
    CHECK(waiting.handle.get() == "held");
}

TEST_CASE("placement: with placement_wait an impossible request waits, then fails naming the request",
          "[coordinator][placement]") {
    SECTION("local") { ot::scenario_placement_wait(ot::local_placement); }
    SECTION("distributed") { ot::scenario_placement_wait(ot::node_placement(ot::memory_backend)); }
}

TEST_CASE("placement: bad requests and inventories are refused naming the field", "[coordinator][placement]") {
    oc::coordinator c{ot::local_placement()};
    c.register_handler("t", [](oc::task_context&) { return std::string(); });
    oc::task_options o;
    o.resources.labels = {"ssd", ""};
    CHECK_THROWS_WITH(c.submit_async("t", "", o), Catch::Contains("resources.labels[1]"));
    oc::task_options typed;
    typed.resources.gpu.type = "a100";
    CHECK_THROWS_WITH(c.submit_async("t", "", typed), Catch::Contains("resources.gpu.type"));
    auto w = ot::gpu_worker("w", {{"", 1000}});
    CHECK_THROWS_WITH(c.add_worker(w), Catch::Contains("worker.resources.gpus[0].type"));
    auto placement_wait = ot::local_placement();
    placement_wait.placement_wait = -1ms;
    CHECK_THROWS_WITH(oc::coordinator{placement_wait}, Catch::Contains("placement_wait"));
}
