// Coordinator: turn and task timeouts.
#include "unit/coordinator_test_support.hpp"

// ---------------------------------------------------------------------------
// timeouts
// ---------------------------------------------------------------------------

TEST_CASE("coordinator: turn and task timeouts", "[coordinator][timeout]") {
    recorder rec;
    std::atomic<int> saw_cancel{0};
    oc::coordinator c{fast_options()};
    rec.attach(c);
    c.register_handler("hang", [&](oc::task_context& ctx) { return run_until_cancelled(ctx, saw_cancel); });
    c.register_handler("slow-then-fast", [&](oc::task_context& ctx) {
        if (ctx.attempt() == 1) return run_until_cancelled(ctx, saw_cancel);
        return std::string("fast");
    });

    SECTION("turn timeout without retries: timed_out, and the handler is asked to cancel") {
        oc::task_options o;
        o.turn_timeout = 50ms;
        o.max_retries = 0;
        auto r = c.submit_async("hang", "", o);
        REQUIRE(r);
        const auto done = r.handle.wait_for(3s);
        REQUIRE(done);
        CHECK(st(done) == "timed_out");
        CHECK(done->error == "turn timeout");
        CHECK(done->attempts == 1);
        REQUIRE(eventually([&] { return saw_cancel.load() == 1; }));
        // Its late return is refused, the record keeps its outcome.
        REQUIRE(eventually([&] { return c.get_stats().stale_token_refusals >= 1; }));
        CHECK(st(c.get_status(r.handle.id())) == "timed_out");
        CHECK_FALSE(c.get_result(r.handle.id()).has_value());
        CHECK(c.get_stats().timed_out == 1);
        CHECK(rec.count(oc::event_kind::task_timed_out, r.handle.id()) == 1);
        CHECK_THROWS_AS(r.handle.get(), oc::task_failed_error);
    }

    SECTION("turn timeout with retries: retried, then a fast attempt completes") {
        oc::task_options o;
        o.turn_timeout = 80ms;
        o.max_retries = 2;
        auto r = c.submit_async("slow-then-fast", "", o);
        REQUIRE(r);
        CHECK(r.handle.get() == "fast");
        const auto done = c.get_task(r.handle.id());
        CHECK(done->attempts == 2);
        CHECK(done->retries == 1);
        REQUIRE(eventually([&] { return saw_cancel.load() == 1; }));
        auto evs = rec.of(r.handle.id());
        const auto retried = std::count_if(evs.begin(), evs.end(), [](const oc::event& e) {
            return e.kind == oc::event_kind::task_retried && e.detail == "turn timeout";
        });
        CHECK(retried == 1);
    }

    SECTION("whole-task timeout while running: timed_out despite retries left") {
        oc::task_options o;
        o.timeout = 100ms;
        o.max_retries = 3;
        const auto t0 = steady::now();
        auto r = c.submit_async("hang", "", o);
        REQUIRE(r);
        const auto done = r.handle.wait_for(3s);
        REQUIRE(done);
        CHECK(st(done) == "timed_out");
        CHECK(done->error == "task timeout");
        CHECK(done->attempts == 1);
        CHECK(steady::now() - t0 >= 90ms);
        REQUIRE(eventually([&] { return saw_cancel.load() == 1; }));
    }
}

TEST_CASE("coordinator: whole-task timeout also runs while the task waits", "[coordinator][timeout]") {
    gate g;
    std::atomic<int> started{0};
    oc::coordinator c{fast_options(1, 1)};
    gate_guard guard{g};
    c.register_handler("block", [&](oc::task_context&) {
        ++started;
        g.wait();
        return std::string();
    });
    auto b = c.submit_async("block", "");
    REQUIRE(eventually([&] { return started.load() == 1; }));
    oc::task_options o;
    o.timeout = 50ms;
    auto r = c.submit_async("block", "", o);
    REQUIRE(r);
    const auto done = r.handle.wait_for(3s);
    REQUIRE(done);
    CHECK(st(done) == "timed_out");
    CHECK(done->attempts == 0);
    CHECK_THAT(done->error, Catch::Contains("task timeout"));
    g.open();
    REQUIRE(b.handle.wait_for(5s));
    CHECK(started.load() == 1);
}

TEST_CASE("coordinator: a retried attempt on the same worker keeps its own slot bookkeeping",
          "[coordinator][timeout][fencing]") {
    // One worker with two slots. Attempt 1 ignores its turn timeout and keeps
    // its slot; attempt 2 runs in the other slot. When attempt 1 finally
    // returns, attempt 2 must still be tracked as running on the worker (and
    // its own turn timeout must still be enforced).
    auto o = fast_options(1, 1);
    o.worker_template.max_concurrent = 2;
    gate first;
    std::atomic<int> second_started{0}, saw_cancel{0}, first_returned{0};
    oc::coordinator c{o};
    gate_guard guard{first};
    c.register_handler("t", [&](oc::task_context& ctx) {
        if (ctx.attempt() == 1) {
            first.wait();
            ++first_returned;
            return std::string("first");
        }
        ++second_started;
        return run_until_cancelled(ctx, saw_cancel);
    });
    oc::task_options to;
    to.turn_timeout = 300ms;
    to.max_retries = 1;
    auto r = c.submit_async("t", "", to);
    REQUIRE(r);
    const auto id = r.handle.id();
    REQUIRE(eventually([&] { return second_started.load() == 1; }, 3s));
    first.open();
    REQUIRE(eventually([&] { return first_returned.load() == 1 && c.get_stats().stale_token_refusals >= 1; }));
    CHECK(st(c.get_status(id)) == "running");
    const auto ws = c.get_workers();
    REQUIRE(ws.size() == 1);
    CHECK(ws[0].current_tasks == std::vector<std::string>{id});
    CHECK(c.get_stats().running == 1);

    const auto done = r.handle.wait_for(3s);
    REQUIRE(done);
    CHECK(st(done) == "timed_out");
    CHECK(done->attempts == 2);
    CHECK(eventually([&] { return saw_cancel.load() == 1; }));
    CHECK(eventually([&] { return c.get_stats().running == 0; }));
}
