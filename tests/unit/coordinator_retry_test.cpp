// Coordinator: retries and the slots of retried attempts.
#include "unit/coordinator_test_support.hpp"

// ---------------------------------------------------------------------------
// retries
// ---------------------------------------------------------------------------

TEST_CASE("coordinator: failed attempts are retried up to max_retries", "[coordinator][retry]") {
    recorder rec;
    oc::coordinator c{fast_options()};
    rec.attach(c);

    SECTION("two failures, then success") {
        std::atomic<int> calls{0};
        std::atomic<bool> attempt_numbers_ok{true};
        c.register_handler("flaky", [&](oc::task_context& ctx) {
            const int n = ++calls;
            if (ctx.attempt() != static_cast<std::uint32_t>(n)) attempt_numbers_ok = false;
            if (n <= 2) throw std::runtime_error("boom " + std::to_string(n));
            return std::string("ok");
        });
        auto r = c.submit_async("flaky", "", with_retries(3));
        REQUIRE(r);
        CHECK(r.handle.get() == "ok");
        const auto done = c.get_task(r.handle.id());
        REQUIRE(done);
        CHECK(done->retries == 2);
        CHECK(done->attempts == 3);
        CHECK(calls.load() == 3);
        CHECK(attempt_numbers_ok.load());
        CHECK(rec.count(oc::event_kind::task_retried, r.handle.id()) == 2);
        CHECK(rec.count(oc::event_kind::task_started, r.handle.id()) == 3);
        CHECK(c.get_stats().retried == 2);
    }

    SECTION("non_retryable_error fails after one attempt") {
        std::atomic<int> calls{0};
        c.register_handler("fatal", [&](oc::task_context&) -> std::string {
            ++calls;
            throw oc::non_retryable_error("fatal: bad input");
        });
        auto r = c.submit_async("fatal", "", with_retries(5));
        REQUIRE(r);
        const auto done = r.handle.wait_for(5s);
        REQUIRE(done);
        CHECK(st(done) == "failed");
        CHECK(done->error == "fatal: bad input");
        CHECK(done->attempts == 1);
        CHECK(done->retries == 0);
        CHECK(calls.load() == 1);
        CHECK(rec.count(oc::event_kind::task_retried, r.handle.id()) == 0);
        try {
            (void)r.handle.get();
            FAIL("expected task_failed_error");
        } catch (const oc::task_failed_error& e) {
            CHECK(e.record().status == oc::task_status::failed);
            CHECK_THAT(std::string(e.what()), Catch::Contains("fatal: bad input"));
        }
    }

    SECTION("retries exhausted: failed with the last error") {
        std::atomic<int> calls{0};
        c.register_handler("broken", [&](oc::task_context&) -> std::string {
            ++calls;
            throw std::runtime_error("always broken");
        });
        try {
            (void)c.submit("broken", "", with_retries(2));
            FAIL("expected task_failed_error");
        } catch (const oc::task_failed_error& e) {
            CHECK(e.code() == oc::errc::task_failed);
            CHECK(e.record().status == oc::task_status::failed);
            CHECK(e.record().error == "always broken");
            CHECK(e.record().attempts == 3);
            CHECK(e.record().retries == 2);
            CHECK_THAT(std::string(e.what()), Catch::Contains("always broken"));
        }
        CHECK(calls.load() == 3);
        CHECK(c.get_stats().failed == 1);
    }

    SECTION("non-standard exceptions fail the task too") {
        c.register_handler("weird", [](oc::task_context&) -> std::string { throw 42; });
        auto r = c.submit_async("weird", "", with_retries(0));
        REQUIRE(r);
        const auto done = r.handle.wait_for(5s);
        REQUIRE(done);
        CHECK(st(done) == "failed");
        CHECK(done->error == "unknown exception");
    }
}

TEST_CASE("coordinator: waiting for a worker consumes no retries and no turn timeout", "[coordinator][retry]") {
    gate g;
    std::atomic<int> started{0};
    oc::coordinator c{fast_options(1, 1)};
    gate_guard guard{g};
    c.register_handler("block", [&](oc::task_context&) {
        ++started;
        g.wait();
        return std::string();
    });
    c.register_handler("quick", [](oc::task_context&) { return std::string("quick"); });
    auto b = c.submit_async("block", "");
    REQUIRE(eventually([&] { return started.load() == 1; }));
    oc::task_options o;
    o.max_retries = 0;
    o.turn_timeout = 100ms;
    auto r = c.submit_async("quick", "", o);
    REQUIRE(r);
    std::this_thread::sleep_for(300ms);  // waits three times its turn timeout
    CHECK(st(c.get_status(r.handle.id())) == "queued");
    g.open();
    const auto done = r.handle.wait_for(5s);
    REQUIRE(done);
    CHECK(st(done) == "completed");
    CHECK(done->attempts == 1);
    CHECK(done->retries == 0);
}
