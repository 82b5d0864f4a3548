// The coordinator and the worker pool on an executor of the user's
// (coordinator_options::executor, worker_options::executor): no thread of
// their own, everything on the user's io_context, and a stop() that never
// waits for an executor that is not being run.
#include <orchcore/coordinator.hpp>
#include <orchcore/worker_pool.hpp>

#include <catch2/catch.hpp>

#include "support/sync_helpers.hpp"

#include <stdexcept>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace oc = orchcore;
namespace asio = boost::asio;
using namespace std::chrono_literals;
using orchcore::test::eventually;

namespace {

// ThreadSanitizer starts a background thread of its own at a time of its
// choosing, so thread counts are only compared without it.
#if defined(__SANITIZE_THREAD__)
constexpr bool counts_threads = false;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool counts_threads = false;
#else
constexpr bool counts_threads = true;
#endif
#else
constexpr bool counts_threads = true;
#endif

/// Threads of this process (Linux: /proc/self/task).
std::size_t thread_count() {
    std::size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
        (void)e;
        ++n;
    }
    return n;
}

/// Runs an io_context on one thread of the test's until stopped.
class loop_thread {
public:
    explicit loop_thread(asio::io_context& io) : io_(io), guard_(io.get_executor()) {
        thread_ = std::thread([this] {
            id_.set_value(std::this_thread::get_id());
            io_.run();
        });
        tid_ = id_.get_future().get();
    }
    ~loop_thread() { stop(); }
    void stop() {
        if (!thread_.joinable()) return;
        guard_.reset();
        io_.stop();
        thread_.join();
    }
    std::thread::id id() const { return tid_; }

private:
    asio::io_context& io_;
    asio::executor_work_guard<asio::io_context::executor_type> guard_;
    std::promise<std::thread::id> id_;
    std::thread::id tid_;
    std::thread thread_;
};

/// Fast timers, one worker of `slots` slots at first (up to `max_workers`).
oc::coordinator_options fast(std::size_t slots, std::size_t max_workers) {
    oc::coordinator_options o;
    o.worker_template.heartbeat_interval = 20ms;
    o.worker_template.max_concurrent = slots;
    o.worker_timeout = 2000ms;
    o.scaling.min_workers = 1;
    o.scaling.max_workers = max_workers;
    o.maintenance_interval = 10ms;
    o.cancel_grace = 100ms;
    o.default_backoff = {.base = 1ms, .cap = 2ms};
    return o;
}

/// The same, with the control loop and the workers on `ex`.
oc::coordinator_options on_executor(const asio::any_io_executor& ex) {
    auto o = fast(2, 2);
    o.executor = ex;
    o.worker_template.executor = ex;
    return o;
}

}  // namespace

