// Durations up to their type's maximum mean "a very long time", never
// "already expired": every option and argument that is added to a clock is
// tried at ::max() (and the nanosecond-based waits at nanoseconds::max()).
// A few tests leave an observation window (a handful of control ticks) for
// a wrong expiry to show; none asserts how long anything took.
#include <orchcore/admission_queue.hpp>
#include <orchcore/any_admission_queue.hpp>
#include <orchcore/autoscaler.hpp>
#include <orchcore/backoff.hpp>
#include <orchcore/coordinator.hpp>
#include <orchcore/detail/saturating.hpp>

#include <catch2/catch.hpp>
#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include "support/sync_helpers.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <limits>
#include <string>
#include <thread>

namespace oc = orchcore;
using namespace std::chrono_literals;
using orchcore::test::eventually;
using orchcore::test::gate;
using orchcore::test::gate_guard;
using steady = std::chrono::steady_clock;

namespace {

constexpr auto forever = std::chrono::milliseconds::max();
constexpr auto bound = 30s;  // generous bound of every wait for something that does happen

oc::coordinator_options base_options() {
    oc::coordinator_options o;
    o.scaling.min_workers = 1;
    o.scaling.max_workers = 1;
    o.worker_template.heartbeat_interval = 10ms;
    o.worker_timeout = 1000ms;
    o.maintenance_interval = 5ms;
    o.cancel_grace = 200ms;
    o.default_backoff = {.base = 1ms, .cap = 5ms};
    return o;
}

// Lets the control loop run a number of ticks: long enough for anything
// wrongly due "now" to happen, and shown by a heartbeat counter, not a clock.
void let_ticks_pass(oc::coordinator& c) {
    const auto before = c.get_workers();
    REQUIRE_FALSE(before.empty());
    const auto first = before.front().last_heartbeat;
    REQUIRE(eventually([&] {
        auto w = c.get_workers();
        return !w.empty() && w.front().last_heartbeat > first + 50ms;
    }, bound));
}

}  // namespace

TEST_CASE("durations: saturating_add never wraps and is monotone", "[durations][prop]") {
    using tp = steady::time_point;
    rc::prop("t + d saturates at the time point's range", [](std::int64_t t_ns, std::int64_t d_ms) {
        const tp t{std::chrono::nanoseconds{t_ns}};
        const std::chrono::milliseconds d{d_ms};
        const tp r = oc::detail::saturating_add(t, d);
        if (d_ms >= 0) RC_ASSERT(r >= t); else RC_ASSERT(r <= t);
        const std::int64_t step = d_ms < std::numeric_limits<std::int64_t>::max() ? 1 : 0;
        RC_ASSERT(oc::detail::saturating_add(t, d + std::chrono::milliseconds{step}) >= r);
        const tp later{std::chrono::nanoseconds{t_ns < std::numeric_limits<std::int64_t>::max() ? t_ns + 1 : t_ns}};
        RC_ASSERT(oc::detail::saturating_add(later, d) >= r);
        // Exact whenever the sum fits with room to spare.
        if (d_ms > -1'000'000'000 && d_ms < 1'000'000'000 && t_ns > -(1LL << 61) && t_ns < (1LL << 61))
            RC_ASSERT(r == t + d);
    });
    CHECK(oc::detail::saturating_add(steady::now(), forever) == tp::max());
    CHECK(oc::detail::saturating_add(steady::now(), std::chrono::nanoseconds::max()) == tp::max());
    CHECK(oc::detail::saturating_add(tp{}, 5ms) == tp{} + 5ms);
    CHECK(oc::detail::deadline_after(std::chrono::hours::max()) == tp::max());
}

TEST_CASE("durations: backoff with a huge base or cap saturates", "[durations][retry]") {
    const oc::backoff_policy b{.base = forever, .cap = forever, .jitter = true};
    for (std::uint32_t attempt : {1u, 2u, 40u, 1000u}) {
        CHECK(b.ceiling(attempt) == forever);
        CHECK(b.delay(attempt, 1.0) == forever);
        CHECK(b.delay(attempt, 0.999999) > std::chrono::hours(24 * 365));
    }
    const oc::backoff_policy c{.base = 1ms, .cap = forever, .jitter = false};
    CHECK(c.ceiling(64) > std::chrono::hours(24 * 365));
}

