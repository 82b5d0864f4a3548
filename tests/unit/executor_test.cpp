// The coordinator and the worker pool on an executor of the user's
// (coordinator_options::executor, worker_options::executor): no thread of
// their own, everything on the user's io_context, and a stop() that never
// waits for an executor that is not being run.
#include <orchcore/coordinator.hpp>
#include <orchcore/worker_pool.hpp>

#include <catch2/catch.hpp>

#include "support/sync_helpers.hpp"

#include <boost/asio/as_tuple.hpp>
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

oc::coordinator_options on_executor(const asio::any_io_executor& ex) {
    oc::coordinator_options o;
    o.executor = ex;
    o.worker_template.executor = ex;
    o.worker_template.heartbeat_interval = 20ms;
    o.worker_template.max_concurrent = 2;
    o.worker_timeout = 2000ms;
    o.scaling.min_workers = 1;
    o.scaling.max_workers = 2;
    o.maintenance_interval = 10ms;
    o.cancel_grace = 100ms;
    o.default_backoff = {.base = 1ms, .cap = 2ms};
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
    CHECK(thread_count() == before);  // neither control thread nor worker threads

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
    CHECK(thread_count() == before);
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
    std::atomic<bool> saw_cancel{false};
    {
        auto o = on_executor(io.get_executor());
        o.cancel_grace = 20ms;
        oc::coordinator c{o};
        c.register_async_handler("sleepy", [&](oc::task_context& ctx) -> asio::awaitable<std::string> {
            asio::steady_timer t(co_await asio::this_coro::executor, 200ms);
            co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
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
    io.run_for(500ms);  // the coroutine resumes after its coordinator was destroyed (ASan checks this)
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
    CHECK(thread_count() == before);
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
