// Wake-ups without polling, written once and run over both backends
// (tests/unit/wakeup_test.cpp: memory; tests/redis/wakeup_test.cpp: Redis):
// transport::wait_for_work / interrupt_waits and the finish notifications
// (publish_finished / watch_finished), and the coordinator built on them:
// an idle worker node starts a task admitted elsewhere, a producer node's
// wait returns when the task ends on another node, stop() of an idle node
// is prompt, a delayed retry on an idle node still runs.
#pragma once

#include <orchcore/coordinator.hpp>
#include <orchcore/transport.hpp>

#include <catch2/catch.hpp>

#include "unit/distributed_scenarios.hpp"

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace orchcore::test {

using namespace std::chrono_literals;

/// A consumer blocked in wait_for_work is woken by an admission: it does
/// not sit out its timeout (the bounded wait of the test is far shorter
/// than a timeout that is not cut short). For Redis the block is at most
/// half the command timeout (2.5 s with the test server's options), after
/// which it returns false: a lost wake fails the check.
inline void scenario_wait_for_work_woken_by_admission(const dist_backend_factory& make) {
    auto b = make();
    auto woken = std::async(std::launch::async, [&] { return b.tp->wait_for_work(30s); });
    std::this_thread::sleep_for(50ms);  // likely blocked by now; admitted earlier, it must return true all the same
    REQUIRE(b.tp->admit({"t1", priority::normal}).is_accepted);
    REQUIRE(woken.wait_for(20s) == std::future_status::ready);
    CHECK(woken.get());
    CHECK(b.tp->lease("w", 1, 1000ms, std::chrono::system_clock::now()).size() == 1);
}

/// Two consumers wait, one task arrives: at least one of them wakes.
inline void scenario_wake_not_lost_between_two_waiters(const dist_backend_factory& make) {
    auto b = make();
    auto wait = [&] { return b.tp->wait_for_work(2000ms); };
    auto w1 = std::async(std::launch::async, wait);
    auto w2 = std::async(std::launch::async, wait);
    std::this_thread::sleep_for(50ms);
    REQUIRE(b.tp->admit({"t1", priority::normal}).is_accepted);
    REQUIRE(w1.wait_for(20s) == std::future_status::ready);
    REQUIRE(w2.wait_for(20s) == std::future_status::ready);
    const bool a = w1.get(), c = w2.get();
    CHECK((a || c));
}

/// interrupt_waits() ends a long wait (and one that starts just after it).
inline void scenario_interrupt_ends_wait(const dist_backend_factory& make) {
    auto b = make();
    auto w = std::async(std::launch::async, [&] { return b.tp->wait_for_work(30s); });
    std::this_thread::sleep_for(50ms);
    b.tp->interrupt_waits();
    REQUIRE(w.wait_for(20s) == std::future_status::ready);
    CHECK(w.get());
}

/// A task nacked with a delay wakes a waiting consumer when it is due, and
/// is then leased.
inline void scenario_delayed_task_wakes_waiter(const dist_backend_factory& make) {
    auto b = make();
    REQUIRE(b.tp->admit({"d1", priority::normal}).is_accepted);
    auto l = b.tp->lease("w", 1, 5000ms, std::chrono::system_clock::now());
    REQUIRE(l.size() == 1);
    REQUIRE(b.tp->nack("d1", l[0].token, 300ms, std::chrono::system_clock::now()));
    std::vector<transport_lease> got;
    for (int i = 0; i < 100 && got.empty(); ++i) {
        if (b.tp->wait_for_work(30s))
            got = b.tp->lease("w", 1, 5000ms, std::chrono::system_clock::now());
    }
    REQUIRE(got.size() == 1);
    CHECK(got[0].task_id == "d1");
}

/// A consumer already blocked when a task is nacked with a delay is woken
/// for it: its wait was cut at no due time (there was none), so without a
/// wake it would sit out its whole timeout (on Redis, half the command
/// timeout: 2.5 s here, after which it returns false; in memory, 30 s).
inline void scenario_delay_during_wait_wakes_waiter(const dist_backend_factory& make) {
    auto b = make();
    REQUIRE(b.tp->admit({"d1", priority::normal}).is_accepted);
    auto l = b.tp->lease("w", 1, 5000ms, std::chrono::system_clock::now());
    REQUIRE(l.size() == 1);
    auto w = std::async(std::launch::async, [&] { return b.tp->wait_for_work(30s); });
    std::this_thread::sleep_for(50ms);  // likely blocked by now; earlier, it must see the delay all the same
    REQUIRE(b.tp->nack("d1", l[0].token, 200ms, std::chrono::system_clock::now()));
    REQUIRE(w.wait_for(20s) == std::future_status::ready);
    CHECK(w.get());
}

/// Finish notifications reach a watcher, in order for one publisher; a
/// destroyed watch gets nothing more.
inline void scenario_finish_notifications(const dist_backend_factory& make) {
    auto b = make();
    std::mutex m;
    std::vector<std::string> seen;
    auto watch = b.tp->watch_finished([&](const std::string& id) {
        std::lock_guard lk(m);
        if (!id.empty()) seen.push_back(id);
    });
    REQUIRE(watch);
    auto count = [&] {
        std::lock_guard lk(m);
        return seen.size();
    };
    // The subscription may take a moment (Redis): publish a probe until it arrives.
    REQUIRE(dist_eventually([&] {
        const std::string probe = "probe";
        b.tp->publish_finished(std::span<const std::string>(&probe, 1));
        return count() > 0;
    }));
    const std::vector<std::string> ids{"a", "b", "c"};
    {
        std::lock_guard lk(m);
        seen.clear();
    }
    b.tp->publish_finished(ids);
    REQUIRE(dist_eventually([&] { return count() >= 3; }));
    {
        std::lock_guard lk(m);
        const std::vector<std::string> tail(seen.end() - 3, seen.end());
        CHECK(tail == ids);
    }
    watch.reset();
    const auto before = count();
    b.tp->publish_finished(ids);
    CHECK(count() == before);
}

/// One task at a time, each submitted while the worker node is idle: each
/// starts, and the producer-only node's wait (sync, then a coroutine)
/// returns its result.
inline void scenario_idle_worker_node_runs_task(const dist_backend_factory& make) {
    auto b = make();
    coordinator producer{node_options(b, 0, "producer")};
    coordinator worker_node{node_options(b, 1, "workers")};
    worker_node.register_handler("echo", [](task_context& ctx) { return "done:" + ctx.payload(); });
    for (int i = 0; i < 5; ++i) {
        auto r = producer.submit_async("echo", std::to_string(i));
        REQUIRE(r);
        auto done = r.handle.wait_for(20s);
        REQUIRE(done);
        CHECK(status_of(done) == "completed");
        CHECK(done->result == "done:" + std::to_string(i));
    }
    CHECK(producer.submit("echo", "sync") == "done:sync");
}

/// Two idle worker nodes, one task at a time: each completes (a wake is
/// not lost to the node that does not take the task).
inline void scenario_two_idle_worker_nodes(const dist_backend_factory& make) {
    auto b = make();
    coordinator producer{node_options(b, 0, "producer")};
    coordinator n1{node_options(b, 1, "n1")};
    coordinator n2{node_options(b, 1, "n2")};
    for (auto* n : {&n1, &n2}) n->register_handler("echo", [](task_context& ctx) { return ctx.payload(); });
    for (int i = 0; i < 6; ++i) {
        auto done = producer.submit_async("echo", std::to_string(i)).handle.wait_for(20s);
        REQUIRE(done);
        CHECK(status_of(done) == "completed");
    }
    // (A node counts its completion just after announcing it.)
    CHECK(dist_eventually([&] { return n1.get_stats().completed + n2.get_stats().completed == 6; }));
}

/// stop() of a node whose feed waits for work returns (a hang check, not a
/// timing claim: the bound is generous).
inline void scenario_idle_node_stops(const dist_backend_factory& make) {
    auto b = make();
    auto node = std::make_unique<coordinator>(node_options(b, 2, "idle"));
    node->register_handler("echo", [](task_context& ctx) { return ctx.payload(); });
    // One task run, so the node has leased, found the queue empty and waits.
    REQUIRE(node->submit_async("echo", "x").handle.wait_for(20s));
    auto stopped = std::async(std::launch::async, [&] { node->stop(); });
    REQUIRE(stopped.wait_for(20s) == std::future_status::ready);
    stopped.get();
}

/// A retry delayed on the idle node's queue runs when due, without another
/// submission to wake the node.
inline void scenario_delayed_retry_on_idle_node(const dist_backend_factory& make) {
    auto b = make();
    auto o = node_options(b, 1, "workers");
    o.default_backoff = {.base = 300ms, .cap = 300ms, .jitter = false};
    coordinator producer{node_options(b, 0, "producer")};
    coordinator worker_node{o};
    std::atomic<int> calls{0};
    worker_node.register_handler("flaky", [&](task_context&) -> std::string {
        if (calls.fetch_add(1) == 0) throw std::runtime_error("first attempt fails");
        return "ok";
    });
    task_options t;
    t.max_retries = 3;
    t.backoff = backoff_policy{.base = 300ms, .cap = 300ms, .jitter = false};
    auto r = producer.submit_async("flaky", "", t);
    REQUIRE(r);
    auto done = r.handle.wait_for(20s);
    REQUIRE(done);
    CHECK(status_of(done) == "completed");
    CHECK(done->attempts == 2);
}

}  // namespace orchcore::test
