// Coordinator: TTL expiry, post(), options validation.
#include "unit/coordinator_test_support.hpp"

#include <cstdint>

// ---------------------------------------------------------------------------
// TTL, post(), options
// ---------------------------------------------------------------------------

TEST_CASE("coordinator: finished tasks expire after their TTL", "[coordinator][ttl]") {
    auto o = fast_options();
    o.completed_ttl = 50ms;
    o.maintenance_interval = 10ms;
    recorder rec;
    oc::coordinator c{o};
    rec.attach(c);
    c.register_handler("ok", [](oc::task_context&) { return std::string("ok"); });
    c.register_handler("bad", [](oc::task_context&) -> std::string { throw std::runtime_error("bad"); });
    auto good = c.submit_async("ok", "");
    auto bad = c.submit_async("bad", "", with_retries(0));
    REQUIRE(good);
    REQUIRE(bad);
    REQUIRE(st(good.handle.wait_for(5s)) == "completed");
    REQUIRE(st(bad.handle.wait_for(5s)) == "failed");

    REQUIRE(eventually([&] { return !c.get_task(good.handle.id()).has_value(); }, 3s));
    CHECK_FALSE(c.get_result(good.handle.id()).has_value());
    CHECK(c.get_stats().expired == 1);
    // The event is published after the record is gone, outside the lock.
    CHECK(eventually([&] { return rec.count(oc::event_kind::task_expired, good.handle.id()) == 1; }, 3s));
    CHECK(st(c.get_task(bad.handle.id())) == "failed");  // failed_ttl is long
    CHECK(c.get_stats().tracked_tasks == 1);
    CHECK_THROWS_AS(good.handle.wait_for(0ms), oc::error);
    // The id is free again.
    CHECK(c.submit("ok", "", with_id(good.handle.id())) == "ok");
}

TEST_CASE("coordinator: each terminal status expires after its own TTL", "[coordinator][ttl]") {
    auto o = fast_options(1, 1);
    o.completed_ttl = std::chrono::hours(1);
    o.failed_ttl = 40ms;
    o.cancelled_ttl = 40ms;
    o.maintenance_interval = 10ms;
    recorder rec;
    oc::test::gate hold;
    oc::coordinator c{o};
    oc::test::gate_guard open_on_exit{hold};
    rec.attach(c);
    c.register_handler("ok", [](oc::task_context&) { return std::string("ok"); });
    c.register_handler("bad", [](oc::task_context&) -> std::string { throw std::runtime_error("bad"); });
    c.register_handler("hold", [&](oc::task_context&) {
        hold.wait();
        return std::string("held");
    });
    // The one worker is held, so this task is cancelled while queued.
    auto held = c.submit_async("hold", "");
    auto cancelled = c.submit_async("ok", "");
    REQUIRE(held);
    REQUIRE(cancelled);
    REQUIRE(c.cancel(cancelled.handle.id()));
    hold.open();
    REQUIRE(held.handle.get() == "held");
    auto good = c.submit_async("ok", "");
    auto bad = c.submit_async("bad", "", with_retries(0));
    REQUIRE(good);
    REQUIRE(bad);
    REQUIRE(st(good.handle.wait_for(5s)) == "completed");
    REQUIRE(st(bad.handle.wait_for(5s)) == "failed");

    REQUIRE(eventually([&] {
        return !c.get_task(bad.handle.id()).has_value() && !c.get_task(cancelled.handle.id()).has_value();
    }, 3s));
    CHECK(eventually([&] { return rec.count(oc::event_kind::task_expired) == 2; }, 3s));
    CHECK(rec.count(oc::event_kind::task_expired, bad.handle.id()) == 1);
    CHECK(rec.count(oc::event_kind::task_expired, cancelled.handle.id()) == 1);
    CHECK(c.get_stats().expired == 2);
    // completed_ttl is an hour: the completed task is still there.
    CHECK(st(c.get_task(good.handle.id())) == "completed");
    CHECK(st(c.get_task(held.handle.id())) == "completed");
    CHECK(c.get_result(good.handle.id()) == "ok");
    CHECK(c.get_stats().tracked_tasks == 2);
}

