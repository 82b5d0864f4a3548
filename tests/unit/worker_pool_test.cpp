// worker_pool: running work, futures, exceptions, scaling, stop, options.
#include <orchcore/worker_pool.hpp>

#include <catch2/catch.hpp>

#include "support/sync_helpers.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <condition_variable>
#include <exception>
#include <future>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace oc = orchcore;
using namespace std::chrono_literals;

namespace {

using steady = std::chrono::steady_clock;
using orchcore::test::eventually;
using orchcore::test::gate;
using orchcore::test::gate_guard;


oc::pool_options opts(std::size_t min_w, std::size_t max_w) {
    oc::pool_options o;
    o.min_workers = min_w;
    o.max_workers = max_w;
    return o;
}

}  // namespace

TEST_CASE("worker_pool: post runs every callable", "[worker_pool]") {
    std::atomic<int> ran{0};
    oc::worker_pool pool{opts(2, 4)};
    CHECK(pool.size() == 2);
    for (int i = 0; i < 200; ++i) pool.post([&] { ++ran; });
    pool.stop(oc::stop_mode::graceful);
    CHECK(ran.load() == 200);
    const auto s = pool.stats();
    CHECK(s.posted == 200);
    CHECK(s.completed == 200);
    CHECK(s.unhandled_exceptions == 0);
    CHECK(pool.stopped());
}

TEST_CASE("worker_pool: work is spread over the workers and runs concurrently", "[worker_pool]") {
    // Three callables that can only finish together: they need three threads.
    std::mutex m;
    std::condition_variable cv;
    int arrived = 0;
    std::atomic<int> finished_together{0};
    std::set<std::thread::id> threads;
    oc::worker_pool pool{opts(3, 3)};
    for (int i = 0; i < 3; ++i) {
        pool.post([&] {
            std::unique_lock lk(m);
            threads.insert(std::this_thread::get_id());
            ++arrived;
            cv.notify_all();
            if (cv.wait_for(lk, 5s, [&] { return arrived == 3; })) ++finished_together;
        });
    }
    pool.stop();
    CHECK(finished_together.load() == 3);
    CHECK(threads.size() == 3);
}

TEST_CASE("worker_pool: a worker with several slots runs that many callables at once", "[worker_pool]") {
    auto o = opts(1, 1);
    o.worker_template.max_concurrent = 2;
    std::mutex m;
    std::condition_variable cv;
    int arrived = 0;
    std::atomic<int> finished_together{0};
    oc::worker_pool pool{o};
    for (int i = 0; i < 2; ++i) {
        pool.post([&] {
            std::unique_lock lk(m);
            ++arrived;
            cv.notify_all();
            if (cv.wait_for(lk, 5s, [&] { return arrived == 2; })) ++finished_together;
        });
    }
    pool.stop();
    CHECK(finished_together.load() == 2);
}

TEST_CASE("worker_pool: submit returns futures carrying values and exceptions", "[worker_pool]") {
    oc::worker_pool pool{opts(2, 2)};
    auto f = pool.submit([] { return 42; });
    auto s = pool.submit([] { return std::string("hello"); });
    auto v = pool.submit([] {});
    auto e = pool.submit([]() -> int { throw std::runtime_error("nope"); });
    REQUIRE(f.wait_for(5s) == std::future_status::ready);
    CHECK(f.get() == 42);
    CHECK(s.get() == "hello");
    CHECK_NOTHROW(v.get());
    CHECK_THROWS_WITH(e.get(), "nope");
    pool.stop();
    // Delivered through the future, so not "unhandled".
    CHECK(pool.stats().unhandled_exceptions == 0);
}

TEST_CASE("worker_pool: exceptions escaping post() go to on_unhandled_exception and are counted",
          "[worker_pool]") {
    std::mutex m;
    std::vector<std::string> seen;
    std::atomic<int> ran_after{0};
    auto o = opts(1, 1);
    o.on_unhandled_exception = [&](std::exception_ptr ep) {
        try {
            std::rethrow_exception(ep);
        } catch (const std::exception& ex) {
            std::lock_guard lk(m);
            seen.emplace_back(ex.what());
        } catch (...) {
            std::lock_guard lk(m);
            seen.emplace_back("<non-standard>");
        }
    };
    oc::worker_pool pool{o};
    pool.post([] { throw std::runtime_error("first"); });
    pool.post([] { throw 7; });
    pool.post([&] { ++ran_after; });  // the worker survives
    pool.stop();
    CHECK(ran_after.load() == 1);
    CHECK(pool.stats().unhandled_exceptions == 2);
    CHECK(pool.stats().completed == 3);
    std::lock_guard lk(m);
    CHECK(seen == std::vector<std::string>{"first", "<non-standard>"});
}