TEST_CASE("executor: a coordinator on the user's io_context creates no thread and runs everything there",
          "[executor][coordinator]") {
    asio::io_context io;
    const std::size_t before = thread_count();
    auto o = on_executor(io.get_executor());
    o.completed_ttl = 30ms;
    std::optional<oc::coordinator> c;
    c.emplace(o);
    if (counts_threads) CHECK(thread_count() == before);  // neither control thread nor worker threads

    std::atomic<std::thread::id> plain_on{}, coro_on{};
    c->register_handler("plain", [&](oc::task_context& ctx) {
        plain_on = std::this_thread::get_id();
        return "plain:" + ctx.payload();
    });
    c->register_async_handler("coro", [&](oc::task_context& ctx) -> asio::awaitable<std::string> {
        // A timer of the user's context, awaited inside the handler.
        asio::steady_timer t(co_await asio::this_coro::executor, 5ms);
        co_await t.async_wait(asio::use_awaitable);
        coro_on = std::this_thread::get_id();
        co_return "coro:" + ctx.payload();
    });
    // Ignores its turn timeout: only the control loop can time it out.
    c->register_async_handler("slow", [&](oc::task_context&) -> asio::awaitable<std::string> {
        asio::steady_timer t(co_await asio::this_coro::executor, 300ms);
        co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
        co_return std::string("late");
    });

    auto p = c->submit_async("plain", "a");
    auto q = c->submit_async("coro", "b");
    oc::task_options timed;
    timed.turn_timeout = 30ms;
    timed.max_retries = 0;
    auto s = c->submit_async("slow", "", timed);
    REQUIRE(p);
    REQUIRE(q);
    REQUIRE(s);
    // Nothing runs until the user runs the context.
    CHECK(c->get_status(p.handle.id()) != oc::task_status::completed);

    loop_thread loop(io);
    CHECK(p.handle.get() == "plain:a");
    CHECK(q.handle.get() == "coro:b");
    CHECK(plain_on.load() == loop.id());
    CHECK(coro_on.load() == loop.id());
    const auto rec = s.handle.wait_for(5s);
    REQUIRE(rec);
    CHECK(rec->status == oc::task_status::timed_out);  // the control loop ran on the user's executor
    // TTL maintenance, on the user's executor too.
    CHECK(eventually([&] { return !c->get_task(p.handle.id()).has_value(); }, 3s));
    CHECK(c->get_stats().expired >= 1);
    // Heartbeats keep the worker alive (no worker declared dead).
    std::this_thread::sleep_for(60ms);
    CHECK(c->get_stats().workers_died == 0);

    CHECK(c->stop(oc::stop_mode::graceful, 2s));
    c.reset();
    loop.stop();
    if (counts_threads) CHECK(thread_count() == before);
}

TEST_CASE("executor: stop() and the destructor never wait for an io_context nobody runs",
          "[executor][coordinator][stop]") {
    asio::io_context io;
    std::atomic<bool> ran{false};
    std::optional<oc::task_handle> queued;
    {
        oc::coordinator c{on_executor(io.get_executor())};
        c.register_handler("t", [&](oc::task_context&) {
            ran = true;
            return std::string("ran");
        });
        auto r = c.submit_async("t", "");
        REQUIRE(r);
        queued = r.handle;
        // The context is never run: the launch waits on it forever.
        CHECK_FALSE(c.stop(oc::stop_mode::graceful, 50ms));  // bounded by the deadline
        const auto rec = c.get_task(r.handle.id());
        REQUIRE(rec);
        CHECK(rec->status == oc::task_status::cancelled);
        CHECK(c.get_stats().cancelled == 1);
    }  // destructor: already stopped; returns at once
    // Running the context now runs nothing of the stopped coordinator.
    io.run_for(50ms);
    CHECK_FALSE(ran.load());
}

TEST_CASE("executor: a coroutine suspended on the user's context outlives its coordinator safely",
          "[executor][coordinator][stop]") {
    asio::io_context io;
    std::atomic<int> resumed{0};
    std::atomic<bool> saw_cancel{false}, wait_aborted{false};
    {
        auto o = on_executor(io.get_executor());
        o.cancel_grace = 20ms;
        oc::coordinator c{o};
        c.register_async_handler("sleepy", [&](oc::task_context& ctx) -> asio::awaitable<std::string> {
            // Long: only the cancellation at stop() can end this wait early.
            asio::steady_timer t(co_await asio::this_coro::executor, 5s);
            auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
            wait_aborted = ec == asio::error::operation_aborted;
            // The coordinator is gone by now; its state is kept alive for this.
            saw_cancel = ctx.cancellation_requested();
            ctx.report_progress(0.9, "after the end");
            ++resumed;
            co_return std::string("too late");
        });
        auto r = c.submit_async("sleepy", "");
        REQUIRE(r);
        // Start it: run the context until the coroutine is suspended on its timer.
        REQUIRE(eventually([&] {
            io.poll();
            return c.get_status(r.handle.id()) == oc::task_status::running;
        }));
        for (int i = 0; i < 5; ++i) io.poll();
        c.stop(oc::stop_mode::abort);  // the coroutine cannot be waited for: it is fenced and cancelled
        CHECK(c.get_status(r.handle.id()) == oc::task_status::cancelled);
    }
    // The cancellation posted by stop() runs now: the coroutine resumes long
    // before its timer, after its coordinator was destroyed (ASan checks this).
    io.run_for(10s);
    CHECK(wait_aborted.load());  // ended by the cancellation, not by its timer
    CHECK(resumed.load() == 1);
    CHECK(saw_cancel.load());
}

