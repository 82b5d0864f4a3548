// Resource-aware placement over Redis: the scenarios of
// tests/unit/coordinator_placement_test.cpp with redis_transport,
// redis_task_store and redis_worker_registry.
#include "redis/redis_server_fixture.hpp"
#include "unit/placement_scenarios.hpp"

#include <orchcore/redis/redis.hpp>

#include <limits>

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

TEST_CASE("redis/placement: with placement_wait an impossible request waits, then fails (node backend path)",
          "[redis][placement]") {
    test::scenario_placement_wait(test::node_placement(redis_backend));
}

TEST_CASE("redis/placement: a session's tasks stay on its worker and move when it dies", "[redis][placement]") {
    test::scenario_session_affinity(test::node_placement(redis_backend));
}

TEST_CASE("redis/placement: resource requests, sessions and worker inventories round-trip", "[redis][placement]") {
    auto client = shared_redis_server().client("place-rt");
    redis_task_store s(client, "rt");
    redis_worker_registry reg(client, "rt");
    task_record r;
    r.id = "t1";
    r.type = "train";
    r.status = task_status::queued;
    r.created_at = std::chrono::system_clock::now();
    r.resources = {.cpu_millis = 2500,
                   .memory_mb = std::numeric_limits<std::uint64_t>::max(),
                   .gpu = {.count = 2, .type = "a100-80g", .memory_mb = 81920},
                   .labels = {"zone=eu", "ssd"}};
    r.session = "chat \"42\"";
    REQUIRE(s.create(r));
    const auto back = s.get("t1");
    REQUIRE(back);
    CHECK(back->resources == r.resources);
    CHECK(back->session == r.session);

    worker_record w;
    w.id = "w1";
    w.resources = {.cpu_millis = 8000, .memory_mb = 64000, .gpus = {{"a100", 40000}, {"t4", 16000}}, .labels = {"ssd"}};
    w.free = {.cpu_millis = 6000, .memory_mb = 60000, .gpus = {{"t4", 16000}}, .labels = {"ssd"}};
    reg.upsert(w);
    const auto got = reg.get("w1");
    REQUIRE(got);
    CHECK(got->resources == w.resources);
    CHECK(got->free == w.free);
    // A worker without resources stores none and reads back empty.
    reg.upsert({.id = "w2"});
    const auto plain = reg.get("w2");
    REQUIRE(plain);
    CHECK(plain->resources == resource_inventory{});
}
