// Distributed mode over Redis: the scenarios of
// tests/unit/distributed_scenarios.hpp with redis_transport,
// redis_task_store and redis_worker_registry (one fresh key prefix per test)
// against the private redis-server of the test binary, with the separate
// transport and store calls (transport_options::combined_node_calls off;
// tests/redis/node_fastpath_test.cpp runs them on the default, combined).
#include <orchcore/redis/redis.hpp>

#include "redis/redis_server_fixture.hpp"
#include "unit/distributed_scenarios.hpp"

#include <catch2/catch.hpp>

using namespace orchcore;
using orchcore::test::shared_redis_server;

namespace {

test::dist_backend redis_backend() {
    auto client = shared_redis_server().client("dist");
    return {std::make_shared<redis_transport>(client, "q", transport_options{.combined_node_calls = false}),
            std::make_shared<redis_task_store>(client, "q"), std::make_shared<redis_worker_registry>(client, "q")};
}

}  // namespace

TEST_CASE("redis/distributed: tasks submitted on one node complete on another's workers",
          "[redis][distributed]") {
    test::scenario_cross_node_completion(redis_backend);
}

TEST_CASE("redis/distributed: a coroutine awaits tasks that run on another node", "[redis][distributed][async_wait]") {
    test::scenario_async_wait_across_nodes(redis_backend);
}

TEST_CASE("redis/distributed: a duplicate id is rejected across nodes", "[redis][distributed]") {
    test::scenario_duplicate_id_across_nodes(redis_backend);
}

TEST_CASE("redis/distributed: an expired lease is taken over by another node; the late result is refused",
          "[redis][distributed][fencing][failure]") {
    test::scenario_lease_takeover(redis_backend);
}

TEST_CASE("redis/distributed: cancel reaches a waiting task and a task running on another node",
          "[redis][distributed][cancel]") {
    test::scenario_cross_node_cancel(redis_backend);
}

TEST_CASE("redis/distributed: a stopping node hands its running task back to the queue",
          "[redis][distributed][stop]") {
    test::scenario_stop_hands_back(redis_backend);
}

TEST_CASE("redis/distributed: steering from any node reaches the task in order, across turns",
          "[redis][distributed][steering]") {
    test::scenario_cross_node_steering(redis_backend);
}

TEST_CASE("redis/distributed: bulk submission decides each task as if alone; all accepted complete",
          "[redis][distributed][bulk]") {
    test::scenario_bulk_submit(redis_backend, 1024);
    auto small_queue = [] {
        auto client = shared_redis_server().client("dist");
        const transport_options small{.capacity = 100, .combined_node_calls = false};
        return test::dist_backend{std::make_shared<redis_transport>(client, "q", small),
                                  std::make_shared<redis_task_store>(client, "q"),
                                  std::make_shared<redis_worker_registry>(client, "q")};
    };
    test::scenario_bulk_submit(small_queue, 100);
}
