// The scenarios of tests/unit/node_resilience_scenarios.hpp over the
// in-memory backend (their Redis runs: tests/redis/chaos_test.cpp,
// tests/redis/registry_cleanup_test.cpp), and their local-mode
// counterparts.
#include "unit/node_resilience_scenarios.hpp"

#include <orchcore/coordinator.hpp>
#include <orchcore/node_backend.hpp>

#include <catch2/catch.hpp>

using namespace orchcore;
using namespace std::chrono_literals;

TEST_CASE("node resilience: a backend that stops answering for longer than worker_timeout runs no task twice",
          "[distributed][resilience][chaos]") {
    auto held = test::holding(test::memory_backend());
    test::scenario_backend_pause(held.b, {[h = held.hold] { h->set(true); }, [h = held.hold] { h->set(false); }});
    CHECK(held.hold->held.load() > 0);  // the backend was called, and held, during the pause
}

TEST_CASE("node resilience: tasks that finish while the backend stops answering are recorded once, and "
          "their worker stays alive", "[distributed][resilience][chaos]") {
    auto held = test::holding(test::memory_backend());
    test::scenario_finish_during_pause(held.b, {[h = held.hold] { h->set(true); }, [h = held.hold] { h->set(false); }});
    CHECK(held.hold->held.load() > 0);
}

TEST_CASE("node resilience: the same on the combined hot path (node_backend)", "[distributed][resilience][chaos]") {
    auto held = test::holding(test::memory_backend());
    held.b.nb = std::make_shared<composed_node_backend>(held.b.tp, held.b.store);
    test::scenario_finish_during_pause(held.b, {[h = held.hold] { h->set(true); }, [h = held.hold] { h->set(false); }});
    CHECK(held.hold->held.load() > 0);
}

TEST_CASE("node resilience: outcomes that fail to be recorded during an outage are recorded once it ends",
          "[distributed][resilience][chaos]") {
    test::scenario_outage_while_finishing(test::memory_backend());
}

TEST_CASE("node resilience: an oversized result fails its task alone, at once, with the reason",
          "[distributed][resilience][oversized]") {
    auto b = test::memory_backend();
    b.store = std::make_shared<test::limited_task_store>(b.store, 1024);
    test::scenario_oversized_result(b, 1024);
}

TEST_CASE("coordinator: with a store of the user's, an oversized result fails its task alone, without retries",
          "[coordinator][oversized]") {
    constexpr std::size_t limit = 256;
    coordinator_options o;
    o.store = std::make_shared<test::limited_task_store>(std::make_shared<memory_task_store>(), limit);
    o.scaling.min_workers = o.scaling.max_workers = 2;
    o.worker_template.heartbeat_interval = 20ms;
    coordinator c{o};
    std::atomic<int> big_runs{0};
    c.register_handler("big", [&](task_context&) {
        ++big_runs;
        return std::string(limit + 1, 'x');
    });
    c.register_handler("small", [](task_context& ctx) { return "ok:" + ctx.payload(); });
    auto big = c.submit_async("big", "", {.max_retries = 3});
    auto small = c.submit_async("small", "s");
    REQUIRE(big);
    REQUIRE(small);
    const auto done = big.handle.wait_for(10s);
    REQUIRE(done);
    CHECK(test::status_of(done) == "failed");
    CHECK(done->error == test::oversized_reason(limit + 1, limit));
    CHECK(done->attempts == 1);
    CHECK(done->retries == 0);
    CHECK(big_runs.load() == 1);
    // The store holds the same ending.
    const auto stored = o.store->get(big.handle.id());
    REQUIRE(stored);
    CHECK(stored->status == task_status::failed);
    CHECK(c.submit("small", "t") == "ok:t");
    CHECK(small.handle.get() == "ok:s");
}

TEST_CASE("node resilience: a clean stop removes the node's workers from the registry",
          "[distributed][resilience][registry]") {
    test::scenario_registry_clean_stop(test::memory_backend());
}

TEST_CASE("node resilience: dead workers' registry entries are removed after worker_timeout + worker_entry_grace",
          "[distributed][resilience][registry]") {
    test::scenario_registry_dead_entries(test::memory_backend());
}

TEST_CASE("memory_worker_registry: purge_silent removes silent entries, whatever their status, once",
          "[registry]") {
    memory_worker_registry reg;
    test::scenario_registry_purge(reg);
}

TEST_CASE("coordinator: worker_entry_grace must not be negative; any length is accepted", "[coordinator][registry]") {
    coordinator_options o;
    o.worker_entry_grace = -1ms;
    try {
        o.validate();
        FAIL("validate() accepted a negative worker_entry_grace");
    } catch (const invalid_argument& e) {
        CHECK(e.field() == "worker_entry_grace");
    }
    o.worker_entry_grace = std::chrono::milliseconds::max();
    o.maintenance_interval = 10ms;
    o.worker_timeout = 300ms;
    o.worker_template.heartbeat_interval = 20ms;
    auto reg = std::make_shared<memory_worker_registry>();
    o.registry = reg;
    o.scaling.min_workers = o.scaling.max_workers = 1;
    coordinator c{o};  // worker_timeout + grace saturates: nothing is ever that old
    const auto w = c.get_workers().at(0).id;
    c.suspend_heartbeats(w);
    REQUIRE(test::eventually([&] { return c.get_stats().workers_died == 1; }));
    c.register_handler("t", [](task_context&) { return std::string("ok"); });
    CHECK(c.submit("t", "") == "ok");
    const auto dead = reg->get(w);  // kept (its grace never ends), marked dead
    REQUIRE(dead);
    CHECK(dead->status == worker_status::error);
}