TEST_CASE("durations: the autoscaler's cooldown at max holds off a second change", "[durations][scale]") {
    oc::autoscaler s{{.min_workers = 1, .max_workers = 8, .up_after = 1, .cooldown = forever}};
    const auto now = steady::now();
    REQUIRE(s.evaluate(100, 1, now));
    CHECK_FALSE(s.evaluate(100, 2, now + 1s));
    CHECK_FALSE(s.evaluate(100, 2, now + std::chrono::hours(24 * 365)));
}

TEST_CASE("durations: pop_for and pop_until at max block until a task arrives", "[durations][queue]") {
    auto check_queue = [](auto& q, auto until) {
        auto popped = std::async(std::launch::async, [&] { return q.pop_for(forever); });
        auto popped_ns = std::async(std::launch::async, [&] { return q.pop_for(std::chrono::nanoseconds::max()); });
        auto popped_until = std::async(std::launch::async, [&] { return q.pop_until(until); });
        // Each waiter takes one of three tasks pushed from this thread.
        for (int i = 0; i < 3; ++i) REQUIRE(q.try_push(std::string("job")));
        for (auto* f : {&popped, &popped_ns, &popped_until}) {
            REQUIRE(f->wait_for(bound) == std::future_status::ready);
            const auto e = f->get();
            REQUIRE(e);
            CHECK(e->value == "job");
        }
    };
    SECTION("ring (reject-new)") {
        oc::admission_queue<std::string, oc::policy::reject_new> q{{.capacity = 8}};
        check_queue(q, std::chrono::system_clock::time_point::max());
    }
    SECTION("locked (priority)") {
        oc::admission_queue<std::string, oc::policy::priority> q{{.capacity = 8}};
        check_queue(q, std::chrono::system_clock::time_point::max());
    }
    SECTION("type-erased") {
        auto q = oc::make_admission_queue<std::string>(oc::queue_policy::drop_lru, {.capacity = 8});
        check_queue(*q, steady::time_point::max());
    }
}

TEST_CASE("durations: task timeout, turn timeout and the worker's task_timeout at max let the task run",
          "[durations][timeout]") {
    auto o = base_options();
    SECTION("worker task_timeout") { o.worker_template.task_timeout = forever; }
    SECTION("task timeout, turn timeout") {}
    oc::coordinator c{o};
    c.register_handler("t", [](oc::task_context& ctx) {
        std::this_thread::sleep_for(30ms);  // several ticks while it runs
        return ctx.payload();
    });
    oc::task_options to;
    to.timeout = forever;
    to.turn_timeout = forever;
    auto h = c.submit_async("t", "ok", to);
    REQUIRE(h);
    CHECK(h.handle.get() == "ok");
    CHECK(c.get_stats().timed_out == 0);
}

TEST_CASE("durations: TTLs at max keep finished records", "[durations][ttl]") {
    auto o = base_options();
    o.completed_ttl = forever;
    o.failed_ttl = forever;
    o.cancelled_ttl = forever;
    oc::coordinator c{o};
    c.register_handler("t", [](oc::task_context&) { return std::string("ok"); });
    c.register_handler("bad", [](oc::task_context&) -> std::string { throw oc::non_retryable_error("no"); });
    auto ok = c.submit_async("t", "");
    auto bad = c.submit_async("bad", "");
    REQUIRE(ok.handle.wait_for(bound));
    REQUIRE(bad.handle.wait_for(bound));
    let_ticks_pass(c);
    CHECK(c.get_task(ok.handle.id()));
    CHECK(c.get_task(bad.handle.id()));
    CHECK(c.get_stats().expired == 0);
}

TEST_CASE("durations: intervals at max: maintenance and auto-scaling wait, they do not run every tick",
          "[durations][ttl][scale]") {
    auto o = base_options();
    o.maintenance_interval = forever;
    o.completed_ttl = 1ms;  // would expire at the first maintenance
    o.autoscale = true;
    o.autoscale_interval = forever;
    o.scaling.max_workers = 4;
    o.scaling.scale_down_depth = 0;
    o.scaling.scale_up_depth = 1;
    o.scaling.up_after = 1;
    o.scaling.cooldown = 0ms;
    oc::coordinator c{o};
    gate g;
    gate_guard guard{g};
    c.register_handler("t", [](oc::task_context&) { return std::string("ok"); });
    c.register_handler("block", [&](oc::task_context&) {
        g.wait(bound);
        return std::string("ok");
    });
    auto h = c.submit_async("t", "");
    REQUIRE(h.handle.wait_for(bound));
    // The only worker busy and three tasks waiting: depth above scale_up_depth.
    for (int i = 0; i < 4; ++i) REQUIRE(c.submit_async("block", ""));
    let_ticks_pass(c);
    CHECK(c.get_task(h.handle.id()));
    CHECK(c.get_stats().expired == 0);
    CHECK(c.get_stats().scaling_history.empty());
}

