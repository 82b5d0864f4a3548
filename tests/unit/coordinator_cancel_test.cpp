// Coordinator: cancellation of queued and running tasks.
#include "unit/coordinator_test_support.hpp"

// ---------------------------------------------------------------------------
// cancellation
// ---------------------------------------------------------------------------

TEST_CASE("coordinator: cancelling a queued task removes it at once; it never starts", "[coordinator][cancel]") {
    gate g;
    recorder rec;
    std::atomic<int> started{0}, victim_runs{0};
    oc::coordinator c{fast_options(1, 1)};
    gate_guard guard{g};
    rec.attach(c);
    c.register_handler("block", [&](oc::task_context&) {
        ++started;
        g.wait();
        return std::string("ok");
    });
    c.register_handler("victim", [&](oc::task_context&) {
        ++victim_runs;
        return std::string("ran");
    });
    c.register_handler("after", [](oc::task_context&) { return std::string("after"); });

    auto blocker = c.submit_async("block", "");
    REQUIRE(eventually([&] { return started.load() == 1; }));
    auto victim = c.submit_async("victim", "");
    REQUIRE(victim);
    const auto id = victim.handle.id();
    REQUIRE(st(c.get_status(id)) == "queued");

    CHECK(c.cancel(id));
    CHECK(st(c.get_status(id)) == "cancelled");  // at once, no handler involved
    CHECK_FALSE(c.cancel(id));                    // already finished
    CHECK_FALSE(c.cancel("no-such-task"));
    const auto r = victim.handle.wait_for(0ms);
    REQUIRE(r);
    CHECK(st(r) == "cancelled");
    CHECK(r->attempts == 0);
    CHECK_FALSE(r->started_at.has_value());
    CHECK_THROWS_AS(victim.handle.get(), oc::cancelled_error);
    CHECK(c.get_stats().queued == 0);

    g.open();
    CHECK(blocker.handle.get() == "ok");
    // FIFO: a task submitted after the victim has run, so the victim would have.
    CHECK(c.submit("after", "") == "after");
    CHECK(victim_runs.load() == 0);
    CHECK(rec.count(oc::event_kind::task_started, id) == 0);
    CHECK(rec.count(oc::event_kind::task_cancelled, id) == 1);
    CHECK(c.get_stats().cancelled == 1);
}

TEST_CASE("coordinator: cancelling a running task is cooperative", "[coordinator][cancel]") {
    oc::coordinator c{fast_options()};

    SECTION("throw_if_cancelled") {
        std::promise<void> started;
        std::atomic<int> saw{0};
        c.register_handler("coop", [&](oc::task_context& ctx) {
            started.set_value();
            const auto until = steady::now() + 5s;
            while (!ctx.cancellation_requested() && steady::now() < until) std::this_thread::sleep_for(1ms);
            saw = ctx.cancellation_requested() ? 1 : 0;
            try {
                ctx.throw_if_cancelled();
            } catch (const oc::cancelled_error&) {
                saw = 2;
                throw;
            }
            return std::string("not cancelled");
        });
        auto r = c.submit_async("coop", "");
        REQUIRE(r);
        REQUIRE(started.get_future().wait_for(5s) == std::future_status::ready);
        CHECK(c.cancel(r.handle.id()));
        const auto done = r.handle.wait_for(3s);
        REQUIRE(done);
        CHECK(st(done) == "cancelled");
        CHECK(saw.load() == 2);
        CHECK_FALSE(c.cancel(r.handle.id()));
        CHECK_FALSE(c.get_result(r.handle.id()).has_value());
        CHECK_THROWS_AS(r.handle.get(), oc::cancelled_error);
        CHECK(c.get_stats().stale_token_refusals == 0);
    }

    SECTION("a handler that returns normally after the request still ends cancelled") {
        std::promise<void> started;
        std::atomic<bool> woke_early{false};
        c.register_handler("coop", [&](oc::task_context& ctx) {
            started.set_value();
            const auto t0 = steady::now();
            auto msgs = ctx.receive_for(5s);  // returns early, empty, on cancellation
            woke_early = msgs.empty() && steady::now() - t0 < 4s && ctx.cancellation_requested();
            return std::string("finished anyway");
        });
        auto r = c.submit_async("coop", "");
        REQUIRE(r);
        REQUIRE(started.get_future().wait_for(5s) == std::future_status::ready);
        CHECK(c.cancel(r.handle.id()));
        const auto done = r.handle.wait_for(3s);
        REQUIRE(done);
        CHECK(st(done) == "cancelled");
        CHECK(done->result.empty());
        CHECK(woke_early.load());
    }
}

TEST_CASE("coordinator: a handler ignoring cancellation is declared cancelled after cancel_grace; "
          "its late completion is refused",
          "[coordinator][cancel][fencing]") {
    auto o = fast_options(2, 2);
    o.cancel_grace = 100ms;
    gate g;
    recorder rec;
    std::promise<void> started;
    std::atomic<int> returned{0};
    oc::coordinator c{o};
    gate_guard guard{g};
    rec.attach(c);
    c.register_handler("stubborn", [&](oc::task_context&) {
        started.set_value();
        g.wait();
        ++returned;
        return std::string("late result");
    });
    auto r = c.submit_async("stubborn", "");
    REQUIRE(r);
    const auto id = r.handle.id();
    REQUIRE(started.get_future().wait_for(5s) == std::future_status::ready);
    CHECK(c.cancel(id));
    const auto done = r.handle.wait_for(3s);  // the handler is still blocked
    REQUIRE(done);
    CHECK(st(done) == "cancelled");
    CHECK_THAT(done->error, Catch::Contains("cancel_grace"));
    CHECK(returned.load() == 0);
    const auto refusals = c.get_stats().stale_token_refusals;

    g.open();
    REQUIRE(eventually([&] { return c.get_stats().stale_token_refusals > refusals; }));
    CHECK(returned.load() == 1);
    CHECK(st(c.get_status(id)) == "cancelled");
    CHECK_FALSE(c.get_result(id).has_value());
    // The counter is raised under the lock, the event published after it.
    CHECK(eventually([&] { return rec.count(oc::event_kind::stale_token_refused, id) == 1; }));
    CHECK(rec.count(oc::event_kind::task_cancelled, id) == 1);
    CHECK(rec.count(oc::event_kind::task_completed, id) == 0);
    // The worker slot the stubborn handler held is free again.
    CHECK(eventually([&] { return c.get_stats().running == 0; }));
}
