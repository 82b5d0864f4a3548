// Resource-aware placement scenarios, run on the memory backend
// (tests/unit/coordinator_placement_test.cpp) and on Redis
// (tests/redis/placement_redis_test.cpp).
#pragma once

#include "unit/distributed_scenarios.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <set>

namespace orchcore::test {

// Options of a coordinator with no workers of its own (the scenarios add
// them) and a registry set.
using placement_factory = std::function<coordinator_options()>;

inline coordinator_options local_placement() {
    coordinator_options o;
    o.registry = std::make_shared<memory_worker_registry>();
    o.worker_template.heartbeat_interval = 20ms;
    o.worker_timeout = 3000ms;
    o.default_backoff = {.base = 1ms, .cap = 5ms};
    o.maintenance_interval = 50ms;
    o.cancel_grace = 300ms;
    o.scaling.min_workers = 0;
    o.scaling.max_workers = 4;
    return o;
}

inline placement_factory node_placement(dist_backend_factory make) {
    return [make = std::move(make)] { return node_options(make(), 0, "placement"); };
}

inline worker_options gpu_worker(std::string id, std::vector<gpu_device> gpus, std::size_t slots = 4) {
    worker_options w;
    w.id = std::move(id);
    w.max_concurrent = slots;
    w.heartbeat_interval = 20ms;
    w.resources.cpu_millis = 8000;
    w.resources.memory_mb = 32000;
    w.resources.gpus = std::move(gpus);
    return w;
}

inline task_options asking_gpus(std::uint32_t n, std::string type) {
    task_options o;
    o.resources.gpu = {n, std::move(type), 0};
    return o;
}

// A task asking for "a100" GPUs runs only on the worker with "a100"s, never
// on the one with "a100-80g"s (types match exactly); a request only the
// inventory of no live worker covers is refused at submission.
inline void scenario_gpu_type_exact(const placement_factory& make) {
    auto o = make();
    coordinator c{o};
    c.add_worker(gpu_worker("big", {{"a100-80g", 80000}, {"a100-80g", 80000}}));
    c.add_worker(gpu_worker("small", {{"a100", 40000}}));
    c.register_handler("where", [](task_context& ctx) { return ctx.worker_id(); });
    REQUIRE(dist_eventually([&] { return o.registry->list({}).size() == 2; }));
    auto one = c.submit_async("where", "", asking_gpus(1, "a100"));
    auto two = c.submit_async("where", "", asking_gpus(2, "a100-80g"));
    REQUIRE(one);
    REQUIRE(two);
    CHECK(one.handle.get() == "small");
    CHECK(two.handle.get() == "big");
    // Substrings do not match: "a100" is not a prefix match for "a100-8".
    try {
        (void)c.submit_async("where", "", asking_gpus(1, "a100-8"));
        FAIL("an unplaceable request was admitted");
    } catch (const unplaceable_error& e) {
        CHECK(e.code() == errc::unplaceable);
        CHECK(std::string(e.what()).find("\"a100-8\"") != std::string::npos);
    }
    // The registry publishes each worker's inventory.
    const auto big = o.registry->get("big");
    REQUIRE(big);
    CHECK(big->resources.gpus.size() == 2);
    CHECK(big->resources.gpus[0].type == "a100-80g");
    c.stop();
}

// Two tasks each asking for the worker's only GPU: the second waits (no
// attempt, no retry used) until the first ends, then runs.
inline void scenario_hold_until_attempt_ends(const placement_factory& make) {
    coordinator c{make()};
    c.add_worker(gpu_worker("g", {{"t4", 16000}}));
    gate g;
    gate_guard guard{g};
    std::atomic<int> running{0}, most{0};
    c.register_handler("gpu", [&](task_context&) {
        const int now = ++running;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {}
        g.wait();
        --running;
        return std::string("ok");
    });
    auto o = asking_gpus(1, "t4");
    o.max_retries = 0;
    auto first = c.submit_async("gpu", "", o);
    auto second = c.submit_async("gpu", "", o);
    REQUIRE(first);
    REQUIRE(second);
    REQUIRE(dist_eventually([&] { return running.load() == 1; }));
    std::this_thread::sleep_for(100ms);  // the second has had time to be tried
    CHECK(running.load() == 1);
    const auto waiting = c.get_task(second.handle.id());
    REQUIRE(waiting);
    CHECK(waiting->status == task_status::queued);
    CHECK(waiting->attempts == 0);
    CHECK(waiting->retries == 0);
    g.open();
    CHECK(first.handle.get() == "ok");
    CHECK(second.handle.get() == "ok");
    CHECK(most.load() == 1);
    const auto done = c.get_task(second.handle.id());
    REQUIRE(done);
    CHECK(done->attempts == 1);
    CHECK(done->retries == 0);
    c.stop();
}

// Every end of an attempt gives its resources back: failure with a retry,
// continuation, timeout, cancellation and completion; then a task asking for
// the whole worker still runs.
inline void scenario_release_on_every_end(const placement_factory& make) {
    auto o = make();
    o.cancel_grace = 100ms;
    coordinator c{o};
    c.add_worker(gpu_worker("g", {{"t4", 16000}, {"t4", 16000}}, 8));
    std::atomic<int> fails{0};
    c.register_handler("flaky", [&](task_context&) -> std::string {
        if (++fails == 1) throw std::runtime_error("once");
        return "ok";
    });
    c.register_handler("turns", [](task_context& ctx) -> std::string {
        if (ctx.turn() == 0) ctx.continue_later(1ms);
        return "ok";
    });
    c.register_handler("slow", [](task_context& ctx) {
        while (!ctx.cancellation_requested()) std::this_thread::sleep_for(2ms);
        return std::string("stopped");
    });
    c.register_handler("ok", [](task_context&) { return std::string("ok"); });
    auto gpu = asking_gpus(1, "t4");
    auto flaky = gpu;
    flaky.max_retries = 2;
    CHECK(c.submit("flaky", "", flaky) == "ok");
    CHECK(c.submit("turns", "", gpu) == "ok");
    auto timed = gpu;
    timed.turn_timeout = 50ms;
    timed.max_retries = 0;
    auto t = c.submit_async("slow", "", timed);
    REQUIRE(t);
    CHECK(status_of(t.handle.wait_for(10s)) == "timed_out");
    auto k = c.submit_async("slow", "", gpu);
    REQUIRE(k);
    REQUIRE(dist_eventually([&] { return c.get_status(k.handle.id()) == task_status::running; }));
    c.cancel(k.handle.id());
    CHECK(status_of(k.handle.wait_for(10s)) == "cancelled");
    REQUIRE(dist_eventually([&] {
        const auto ws = c.get_workers();
        return ws.size() == 1 && ws[0].free.gpus.size() == 2;
    }));
    auto all = asking_gpus(2, "t4");
    all.resources.cpu_millis = 8000;
    all.resources.memory_mb = 32000;
    CHECK(c.submit("ok", "", all) == "ok");
    c.stop();
}

// Tasks of one session go to the worker the session is bound to, and move
// to another worker once it is declared dead.
inline void scenario_session_affinity(const placement_factory& make) {
    auto o = make();
    o.worker_timeout = 300ms;
    coordinator c{o};
    c.add_worker(gpu_worker("w1", {}));
    c.add_worker(gpu_worker("w2", {}));
    c.register_handler("where", [](task_context& ctx) { return ctx.worker_id(); });
    task_options s;
    s.session = "chat-42";
    const auto first = c.submit("where", "", s);
    for (int i = 0; i < 5; ++i) CHECK(c.submit("where", "", s) == first);
    c.suspend_heartbeats(first);
    REQUIRE(dist_eventually([&] {
        const auto ws = c.get_workers();
        return ws.size() == 1;
    }));
    const auto moved = c.submit("where", "", s);
    CHECK(moved != first);
    CHECK(c.submit("where", "", s) == moved);
    c.stop(stop_mode::abort, 2s);
}

// With placement_wait, a request no worker could ever hold waits, then
// fails naming it without using an attempt; one a worker added meanwhile
// can hold runs.
inline void scenario_placement_wait(const placement_factory& make) {
    // A coordinator with a CPU-only worker, asked for an "h100".
    auto run = [&](std::chrono::milliseconds wait, bool add_gpu_worker) {
        auto o = make();
        o.placement_wait = wait;
        coordinator c{o};
        c.add_worker(gpu_worker("cpu-only", {}));
        c.register_handler("gpu", [](task_context&) { return std::string("ran"); });
        auto h = c.submit_async("gpu", "", asking_gpus(1, "h100"));
        REQUIRE(h);
        if (add_gpu_worker) c.add_worker(gpu_worker("h", {{"h100", 80000}}));
        auto r = h.handle.wait_for(20s);
        c.stop();
        return r;
    };
    SECTION("no worker comes: failed after the wait, no attempt") {
        const auto r = run(200ms, false);
        REQUIRE(status_of(r) == "failed");
        CHECK(r->attempts == 0);
        CHECK(r->error.find("unplaceable") != std::string::npos);
        CHECK(r->error.find("\"h100\"") != std::string::npos);
    }
    SECTION("a worker that fits is added meanwhile: it runs") {
        const auto r = run(std::chrono::hours(1), true);
        REQUIRE(status_of(r) == "completed");
        CHECK(r->result == "ran");
    }
}

}  // namespace orchcore::test