TEST_CASE("durations: worker_timeout at max: no worker is declared dead", "[durations][health]") {
    auto o = base_options();
    o.worker_timeout = forever;
    oc::coordinator c{o};
    c.register_handler("t", [](oc::task_context&) { return std::string("ok"); });
    let_ticks_pass(c);
    CHECK(c.get_stats().workers_died == 0);
    CHECK(c.submit("t", "") == "ok");
}

TEST_CASE("durations: a retry backoff at max delays the retry, it does not run at once", "[durations][retry]") {
    auto o = base_options();
    o.default_backoff = {.base = forever, .cap = forever, .jitter = false};
    oc::coordinator c{o};
    std::atomic<int> attempts{0};
    c.register_handler("flaky", [&](oc::task_context&) -> std::string {
        ++attempts;
        throw std::runtime_error("transient");
    });
    auto h = c.submit_async("flaky", "");
    REQUIRE(eventually([&] { return c.get_stats().delayed == 1; }, bound));
    let_ticks_pass(c);
    CHECK(attempts.load() == 1);
    CHECK(c.get_status(h.handle.id()) == oc::task_status::queued);
}

TEST_CASE("durations: continue_later at max parks the task, it does not run the next turn at once",
          "[durations][continue]") {
    oc::coordinator c{base_options()};
    std::atomic<int> turns{0};
    c.register_handler("later", [&](oc::task_context& ctx) {
        ++turns;
        ctx.continue_later(forever);
        return std::string();
    });
    auto h = c.submit_async("later", "");
    REQUIRE(eventually([&] { return c.get_stats().delayed == 1; }, bound));
    let_ticks_pass(c);
    CHECK(turns.load() == 1);
    CHECK(c.cancel(h.handle.id()));
}

TEST_CASE("durations: cancel_grace at max waits for a cooperative handler instead of fencing it at once",
          "[durations][cancel]") {
    auto o = base_options();
    o.cancel_grace = forever;
    oc::coordinator c{o};
    gate release;
    gate_guard guard{release};
    std::atomic<bool> saw_cancel{false};
    c.register_handler("coop", [&](oc::task_context& ctx) {
        while (!ctx.cancellation_requested()) std::this_thread::sleep_for(1ms);
        saw_cancel = true;
        release.wait(bound);  // keeps running past the cancellation for a while
        return std::string();
    });
    auto h = c.submit_async("coop", "");
    REQUIRE(eventually([&] { return c.get_status(h.handle.id()) == oc::task_status::running; }, bound));
    REQUIRE(c.cancel(h.handle.id()));
    REQUIRE(eventually([&] { return saw_cancel.load(); }, bound));
    let_ticks_pass(c);
    CHECK(c.get_status(h.handle.id()) == oc::task_status::running);  // not fenced: grace is not over
    release.open();
    const auto r = h.handle.wait_for(bound);
    REQUIRE(r);
    CHECK(r->status == oc::task_status::cancelled);
    CHECK_THAT(r->error, !Catch::Contains("cancel_grace"));
}

