// Workflows in distributed mode over Redis: the workflow's state is the
// records in Redis, so another node carries it on.
#include <orchcore/redis/redis.hpp>

#include "redis/redis_server_fixture.hpp"
#include "unit/workflow_scenarios.hpp"

#include <catch2/catch.hpp>

using orchcore::test::shared_redis_server;

namespace {

orchcore::test::dist_backend redis_backend() {
    auto client = shared_redis_server().client("wf");
    return orchcore::test::dist_backend{std::make_shared<orchcore::redis_transport>(client, "q"),
                                        std::make_shared<orchcore::redis_task_store>(client, "q"),
                                        std::make_shared<orchcore::redis_worker_registry>(client, "q")};
}

}  // namespace

TEST_CASE("redis/workflow: another node carries a workflow on after its node stopped",
          "[redis][workflow][distributed]") {
    orchcore::test::scenario_workflow_carried_on(redis_backend);
}

TEST_CASE("redis/workflow: a node that takes a workflow over carries on its latest shard round",
          "[redis][workflow][distributed][rounds]") {
    orchcore::test::scenario_workflow_rounds_carried_on(redis_backend);
}
