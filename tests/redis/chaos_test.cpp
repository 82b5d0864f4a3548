// Chaos over Redis: the server is frozen (SIGSTOP) for longer than the
// workers' heartbeat interval and worker_timeout, shorter than a lease,
// while long tasks run (tests/unit/node_resilience_scenarios.hpp; the same
// scenario with held calls over the in-memory backend is in
// tests/unit/node_resilience_test.cpp).
#include <orchcore/redis/redis.hpp>

#include "redis/redis_server_fixture.hpp"
#include "unit/node_resilience_scenarios.hpp"

#include <catch2/catch.hpp>

using namespace orchcore;

namespace {

std::shared_ptr<redis_client> waiting_client(const test::redis_server& server) {
    auto o = server.options("chaos");
    o.command_timeout = std::chrono::milliseconds(8000);  // calls wait out the pause
    return std::make_shared<redis_client>(o);
}

/// A private redis-server (a pause must not stall other tests), the
/// backend over it, and how to pause it.
struct pausable_redis {
    test::redis_server server;
    std::shared_ptr<redis_client> client = waiting_client(server);
    test::dist_backend backend{std::make_shared<redis_transport>(client, "q"),
                               std::make_shared<redis_task_store>(client, "q"),
                               std::make_shared<redis_worker_registry>(client, "q")};
    test::backend_pause pause{[this] { server.pause(); }, [this] { server.resume(); }};
};

}  // namespace

TEST_CASE("redis/chaos: a paused redis-server declares no worker dead and runs no task twice",
          "[redis][chaos]") {
    pausable_redis r;
    test::scenario_backend_pause(r.backend, r.pause);
}

TEST_CASE("redis/chaos: tasks that finish while redis-server is paused are recorded once, and their worker "
          "stays alive", "[redis][chaos]") {
    pausable_redis r;
    test::scenario_finish_during_pause(r.backend, r.pause);
}

TEST_CASE("redis/chaos: outcomes that fail to be recorded during an outage are recorded once it ends",
          "[redis][chaos]") {
    auto client = test::shared_redis_server().client("chaos");
    test::scenario_outage_while_finishing({std::make_shared<redis_transport>(client, "q"),
                                           std::make_shared<redis_task_store>(client, "q"),
                                           std::make_shared<redis_worker_registry>(client, "q")});
}
