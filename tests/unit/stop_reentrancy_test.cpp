// stop() called from the inside: from a handler (plain or coroutine), from
// an event subscriber the coordinator runs on one of its own threads, from
// the last owner dropped inside a handler, and worker_pool::stop() from one
// of the pool's own callables. Each must return (the stop goes on on a
// thread that can wait), never hang on the calling thread itself.
//
// Every call from inside is made through a std::future awaited with a
// generous bound: a regression fails the test instead of hanging the run
// (the object that hung is then leaked on purpose, never destroyed).
#include <orchcore/coordinator.hpp>
#include <orchcore/worker_pool.hpp>

#include <catch2/catch.hpp>

#include "support/sync_helpers.hpp"

#include <boost/asio/awaitable.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>

namespace oc = orchcore;
using namespace std::chrono_literals;
using orchcore::test::eventually;

namespace {

constexpr auto bound = 60s;  // far beyond any healthy run, even under TSan

oc::coordinator_options small_options() {
    oc::coordinator_options o;
    o.scaling.min_workers = 1;
    o.scaling.max_workers = 1;
    o.worker_template.heartbeat_interval = 20ms;
    o.worker_timeout = 1000ms;
    o.cancel_grace = 200ms;
    o.maintenance_interval = 10ms;
    return o;
}

// The outcome of a stop() called from inside: it returned, and with what.
struct inner_stop {
    std::promise<bool> returned;
    std::future<bool> result = returned.get_future();
    std::atomic<bool> called{false};

    void call(oc::coordinator& c, oc::stop_mode mode) {
        if (called.exchange(true)) return;
        returned.set_value(c.stop(mode, 30s));
    }
    // True if stop() returned in time. Otherwise the coordinator is leaked:
    // destroying it would wait for the hung thread.
    bool returned_in_time(std::unique_ptr<oc::coordinator>& c) {
        if (result.wait_for(bound) == std::future_status::ready) return true;
        (void)c.release();
        return false;
    }
};

const char* name(oc::stop_mode m) { return m == oc::stop_mode::graceful ? "graceful" : "abort"; }

// After a stop from inside: admission is closed at once, and an outer
// stop() (as the destructor makes) waits for the stop to be carried out.
void check_stopped(oc::coordinator& c) {
    auto late = c.submit_async("noop", "");
    CHECK_FALSE(late);
    CHECK(late.admission.reason == oc::rejection_reason::closed);
    c.stop(oc::stop_mode::abort, 1s);
    CHECK(c.get_stats().workers == 0);
}

}  // namespace

TEST_CASE("stop from inside: a plain handler calling stop() returns; graceful lets its own task complete",
          "[coordinator][stop][reentrancy]") {
    for (auto mode : {oc::stop_mode::graceful, oc::stop_mode::abort}) {
        DYNAMIC_SECTION(name(mode)) {
            inner_stop s;
            auto c = std::make_unique<oc::coordinator>(small_options());
            c->register_handler("noop", [](oc::task_context&) { return std::string(); });
            c->register_handler("stopper", [&](oc::task_context&) {
                s.call(*c, mode);
                return std::string("done");
            });
            auto h = c->submit_async("stopper", "");
            REQUIRE(h);
            REQUIRE(s.returned_in_time(c));
            CHECK_FALSE(s.result.get());  // the stop goes on; nothing known yet
            check_stopped(*c);
            const auto r = c->get_task(h.handle.id());
            REQUIRE(r);
            if (mode == oc::stop_mode::graceful) CHECK(r->status == oc::task_status::completed);
            else CHECK(oc::is_terminal(r->status));
        }
    }
}

TEST_CASE("stop from inside: a coroutine handler calling stop() returns", "[coordinator][stop][reentrancy][async]") {
    for (auto mode : {oc::stop_mode::graceful, oc::stop_mode::abort}) {
        DYNAMIC_SECTION(name(mode)) {
            inner_stop s;
            auto c = std::make_unique<oc::coordinator>(small_options());
            c->register_handler("noop", [](oc::task_context&) { return std::string(); });
            c->register_async_handler("stopper", [&](oc::task_context&) -> boost::asio::awaitable<std::string> {
                s.call(*c, mode);
                co_return std::string("done");
            });
            auto h = c->submit_async("stopper", "");
            REQUIRE(h);
            REQUIRE(s.returned_in_time(c));
            check_stopped(*c);
            const auto r = c->get_task(h.handle.id());
            REQUIRE(r);
            CHECK(oc::is_terminal(r->status));
        }
    }
}

