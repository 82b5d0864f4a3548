// Worker registry entry lifetime and oversized results over Redis: the
// scenarios of tests/unit/node_resilience_scenarios.hpp with
// redis_transport, redis_task_store and redis_worker_registry.
#include <orchcore/redis/redis.hpp>

#include "redis/redis_server_fixture.hpp"
#include "unit/node_resilience_scenarios.hpp"

#include <catch2/catch.hpp>

using namespace orchcore;
using orchcore::test::shared_redis_server;

namespace {

test::dist_backend redis_backend(std::size_t max_payload = 16u << 20) {
    auto o = shared_redis_server().options("reg");
    o.max_payload_bytes = max_payload;
    auto client = std::make_shared<redis_client>(o);
    return {std::make_shared<redis_transport>(client, "q"), std::make_shared<redis_task_store>(client, "q"),
            std::make_shared<redis_worker_registry>(client, "q")};
}

}  // namespace

TEST_CASE("redis/registry: a clean stop removes the node's workers from the registry", "[redis][registry]") {
    test::scenario_registry_clean_stop(redis_backend());
}

TEST_CASE("redis/registry: dead workers' entries are removed after worker_timeout + worker_entry_grace",
          "[redis][registry]") {
    test::scenario_registry_dead_entries(redis_backend());
}

TEST_CASE("redis/registry: purge_silent removes silent entries, whatever their status, once", "[redis][registry]") {
    auto b = redis_backend();
    test::scenario_registry_purge(*b.registry);
}

TEST_CASE("redis/distributed: an oversized result fails its task alone, at once, with the reason",
          "[redis][distributed][oversized]") {
    test::scenario_oversized_result(redis_backend(1024), 1024);
}