TEST_CASE("executor: worker_pool on the user's io_context", "[executor][worker_pool]") {
    asio::io_context io;
    const std::size_t before = thread_count();
    oc::pool_options po;
    po.min_workers = 2;
    po.max_workers = 2;
    po.worker_template.executor = io.get_executor();
    oc::worker_pool pool{po};
    if (counts_threads) CHECK(thread_count() == before);
    std::atomic<int> ran{0};
    std::atomic<std::thread::id> on{};
    for (int i = 0; i < 100; ++i) pool.post([&] {
            on = std::this_thread::get_id();
            ++ran;
        });
    auto f = pool.submit([] { return 42; });
    {
        loop_thread loop(io);
        CHECK(f.get() == 42);
        pool.stop(oc::stop_mode::graceful);  // the loop runs: graceful waits for all of it
        CHECK(ran.load() == 100);
        CHECK(on.load() == loop.id());
    }
    CHECK(pool.stats().completed == 101);
}

// ---------------------------------------------------------------------------
// Awaiting tasks from coroutines: task_handle::async_wait_for / async_get.

namespace {

oc::coordinator_options own_threads() { return fast(4, 1); }

/// Runs `f` as a coroutine on `io` until it ends; rethrows its exception.
template <class F>
void run_coroutine(asio::io_context& io, F f) {
    std::exception_ptr failure;
    bool done = false;
    asio::co_spawn(io, std::move(f), [&](std::exception_ptr e) {
        failure = e;
        done = true;
    });
    io.run_for(10s);
    REQUIRE(done);
    if (failure) std::rethrow_exception(failure);
}

}  // namespace

TEST_CASE("executor: coroutines await tasks without blocking their thread", "[executor][async_wait]") {
    oc::test::gate g;
    oc::coordinator c{own_threads()};
    oc::test::gate_guard guard{g};
    c.register_handler("echo", [](oc::task_context& ctx) { return ctx.payload(); });
    c.register_handler("held", [&](oc::task_context&) {
        g.wait();
        return std::string("released");
    });
    c.register_handler("bad", [](oc::task_context&) -> std::string { throw std::runtime_error("broken"); });

    asio::io_context io;
    std::vector<std::string> log;
    run_coroutine(io, [&]() -> asio::awaitable<void> {
        auto a = c.submit_async("echo", "one");
        CHECK(co_await a.handle.async_get() == "one");

        // Ten coroutines await one held task; a timer on the same thread
        // keeps ticking meanwhile (the waits do not block the thread).
        auto h = c.submit_async("held", "");
        int woken = 0;
        for (int i = 0; i < 10; ++i)
            asio::co_spawn(io, [&, handle = h.handle]() -> asio::awaitable<void> {
                auto r = co_await handle.async_wait_for(5s);
                if (r && r->status == oc::task_status::completed && r->result == "released") ++woken;
            }, asio::detached);
        int ticks = 0;
        asio::steady_timer t(io);
        for (; ticks < 5; ++ticks) {
            t.expires_after(5ms);
            co_await t.async_wait(asio::use_awaitable);
        }
        CHECK(woken == 0);
        // A timed wait on the still-held task times out, empty.
        CHECK_FALSE((co_await h.handle.async_wait_for(20ms)).has_value());
        CHECK_FALSE((co_await h.handle.async_wait_until(std::chrono::steady_clock::now())).has_value());
        g.open();
        CHECK(co_await h.handle.async_get() == "released");
        for (int i = 0; i < 100 && woken < 10; ++i) {
            t.expires_after(2ms);
            co_await t.async_wait(asio::use_awaitable);
        }
        CHECK(woken == 10);

        // Failures and cancellations come back as get() reports them.
        oc::task_options once;
        once.max_retries = 0;
        auto b = c.submit_async("bad", "", once);
        try {
            (void)co_await b.handle.async_get();
            FAIL("async_get of a failed task must throw");
        } catch (const oc::task_failed_error& e) {
            CHECK(e.record().status == oc::task_status::failed);
        }
        c.scale(0);  // clamped to min_workers = 1; hold its slots to queue the next task
        oc::test::gate g2;
        c.register_handler("held2", [&](oc::task_context&) {
            g2.wait(2s);
            return std::string();
        });
        std::vector<oc::submit_result> fill;
        for (int i = 0; i < 4; ++i) fill.push_back(c.submit_async("held2", ""));
        auto q = c.submit_async("echo", "queued");
        REQUIRE(c.get_status(q.handle.id()) == oc::task_status::queued);
        CHECK(c.cancel(q.handle.id()));
        try {
            (void)co_await q.handle.async_get();
            FAIL("async_get of a cancelled task must throw");
        } catch (const oc::cancelled_error&) {
        }
        g2.open();
        for (auto& f : fill) (void)co_await f.handle.async_get();

        // An unknown id is an error, as for wait_for.
        try {
            (void)co_await c.async_wait_for("no-such-task", 10ms);
            FAIL("expected not_found");
        } catch (const oc::error& e) {
            CHECK(e.code() == oc::errc::not_found);
        }
        log.push_back("done");
    });
    CHECK(log == std::vector<std::string>{"done"});
    // Blocking pair of the same wait.
    auto d = c.submit_async("echo", "blocking");
    const auto rec = d.handle.wait_until(std::chrono::steady_clock::now() + 5s);
    REQUIRE(rec);
    CHECK(rec->result == "blocking");
}