TEST_CASE("worker_pool: without a handler, escaping exceptions are still counted", "[worker_pool]") {
    oc::worker_pool pool{opts(1, 1)};
    pool.post([] { throw std::runtime_error("expected in this test: reported on stderr"); });
    // A throwing handler does not take the worker down either.
    auto o = opts(1, 1);
    o.on_unhandled_exception = [](std::exception_ptr) { throw std::logic_error("handler fails"); };
    oc::worker_pool pool2{o};
    pool2.post([] { throw std::runtime_error("expected in this test: reported on stderr"); });
    auto f = pool2.submit([] { return 1; });
    pool.stop();
    pool2.stop();
    CHECK(pool.stats().unhandled_exceptions == 1);
    CHECK(pool2.stats().unhandled_exceptions == 1);
    CHECK(f.get() == 1);
}

TEST_CASE("worker_pool: scale is clamped; removed workers finish what they were given", "[worker_pool]") {
    gate g;
    std::atomic<int> started{0}, finished{0};
    oc::worker_pool pool{opts(1, 4)};
    gate_guard guard{g};
    CHECK(pool.scale(3) == 3);
    CHECK(pool.size() == 3);
    CHECK(pool.scale(100) == 4);
    CHECK(pool.size() == 4);
    std::set<std::string> ids;
    for (auto& w : pool.workers()) ids.insert(w->id());
    CHECK(ids.size() == 4);

    // One blocked callable per worker (round robin), then shrink.
    for (int i = 0; i < 4; ++i) {
        pool.post([&] {
            ++started;
            g.wait();
            ++finished;
        });
    }
    REQUIRE(eventually([&] { return started.load() == 4; }));
    CHECK(pool.scale(0) == 1);
    CHECK(pool.size() == 1);
    CHECK(pool.stats().workers == 1);
    std::atomic<int> more{0};
    for (int i = 0; i < 10; ++i) pool.post([&] { ++more; });
    g.open();
    pool.stop();
    CHECK(finished.load() == 4);
    CHECK(more.load() == 10);
}

