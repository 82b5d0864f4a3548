// coordinator::promote and transport::promote in local mode and over the
// memory backend: the scenarios of tests/unit/promote_scenarios.hpp.
#include "unit/promote_scenarios.hpp"

#include <catch2/catch.hpp>

using namespace orchcore;

TEST_CASE("memory/promote: a delayed task becomes waiting at once", "[promote]") {
    test::scenario_transport_promote(test::memory_backend);
}

TEST_CASE("local/promote: a task continued for an hour runs at once when promoted", "[promote]") {
    coordinator_options o;
    o.scaling.min_workers = 1;
    o.scaling.max_workers = 1;
    coordinator c{o};
    test::scenario_coordinator_promote(c);
}

TEST_CASE("memory/promote: a task continued for an hour runs at once when promoted", "[promote][distributed]") {
    auto b = test::memory_backend();
    coordinator c{test::node_options(b, 1, "n1")};
    test::scenario_coordinator_promote(c);
}

TEST_CASE("memory/promote: a delayed task promoted on a producer node runs on an idle worker node",
          "[promote][distributed]") {
    auto b = test::memory_backend();
    coordinator producer{test::node_options(b, 0, "producer")};
    coordinator worker_node{test::node_options(b, 1, "workers")};
    worker_node.register_handler("later", [](task_context& ctx) -> std::string {
        if (ctx.turn() == 0) ctx.continue_later(std::chrono::hours(1));
        return "turn " + std::to_string(ctx.turn());
    });
    auto r = producer.submit_async("later", "");
    REQUIRE(r);
    REQUIRE(test::dist_eventually([&] { return producer.promote(r.handle.id()); }, std::chrono::seconds(20)));
    const auto done = r.handle.wait_for(std::chrono::seconds(20));
    REQUIRE(done);
    CHECK(done->result == "turn 1");
}