TEST_CASE("executor: a coroutine awaiting a task wakes when the coordinator stops", "[executor][async_wait][stop]") {
    oc::test::gate g;
    auto o = own_threads();
    o.cancel_grace = 20ms;
    oc::coordinator c{o};
    oc::test::gate_guard guard{g};
    c.register_handler("held", [&](oc::task_context& ctx) {
        while (!ctx.cancellation_requested() && !g.wait(5ms)) {
        }
        return std::string("held");
    });
    auto h = c.submit_async("held", "");
    REQUIRE(h);
    asio::io_context io;
    std::optional<oc::task_record> got;
    std::thread stopper([&] {
        std::this_thread::sleep_for(50ms);
        c.stop(oc::stop_mode::abort);
    });
    run_coroutine(io, [&]() -> asio::awaitable<void> { got = co_await h.handle.async_wait_for(10s); });
    stopper.join();
    REQUIRE(got);
    CHECK(got->status == oc::task_status::cancelled);
}

TEST_CASE("executor: a worker_pool on an io_context nobody runs is destroyed without hanging",
          "[executor][worker_pool][stop]") {
    asio::io_context io;
    std::atomic<int> ran{0};
    std::future<int> f;
    {
        oc::pool_options po;
        po.min_workers = 1;
        po.max_workers = 1;
        po.worker_template.executor = io.get_executor();
        oc::worker_pool pool{po};
        for (int i = 0; i < 10; ++i) pool.post([&] { ++ran; });
        f = pool.submit([] { return 1; });
    }  // the destructor drops what never started
    CHECK_THROWS_AS(f.get(), oc::cancelled_error);
    io.run_for(50ms);  // the pool's queued drainer runs and finds nothing left to do
    CHECK(ran.load() == 0);
}

TEST_CASE("executor: a worker on a user executor that no shared_ptr owns says so", "[executor][worker_pool]") {
    asio::io_context io;
    oc::worker_options wo;
    wo.id = "loose";
    wo.executor = io.get_executor();
    oc::worker w{wo};  // misuse: drainers on a user executor must keep the worker alive
    try {
        w.post([] {});
        FAIL("expected invalid_argument");
    } catch (const oc::invalid_argument& e) {
        CHECK(e.field() == "worker");
        CHECK_THAT(std::string(e.what()), Catch::Contains("shared_ptr"));
    }
    CHECK_THROWS_AS(w.post([] {}), oc::invalid_argument);  // every time, not once
}
