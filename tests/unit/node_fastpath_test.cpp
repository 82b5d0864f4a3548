// The node engine on composed_node_backend over the memory backend: the
// distributed scenarios and the fast-path ones (node_fastpath_scenarios.hpp).
#include "unit/node_fastpath_scenarios.hpp"

#include <catch2/catch.hpp>

using namespace orchcore;

namespace {

test::dist_backend memory_fast() {
    auto b = test::memory_backend();
    b.nb = std::make_shared<composed_node_backend>(b.tp, b.store);
    return b;
}

}  // namespace

TEST_CASE("node fast path (memory): cross-node completion, async waits, duplicates", "[coordinator][node_fastpath]") {
    test::scenario_cross_node_completion(memory_fast);
    test::scenario_async_wait_across_nodes(memory_fast);
    test::scenario_duplicate_id_across_nodes(memory_fast);
}

TEST_CASE("node fast path (memory): lease takeover and fencing", "[coordinator][node_fastpath][fencing]") {
    test::scenario_lease_takeover(memory_fast);
}

TEST_CASE("node fast path (memory): cancel, steering, stop hand-back", "[coordinator][node_fastpath]") {
    test::scenario_cross_node_cancel(memory_fast);
    test::scenario_cross_node_steering(memory_fast);
    test::scenario_stop_hands_back(memory_fast);
}

TEST_CASE("node fast path (memory): bulk submission and many tasks through one node", "[coordinator][node_fastpath]") {
    test::scenario_bulk_submit(memory_fast, 1024);
    test::scenario_fastpath_throughput(memory_fast);
}

TEST_CASE("node fast path (memory): retries, turns, timeouts and tags", "[coordinator][node_fastpath]") {
    test::scenario_fastpath_lifecycle(memory_fast);
}

TEST_CASE("node fast path: node_backend must be built on the node's transport and store",
          "[coordinator][node_fastpath][options]") {
    auto b = memory_fast();
    auto o = test::node_options(b, 1, "n");
    o.store = std::make_shared<memory_task_store>();
    CHECK_THROWS_AS(coordinator{o}, invalid_argument);
    coordinator_options local;
    local.node_backend = b.nb;
    CHECK_THROWS_AS(coordinator{local}, invalid_argument);
}