TEST_CASE("coordinator: post() failures are recorded and published, never swallowed", "[coordinator][post]") {
    std::promise<oc::event> failed;
    std::atomic<bool> once{false};
    oc::coordinator c{fast_options()};
    auto sub = c.events().subscribe(oc::event_channel::tasks, [&](const oc::event& e) {
        if (e.kind == oc::event_kind::task_failed && !once.exchange(true)) failed.set_value(e);
    });
    c.register_handler("explode", [](oc::task_context&) -> std::string { throw std::runtime_error("kaboom"); });
    const auto adm = c.post("explode", "", with_retries(0));
    REQUIRE(adm.accepted());
    REQUIRE(adm.id);
    auto f = failed.get_future();
    REQUIRE(f.wait_for(5s) == std::future_status::ready);
    const auto e = f.get();
    CHECK(e.task_id == *adm.id);
    CHECK(e.detail == "kaboom");
    CHECK(e.status == oc::task_status::failed);
    const auto rec = c.get_task(*adm.id);
    CHECK(st(rec) == "failed");
    CHECK(rec->error == "kaboom");
    CHECK(c.get_stats().failed == 1);
}

TEST_CASE("coordinator: options validation names the offending field", "[coordinator][options]") {
    auto field_of = [](oc::coordinator_options o) -> std::string {
        try {
            o.validate();
        } catch (const oc::invalid_argument& e) {
            return e.field();
        }
        return "<valid>";
    };
    CHECK(field_of(fast_options()) == "<valid>");
    auto o = fast_options();
    o.worker_timeout = o.worker_template.heartbeat_interval;
    CHECK(field_of(o) == "worker_timeout");
    o = fast_options();
    o.autoscale_interval = 0ms;
    CHECK(field_of(o) == "autoscale_interval");
    o = fast_options();
    o.maintenance_interval = -1ms;
    CHECK(field_of(o) == "maintenance_interval");
    o = fast_options();
    o.completed_ttl = 0ms;
    CHECK(field_of(o) == "completed_ttl");
    o = fast_options();
    o.cancel_grace = -1ms;
    CHECK(field_of(o) == "cancel_grace");
    o = fast_options();
    o.default_max_retries = 1001;
    CHECK(field_of(o) == "default_max_retries");
    o = fast_options(3, 2);
    CHECK(field_of(o) == "autoscale.min_workers");
    // A huge worker count is refused, not served by creating threads until
    // the system runs out.
    o = fast_options(1, SIZE_MAX);
    CHECK(field_of(o) == "autoscale.max_workers");
    o = fast_options(oc::max_worker_count + 1, oc::max_worker_count + 1);
    CHECK(field_of(o) == "autoscale.max_workers");
    o = fast_options();
    o.default_backoff = {.base = 10ms, .cap = 5ms};
    CHECK(field_of(o) == "backoff.cap");
    o = fast_options();
    o.worker_template.max_concurrent = 0;
    CHECK(field_of(o) == "worker.max_concurrent");

    // The constructor validates.
    o = fast_options();
    o.worker_timeout = 1ms;
    CHECK_THROWS_AS(oc::coordinator{o}, oc::invalid_argument);

    // add_worker validates the worker's own options.
    oc::coordinator c{fast_options()};
    oc::worker_options wo;
    wo.max_concurrent = 0;
    try {
        (void)c.add_worker(wo);
        FAIL("expected invalid_argument");
    } catch (const oc::invalid_argument& e) {
        CHECK(e.field() == "worker.max_concurrent");
    }
    // A worker that would heartbeat less often than worker_timeout would
    // be declared dead over and over.
    wo = {};
    wo.heartbeat_interval = 5s;
    try {
        (void)c.add_worker(wo);
        FAIL("expected invalid_argument");
    } catch (const oc::invalid_argument& e) {
        CHECK(e.field() == "worker.heartbeat_interval");
    }
    CHECK(c.get_workers().size() == 2);
}