TEST_CASE("stop from inside: an event subscriber on a worker thread calling stop() returns",
          "[coordinator][stop][reentrancy][events]") {
    for (auto mode : {oc::stop_mode::graceful, oc::stop_mode::abort}) {
        DYNAMIC_SECTION(name(mode)) {
            inner_stop s;
            auto c = std::make_unique<oc::coordinator>(small_options());
            c->register_handler("noop", [](oc::task_context&) { return std::string(); });
            auto sub = c->events().subscribe(oc::event_channel::tasks, [&](const oc::event& e) {
                if (e.kind == oc::event_kind::task_completed) s.call(*c, mode);
            });
            REQUIRE(c->submit_async("noop", ""));
            REQUIRE(s.returned_in_time(c));
            check_stopped(*c);
        }
    }
}

TEST_CASE("stop from inside: a subscriber to an event of the control tick calling stop() returns",
          "[coordinator][stop][reentrancy][events]") {
    // A task timeout is found by the control loop, which publishes the event.
    for (auto mode : {oc::stop_mode::graceful, oc::stop_mode::abort}) {
        DYNAMIC_SECTION(name(mode)) {
            inner_stop s;
            auto c = std::make_unique<oc::coordinator>(small_options());
            c->register_handler("noop", [](oc::task_context&) { return std::string(); });
            c->register_handler("slow", [](oc::task_context& ctx) {
                (void)ctx.receive_for(10s);  // returns early once the attempt is cancelled
                return std::string();
            });
            auto sub = c->events().subscribe(oc::event_channel::tasks, [&](const oc::event& e) {
                if (e.kind == oc::event_kind::task_timed_out) s.call(*c, mode);
            });
            oc::task_options o;
            o.timeout = 20ms;
            REQUIRE(c->submit_async("slow", "", o));
            REQUIRE(s.returned_in_time(c));
            check_stopped(*c);
        }
    }
}

TEST_CASE("stop from inside: the last owner dropped inside a handler destroys the coordinator without hanging",
          "[coordinator][stop][reentrancy]") {
    std::promise<void> destroyed;
    auto f = destroyed.get_future();
    auto owner = std::make_shared<std::shared_ptr<oc::coordinator>>(std::make_shared<oc::coordinator>(small_options()));
    std::weak_ptr<oc::coordinator> weak = *owner;
    (*owner)->register_handler("drop", [owner, &destroyed](oc::task_context&) {
        owner->reset();  // the last owner: ~coordinator runs on this worker thread
        destroyed.set_value();
        return std::string();
    });
    REQUIRE((*owner)->submit_async("drop", ""));
    // The handler's copy of `owner` is the only one left once this returns.
    std::shared_ptr<oc::coordinator> mine;
    std::swap(mine, *owner);
    *owner = std::move(mine);
    REQUIRE(f.wait_for(bound) == std::future_status::ready);
    CHECK(weak.expired());
}

TEST_CASE("worker_pool: stop() from one of its own callables returns; stop() from outside then waits",
          "[worker_pool][stop][reentrancy]") {
    for (auto mode : {oc::stop_mode::graceful, oc::stop_mode::abort}) {
        DYNAMIC_SECTION(name(mode)) {
            auto pool = std::make_unique<oc::worker_pool>(oc::pool_options{.min_workers = 2, .max_workers = 2});
            std::promise<void> returned;
            auto f = returned.get_future();
            std::atomic<bool> after{false};
            pool->post([&] {
                pool->stop(mode);
                returned.set_value();
                std::this_thread::sleep_for(20ms);
                after = true;
            });
            if (f.wait_for(bound) != std::future_status::ready) {
                (void)pool.release();
                FAIL("worker_pool::stop() from its own callable did not return");
            }
            CHECK(pool->stopped());
            CHECK_THROWS_AS(pool->post([] {}), oc::shutdown_error);
            pool->stop(mode);  // from outside: waits for the callable still running
            CHECK(after.load());
        }
    }
}

TEST_CASE("worker_pool: the pool destroyed on one of its own threads does not hang",
          "[worker_pool][stop][reentrancy]") {
    std::promise<void> destroyed;
    auto f = destroyed.get_future();
    auto holder = std::make_shared<std::unique_ptr<oc::worker_pool>>(
        std::make_unique<oc::worker_pool>(oc::pool_options{.min_workers = 1, .max_workers = 1}));
    oc::worker_pool* pool = holder->get();
    pool->post([holder, &destroyed] {
        holder->reset();  // ~worker_pool on its own thread
        destroyed.set_value();
    });
    REQUIRE(f.wait_for(bound) == std::future_status::ready);
}
