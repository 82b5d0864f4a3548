// The coordinator on the application's own io_context: no thread of
// orchcore's. The control loop (timeouts, health, TTL) and the workers
// (plain handlers, coroutine handlers, heartbeats) all run where the
// application runs its own I/O.
#include <orchcore/orchcore.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;

int main() {
    asio::io_context io;
    orchcore::coordinator c{{
        .worker_template = {.max_concurrent = 8, .executor = io.get_executor()},
        .executor = io.get_executor(),
    }};

    // A coroutine handler awaiting a timer of the application's context
    // (a socket or an HTTP client would do the same).
    c.register_async_handler("fetch", [](orchcore::task_context& ctx) -> asio::awaitable<std::string> {
        asio::steady_timer t(co_await asio::this_coro::executor, 20ms);
        co_await t.async_wait(asio::use_awaitable);
        co_return "fetched " + ctx.payload();
    });

    std::vector<orchcore::task_handle> handles;
    for (const char* url : {"/a", "/b", "/c"}) {
        auto r = c.submit_async("fetch", url);
        if (!r) return 1;
        handles.push_back(r.handle);
    }

    // The application's event loop, here on one thread of its own.
    auto guard = asio::make_work_guard(io);
    std::thread loop([&] { io.run(); });
    for (auto& h : handles) std::printf("%s -> %s\n", h.id().c_str(), h.get().c_str());
    std::printf("workers: %zu, completed: %llu, all on the application's io_context\n", c.get_workers().size(),
                static_cast<unsigned long long>(c.get_stats().completed));

    c.stop(orchcore::stop_mode::graceful, 2s);  // from a thread that does not run the loop
    guard.reset();
    loop.join();
    return 0;
}