namespace {

// A handler's body for the two cases below: waits for a message with
// receive_for(wait) (it returns once one arrives), then for g, and returns
// the message.
template <class Rep, class Period>
std::string receive_then_pass(oc::task_context& ctx, gate& g, std::chrono::duration<Rep, Period> wait) {
    auto msgs = ctx.receive_for(wait);
    g.wait(bound);
    return msgs.empty() ? std::string("none") : msgs.front();
}

// Waits for h's task (whose handler is receive_then_pass on g) by the
// coordinator, its handle and a coroutine, each for its own duration;
// `start` then lets the task run. Steered while running, and the
// coordinator stopped gracefully for `stop_for` while g holds the handler:
// once g opens, the stop returns having cancelled nothing and every wait
// returns the completed, steered task.
template <class Start, class CoordinatorWait, class HandleWait, class CoroutineWait, class StopWait>
void check_waits_and_stop(oc::coordinator& c, gate& g, const oc::task_handle& h, Start start,
                          CoordinatorWait by_coordinator_for, HandleWait by_handle_for,
                          CoroutineWait by_coroutine_for, StopWait stop_for) {
    const auto id = h.id();
    auto by_coordinator = std::async(std::launch::async, [&] { return c.wait_for(id, by_coordinator_for); });
    auto by_handle = std::async(std::launch::async, [&] { return h.wait_for(by_handle_for); });
    boost::asio::io_context io;
    auto by_coroutine = boost::asio::co_spawn(io, h.async_wait_for(by_coroutine_for), boost::asio::use_future);
    std::thread io_thread([&] { io.run(); });
    start();
    REQUIRE(eventually([&] { return c.get_status(id) == oc::task_status::running; }, bound));
    c.steer(id, {"steered"});
    auto stopped = std::async(std::launch::async, [&] { return c.stop(oc::stop_mode::graceful, stop_for); });
    g.open();
    REQUIRE(stopped.wait_for(bound) == std::future_status::ready);
    CHECK(stopped.get());  // nothing had to be cancelled
    for (auto* f : {&by_coordinator, &by_handle, &by_coroutine}) {
        REQUIRE(f->wait_for(bound) == std::future_status::ready);
        const auto r = f->get();
        REQUIRE(r);
        CHECK(r->status == oc::task_status::completed);
        CHECK(r->result == "steered");
    }
    io_thread.join();
}

}  // namespace

TEST_CASE("durations: wait_for, receive_for and stop(graceful) at max return once the work is done",
          "[durations][wait][stop]") {
    oc::coordinator c{base_options()};
    gate g;
    gate_guard guard{g};
    c.register_handler("t", [&](oc::task_context& ctx) { return receive_then_pass(ctx, g, forever); });
    auto h = c.submit_async("t", "");
    REQUIRE(h);
    check_waits_and_stop(c, g, h.handle, [] {}, forever, forever, forever, forever);
}

TEST_CASE("durations: waits, receive_for, continue_later and stop take any duration type at its max",
          "[durations][wait][stop]") {
    // hours::max() or seconds::max() converted to milliseconds by the
    // caller would overflow (into a negative wait): the API takes them as
    // they are and saturates.
    oc::coordinator c{base_options()};
    gate g;
    gate_guard guard{g};
    c.register_handler("t", [&](oc::task_context& ctx) {
        if (ctx.turn() == 0) {
            ctx.continue_later(std::chrono::hours::max());  // parks the task
            return std::string();
        }
        return receive_then_pass(ctx, g, std::chrono::minutes::max());
    });
    auto h = c.submit_async("t", "");
    REQUIRE(h);
    const auto id = h.handle.id();
    REQUIRE(eventually([&] { return c.get_stats().delayed == 1; }, bound));
    let_ticks_pass(c);
    CHECK(c.get_stats().delayed == 1);  // the delay did not wrap into the past
    check_waits_and_stop(
        c, g, h.handle, [&] { REQUIRE(c.promote(id)); }, std::chrono::seconds::max(), std::chrono::hours::max(),
        std::chrono::hours::max(), std::chrono::hours::max());
}

TEST_CASE("durations: a NaN or infinite floating-point duration saturates, it is not converted blindly",
          "[durations][queue]") {
    using fsec = std::chrono::duration<double>;
    const double inf = std::numeric_limits<double>::infinity();
    const double nan = std::numeric_limits<double>::quiet_NaN();
    CHECK(oc::detail::saturating_ceil<std::chrono::milliseconds>(fsec(nan)) == std::chrono::milliseconds::zero());
    CHECK(oc::detail::saturating_ceil<std::chrono::nanoseconds>(fsec(inf)) == std::chrono::nanoseconds::max());
    CHECK(oc::detail::saturating_ceil<std::chrono::nanoseconds>(fsec(-inf)) == std::chrono::nanoseconds::min());
    const auto now = steady::now();
    CHECK(oc::detail::saturating_add(now, fsec(nan)) == now);
    oc::admission_queue<int> q{{.capacity = 4}};
    CHECK_FALSE(q.pop_for(fsec(nan)));  // a NaN wait counts as zero
    REQUIRE(q.try_push(1));
    CHECK(q.pop_for(fsec(inf)));
}
