// Coordinator: graceful and abort stops.
#include "unit/coordinator_test_support.hpp"

// ---------------------------------------------------------------------------
// stop
// ---------------------------------------------------------------------------

TEST_CASE("coordinator: graceful stop finishes in-flight tasks and then rejects new ones", "[coordinator][stop]") {
    std::atomic<int> done_count{0};
    recorder rec;
    oc::coordinator c{fast_options(2, 2)};
    rec.attach(c);
    c.register_handler("work", [&](oc::task_context& ctx) {
        std::this_thread::sleep_for(20ms);  // the work itself
        ++done_count;
        return ctx.payload();
    });
    std::vector<std::string> ids;
    for (int i = 0; i < 10; ++i) {
        auto r = c.submit_async("work", std::to_string(i));
        REQUIRE(r);
        ids.push_back(r.handle.id());
    }
    CHECK(c.stop(oc::stop_mode::graceful, 5s));
    CHECK(done_count.load() == 10);
    for (std::size_t i = 0; i < ids.size(); ++i) {
        CHECK(st(c.get_task(ids[i])) == "completed");
        CHECK(c.get_result(ids[i]) == std::to_string(i));
    }
    CHECK(c.get_stats().completed == 10);

    auto late = c.submit_async("work", "late");
    CHECK_FALSE(late.accepted());
    CHECK(late.admission.reason == oc::rejection_reason::closed);
    try {
        (void)c.submit("work", "late");
        FAIL("expected rejected_error");
    } catch (const oc::rejected_error& e) {
        CHECK(e.reason() == oc::rejection_reason::closed);
    }
    CHECK(c.post("work", "late").reason == oc::rejection_reason::closed);
    CHECK(c.stop());  // idempotent
    CHECK_THROWS_AS(c.scale(3), oc::shutdown_error);
    CHECK_THROWS_AS(c.add_worker({}), oc::shutdown_error);
    CHECK(rec.count(oc::event_kind::task_completed) == 10);
}

TEST_CASE("coordinator: stop(abort) cancels queued tasks at once and running ones cooperatively",
          "[coordinator][stop]") {
    std::atomic<int> started{0}, saw_cancel{0};
    recorder rec;
    oc::coordinator c{fast_options(1, 1)};
    rec.attach(c);
    c.register_handler("coop", [&](oc::task_context& ctx) {
        ++started;
        return run_until_cancelled(ctx, saw_cancel);
    });
    auto running = c.submit_async("coop", "");
    REQUIRE(eventually([&] { return started.load() == 1; }));
    std::vector<oc::task_handle> queued;
    for (int i = 0; i < 3; ++i) queued.push_back(c.submit_async("coop", "").handle);
    const auto t0 = steady::now();
    CHECK_FALSE(c.stop(oc::stop_mode::abort, 30s));
    CHECK(steady::now() - t0 < 2s);  // abort does not wait for the deadline
    CHECK(st(c.get_task(running.handle.id())) == "cancelled");
    CHECK(saw_cancel.load() == 1);
    for (auto& h : queued) {
        const auto r = c.get_task(h.id());
        CHECK(st(r) == "cancelled");
        CHECK(r->attempts == 0);
        CHECK(rec.count(oc::event_kind::task_cancelled, h.id()) == 1);
    }
    CHECK(started.load() == 1);
}

TEST_CASE("coordinator: graceful stop past its deadline cancels what is left", "[coordinator][stop]") {
    std::atomic<int> saw_cancel{0};
    oc::coordinator c{fast_options(1, 1)};
    c.register_handler("coop", [&](oc::task_context& ctx) { return run_until_cancelled(ctx, saw_cancel); });
    auto a = c.submit_async("coop", "");
    auto b = c.submit_async("coop", "");
    REQUIRE(eventually([&] { return st(c.get_status(a.handle.id())) == "running"; }));
    CHECK_FALSE(c.stop(oc::stop_mode::graceful, 50ms));
    CHECK(st(c.get_task(a.handle.id())) == "cancelled");
    CHECK(st(c.get_task(b.handle.id())) == "cancelled");
    CHECK(saw_cancel.load() == 1);
}
