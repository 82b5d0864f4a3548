// Resource-aware placement over Redis: the scenarios of
// tests/unit/coordinator_placement_test.cpp with redis_transport,
// redis_task_store and redis_worker_registry.
#include "redis/redis_server_fixture.hpp"
#include "unit/placement_scenarios.hpp"

#include <orchcore/redis/redis.hpp>

using namespace orchcore;
using orchcore::test::shared_redis_server;

namespace {
test::dist_backend redis_backend() {
    static std::atomic<int> n{0};
    const auto q = "place" + std::to_string(++n);
    auto client = shared_redis_server().client("place");
    return {std::make_shared<redis_transport>(client, q), std::make_shared<redis_task_store>(client, q),
            std::make_shared<redis_worker_registry>(client, q)};
}
}  // namespace

TEST_CASE("redis/placement: GPU types match exactly; an impossible request is refused", "[redis][placement]") {
    test::scenario_gpu_type_exact(test::node_placement(redis_backend));
}

TEST_CASE("redis/placement: resources are held until the attempt ends", "[redis][placement]") {
    test::scenario_hold_until_attempt_ends(test::node_placement(redis_backend));
}

TEST_CASE("redis/placement: every end of an attempt releases its resources", "[redis][placement]") {
    test::scenario_release_on_every_end(test::node_placement(redis_backend));
}

TEST_CASE("redis/placement: a session's tasks stay on its worker and move when it dies", "[redis][placement]") {
    test::scenario_session_affinity(test::node_placement(redis_backend));
}