TEST_CASE("worker_pool: posts racing scale() and stop() are each run exactly once or refused", "[worker_pool]") {
    // Three threads post while a fourth scales the pool up and down and
    // finally stops it: every post either returned (and its callable ran,
    // once) or threw shutdown_error; posted/completed agree.
    oc::worker_pool pool{opts(1, 6)};
    std::atomic<std::uint64_t> ran{0}, accepted{0}, refused{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> posters;
    for (int t = 0; t < 3; ++t) {
        posters.emplace_back([&] {
            while (!go.load()) std::this_thread::yield();
            for (int i = 0; i < 20'000; ++i) {
                try {
                    pool.post([&] { ran.fetch_add(1, std::memory_order_relaxed); });
                    accepted.fetch_add(1, std::memory_order_relaxed);
                } catch (const oc::shutdown_error&) {
                    refused.fetch_add(1, std::memory_order_relaxed);
                }
            }
        });
    }
    go = true;
    for (std::size_t i = 0; i < 200; ++i) pool.scale(1 + (i * 7) % 6);
    pool.stop();
    for (auto& t : posters) t.join();
    CHECK(accepted.load() + refused.load() == 60'000);
    CHECK(ran.load() == accepted.load());
    const auto st = pool.stats();
    CHECK(st.posted == accepted.load());
    CHECK(st.completed == accepted.load());
    CHECK(st.rejected_after_stop == refused.load());
}

TEST_CASE("worker_pool: after stop, post and scale throw shutdown_error", "[worker_pool]") {
    oc::worker_pool pool{opts(1, 2)};
    pool.stop();
    pool.stop();  // idempotent
    CHECK_THROWS_AS(pool.post([] {}), oc::shutdown_error);
    try {
        pool.post([] {});
        FAIL("expected shutdown_error");
    } catch (const oc::operation_aborted& e) {
        CHECK(e.code() == oc::errc::shutdown);
    }
    CHECK_THROWS_AS(pool.submit([] { return 1; }), oc::shutdown_error);
    CHECK_THROWS_AS(pool.scale(2), oc::shutdown_error);
    CHECK(pool.stats().rejected_after_stop == 3);
    CHECK(pool.stats().posted == 0);
}

TEST_CASE("worker_pool: with no workers (min_workers = 0), post is refused as such, not as after stop()",
          "[worker_pool]") {
    oc::worker_pool pool{opts(0, 2)};
    CHECK(pool.size() == 0);
    try {
        pool.post([] {});
        FAIL("expected orchcore::error");
    } catch (const oc::shutdown_error&) {
        FAIL("refused as if stopped");
    } catch (const oc::error& e) {
        CHECK(e.code() == oc::errc::rejected);
        CHECK_THAT(std::string(e.what()), Catch::Contains("no workers"));
    }
    CHECK_THROWS_AS(pool.submit([] { return 1; }), oc::error);
    CHECK_FALSE(pool.stopped());
    CHECK(pool.stats().rejected_after_stop == 0);
    pool.scale(1);
    CHECK(pool.submit([] { return 7; }).get() == 7);
}

TEST_CASE("worker_pool: options validation names the field", "[worker_pool][options]") {
    auto field_of = [](oc::pool_options o) -> std::string {
        try {
            oc::worker_pool p{std::move(o)};
        } catch (const oc::invalid_argument& e) {
            return e.field();
        }
        return "<valid>";
    };
    CHECK(field_of(opts(1, 1)) == "<valid>");
    CHECK(field_of(opts(0, 0)) == "pool.max_workers");
    CHECK(field_of(opts(3, 2)) == "pool.min_workers");
    CHECK(field_of(opts(1, SIZE_MAX)) == "pool.max_workers");
    CHECK(field_of(opts(SIZE_MAX, SIZE_MAX)) == "pool.max_workers");
    CHECK(field_of(opts(1, oc::max_worker_count)) == "<valid>");
    auto o = opts(1, 1);
    o.worker_template.max_concurrent = 0;
    CHECK(field_of(o) == "worker.max_concurrent");
    o = opts(1, 1);
    o.worker_template.max_concurrent = 5000;
    CHECK(field_of(o) == "worker.max_concurrent");
    o = opts(1, 1);
    o.worker_template.heartbeat_interval = 0ms;
    CHECK(field_of(o) == "worker.heartbeat_interval");
    o = opts(1, 1);
    o.worker_template.task_timeout = -1ms;
    CHECK(field_of(o) == "worker.task_timeout");

    try {
        oc::worker_pool p{opts(3, 2)};
        FAIL("expected invalid_argument");
    } catch (const oc::invalid_argument& e) {
        CHECK(e.value() == "3");
        CHECK_THAT(std::string(e.what()), Catch::Contains("pool.min_workers"));
    }
}

TEST_CASE("worker_options::satisfies requires every tag", "[worker_pool]") {
    oc::worker_options w;
    w.tags = {"gpu", "fast"};
    CHECK(w.satisfies({}));
    CHECK(w.satisfies({"gpu"}));
    CHECK(w.satisfies({"fast", "gpu"}));
    CHECK_FALSE(w.satisfies({"gpu", "tpu"}));
    CHECK_FALSE(oc::worker_options{}.satisfies({"gpu"}));
}

TEST_CASE("worker_pool: stop(abort) drops what has not started and waits for what runs", "[worker_pool][stop]") {
    gate g;
    std::promise<void> started;
    std::atomic<int> ran{0};
    oc::worker_pool pool{opts(1, 1)};  // one worker, one slot: everything after the blocker waits
    gate_guard guard{g};
    auto blocker = pool.submit([&] {
        started.set_value();
        g.wait();
        return 7;
    });
    REQUIRE(started.get_future().wait_for(5s) == std::future_status::ready);
    std::vector<std::future<int>> waiting;
    for (int i = 0; i < 10; ++i) waiting.push_back(pool.submit([&, i] { ++ran; return i; }));
    for (int i = 0; i < 5; ++i) pool.post([&] { ++ran; });

    std::thread stopper([&] { pool.stop(oc::stop_mode::abort); });
    // The dropped callables' futures fail at once, while the blocker still runs.
    for (auto& f : waiting) REQUIRE(f.wait_for(5s) == std::future_status::ready);
    CHECK(blocker.wait_for(0s) == std::future_status::timeout);
    for (auto& f : waiting) CHECK_THROWS_AS(f.get(), oc::cancelled_error);
    g.open();
    stopper.join();

    CHECK(blocker.get() == 7);  // the running callable finished
    CHECK(ran.load() == 0);
    const auto s = pool.stats();
    CHECK(s.posted == 16);
    CHECK(s.cancelled == 15);
    CHECK(s.completed == 1);
    CHECK_THROWS_AS(pool.post([] {}), oc::shutdown_error);
    // A submit after stop throws at once as well; it never hands back a
    // future that would wait forever.
    CHECK_THROWS_AS(pool.submit([] { return 1; }), oc::shutdown_error);
}

TEST_CASE("worker_pool: stop(graceful) runs everything already posted", "[worker_pool][stop]") {
    gate g;
    std::atomic<int> ran{0};
    oc::worker_pool pool{opts(1, 1)};
    gate_guard guard{g};
    pool.post([&] { g.wait(); });
    std::vector<std::future<int>> waiting;
    for (int i = 0; i < 10; ++i) waiting.push_back(pool.submit([&, i] { ++ran; return i; }));
    std::thread stopper([&] { pool.stop(oc::stop_mode::graceful); });
    g.open();
    stopper.join();
    for (int i = 0; i < 10; ++i) CHECK(waiting[static_cast<std::size_t>(i)].get() == i);
    CHECK(ran.load() == 10);
    CHECK(pool.stats().cancelled == 0);
    CHECK(pool.stats().completed == 11);
}
