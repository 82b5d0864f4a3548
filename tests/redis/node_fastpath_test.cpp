// The node engine on redis_node_backend: the distributed scenarios and the
// fast-path ones (tests/unit/node_fastpath_scenarios.hpp) over Redis.
#include <orchcore/redis/redis.hpp>

#include "redis/redis_server_fixture.hpp"
#include "unit/node_fastpath_scenarios.hpp"

#include <catch2/catch.hpp>

using namespace orchcore;
using orchcore::test::shared_redis_server;

namespace {

test::dist_backend redis_fast() {
    auto client = shared_redis_server().client("fast");
    auto tp = std::make_shared<redis_transport>(client, "q");
    auto store = std::make_shared<redis_task_store>(client, "q");
    return {tp, store, std::make_shared<redis_worker_registry>(client, "q"),
            std::make_shared<redis_node_backend>(tp, store)};
}

}  // namespace

TEST_CASE("node fast path (redis): cross-node completion, async waits, duplicates", "[redis][node_fastpath]") {
    test::scenario_cross_node_completion(redis_fast);
    test::scenario_async_wait_across_nodes(redis_fast);
    test::scenario_duplicate_id_across_nodes(redis_fast);
}

TEST_CASE("node fast path (redis): lease takeover and fencing", "[redis][node_fastpath][fencing]") {
    test::scenario_lease_takeover(redis_fast);
}

TEST_CASE("node fast path (redis): cancel, steering, stop hand-back", "[redis][node_fastpath]") {
    test::scenario_cross_node_cancel(redis_fast);
    test::scenario_cross_node_steering(redis_fast);
    test::scenario_stop_hands_back(redis_fast);
}

TEST_CASE("node fast path (redis): bulk submission and many tasks through one node", "[redis][node_fastpath]") {
    test::scenario_bulk_submit(redis_fast, 1024);
    test::scenario_fastpath_throughput(redis_fast);
}

TEST_CASE("node fast path (redis): retries, turns, timeouts and tags", "[redis][node_fastpath]") {
    test::scenario_fastpath_lifecycle(redis_fast);
}
