// Wake-ups on the Redis backend: the scenarios of
// tests/unit/wakeup_scenarios.hpp with redis_transport against the private redis-server of the test binary.
#include <orchcore/redis/redis.hpp>

#include "redis/redis_server_fixture.hpp"
#include "unit/wakeup_scenarios.hpp"

#include <catch2/catch.hpp>

using namespace orchcore;

namespace {
test::dist_backend redis_backend() {
    auto client = orchcore::test::shared_redis_server().client("wake");
    return {std::make_shared<redis_transport>(client, "q"), std::make_shared<redis_task_store>(client, "q"),
            std::make_shared<redis_worker_registry>(client, "q")};
}
}  // namespace

TEST_CASE("redis/wakeup: wait_for_work is woken by an admission", "[redis][wakeup]") {
    test::scenario_wait_for_work_woken_by_admission(redis_backend);
}
TEST_CASE("redis/wakeup: one task wakes at least one of two waiters", "[redis][wakeup]") {
    test::scenario_wake_not_lost_between_two_waiters(redis_backend);
}
TEST_CASE("redis/wakeup: interrupt_waits ends a wait", "[redis][wakeup]") { test::scenario_interrupt_ends_wait(redis_backend); }
TEST_CASE("redis/wakeup: a delayed task wakes a waiter when due", "[redis][wakeup]") {
    test::scenario_delayed_task_wakes_waiter(redis_backend);
}
TEST_CASE("redis/wakeup: a delay set during a wait wakes the waiter", "[redis][wakeup]") {
    test::scenario_delay_during_wait_wakes_waiter(redis_backend);
}
TEST_CASE("redis/wakeup: finish notifications reach watchers until unwatched", "[redis][wakeup]") {
    test::scenario_finish_notifications(redis_backend);
}
TEST_CASE("redis/wakeup: an idle worker node runs tasks submitted on a producer node", "[redis][wakeup][distributed]") {
    test::scenario_idle_worker_node_runs_task(redis_backend);
}
TEST_CASE("redis/wakeup: two idle worker nodes lose no wake", "[redis][wakeup][distributed]") {
    test::scenario_two_idle_worker_nodes(redis_backend);
}
TEST_CASE("redis/wakeup: stop of an idle node returns", "[redis][wakeup][distributed]") {
    test::scenario_idle_node_stops(redis_backend);
}
TEST_CASE("redis/wakeup: a delayed retry on an idle node runs", "[redis][wakeup][distributed]") {
    test::scenario_delayed_retry_on_idle_node(redis_backend);
}

TEST_CASE("redis/wakeup: a lease that empties the queue drops its wake tokens", "[redis][wakeup]") {
    auto client = orchcore::test::shared_redis_server().client("wake");
    auto tp = std::make_shared<redis_transport>(client, "q");
    const auto wake_len = [&] { return client->command({"LLEN", tp->key_base() + ":wake"}).integer; };
    const auto now = std::chrono::system_clock::now();
    for (const char* id : {"a", "b", "c"}) REQUIRE(tp->admit({id}).is_accepted);
    CHECK(wake_len() == 3);
    CHECK(tp->lease("w", 1, std::chrono::seconds(30), now).size() == 1);
    CHECK(wake_len() == 3);  // tasks still wait: their wakes stay
    CHECK(tp->lease("w", 5, std::chrono::seconds(30), now).size() == 2);
    CHECK(wake_len() == 0);
    // An idle consumer is not woken for tasks already leased...
    CHECK_FALSE(tp->wait_for_work(std::chrono::milliseconds(50)));
    // ...and is for the next one.
    REQUIRE(tp->admit({"d"}).is_accepted);
    CHECK(tp->wait_for_work(std::chrono::seconds(20)));
}
