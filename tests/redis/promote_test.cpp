// coordinator::promote and transport::promote over Redis: the scenarios of
// tests/unit/promote_scenarios.hpp against the private redis-server of the
// test binary.
#include <orchcore/redis/redis.hpp>

#include "redis/redis_server_fixture.hpp"
#include "unit/promote_scenarios.hpp"

#include <catch2/catch.hpp>

using namespace orchcore;

namespace {
test::dist_backend redis_backend() {
    auto client = orchcore::test::shared_redis_server().client("promote");
    return {std::make_shared<redis_transport>(client, "q"), std::make_shared<redis_task_store>(client, "q"),
            std::make_shared<redis_worker_registry>(client, "q")};
}
}  // namespace

TEST_CASE("redis/promote: a delayed task becomes waiting at once", "[redis][promote]") {
    test::scenario_transport_promote(redis_backend);
}

TEST_CASE("redis/promote: a task continued for an hour runs at once when promoted", "[redis][promote][distributed]") {
    auto b = redis_backend();
    coordinator c{test::node_options(b, 1, "n1")};
    test::scenario_coordinator_promote(c);
}
