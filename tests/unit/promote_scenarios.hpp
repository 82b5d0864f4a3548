// Promoting a delayed task (transport::promote, coordinator::promote),
// written once and run on every backend (tests/unit/coordinator_promote_test.cpp:
// local mode and memory; tests/redis/promote_test.cpp: Redis).
#pragma once

#include <orchcore/coordinator.hpp>
#include <orchcore/transport.hpp>

#include <catch2/catch.hpp>

#include "unit/distributed_scenarios.hpp"

#include <chrono>
#include <future>
#include <string>
#include <thread>

namespace orchcore::test {

using namespace std::chrono_literals;

/// A task nacked with a 1-hour delay is leased at once after promote, and
/// a consumer blocked in wait_for_work is woken for it. Only a delayed
/// task is promoted: unknown, waiting and leased ones are refused.
inline void scenario_transport_promote(const dist_backend_factory& make) {
    auto b = make();
    const auto now = [] { return std::chrono::system_clock::now(); };
    CHECK_FALSE(b.tp->promote("unknown"));
    REQUIRE(b.tp->admit({"d1", priority::normal}).is_accepted);
    CHECK_FALSE(b.tp->promote("d1"));  // waiting
    auto l = b.tp->lease("w", 1, 30s, now());
    REQUIRE(l.size() == 1);
    CHECK_FALSE(b.tp->promote("d1"));  // leased
    REQUIRE(b.tp->nack("d1", l[0].token, std::chrono::hours(1), now()));
    CHECK(b.tp->lease("w", 1, 30s, now()).empty());
    auto woken = std::async(std::launch::async, [&] { return b.tp->wait_for_work(30s); });
    std::this_thread::sleep_for(50ms);  // likely blocked by now; promoted earlier, it must return true all the same
    REQUIRE(b.tp->promote("d1"));
    REQUIRE(woken.wait_for(20s) == std::future_status::ready);
    CHECK(woken.get());
    CHECK_FALSE(b.tp->promote("d1"));  // waiting again
    auto again = b.tp->lease("w", 1, 30s, now());
    REQUIRE(again.size() == 1);
    CHECK(again[0].task_id == "d1");
    CHECK(again[0].attempt == 2);
    CHECK(b.tp->stats().delayed == 0);
}

/// coordinator::promote on a coordinator with at least one worker: a task
/// continued with a 1-hour delay runs its next turn at once when promoted;
/// promote of an unknown, running or finished task is false and changes
/// nothing.
inline void scenario_coordinator_promote(coordinator& c) {
    c.register_handler("later", [](task_context& ctx) -> std::string {
        if (ctx.turn() == 0) {
            ctx.continue_later(std::chrono::hours(1));
            return {};
        }
        return "turn " + std::to_string(ctx.turn());
    });
    std::promise<void> started, release;
    auto released = release.get_future().share();
    c.register_handler("hold", [&started, released](task_context&) -> std::string {
        started.set_value();
        (void)released.wait_for(60s);
        return "held";
    });
    CHECK_FALSE(c.promote("unknown"));

    task_options o;
    o.id = "later-1";
    REQUIRE(c.submit_async("later", "", o));
    // Until the first turn has put the task back, there is nothing to promote.
    REQUIRE(dist_eventually([&] { return c.promote("later-1"); }, 20s));
    const auto done = c.wait_for("later-1", 20s);
    REQUIRE(done);
    CHECK(done->status == task_status::completed);
    CHECK(done->result == "turn 1");
    CHECK_FALSE(c.promote("later-1"));  // finished

    o.id = "hold-1";
    REQUIRE(c.submit_async("hold", "", o));
    REQUIRE(started.get_future().wait_for(20s) == std::future_status::ready);
    CHECK_FALSE(c.promote("hold-1"));  // running
    release.set_value();
    const auto held = c.wait_for("hold-1", 20s);
    REQUIRE(held);
    CHECK(held->status == task_status::completed);
}

}  // namespace orchcore::test
