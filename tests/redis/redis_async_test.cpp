// redis_async_connection: the Boost.Asio path (no thread per connection).
// Each test runs an io_context on one thread (a helper thread when the test
// thread waits on futures, the test thread itself otherwise).
#include <orchcore/redis/redis.hpp>

#include "redis/redis_server_fixture.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace orchcore;
using namespace std::chrono_literals;
using orchcore::test::redis_server;
using orchcore::test::shared_redis_server;
namespace asio = boost::asio;

namespace {

// An io_context run by one helper thread until destroyed (then it runs what
// is left, so every pending completion is delivered, and joins).
struct io_thread {
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
    std::thread thread{[this] { io.run(); }};

    ~io_thread() {
        work.reset();
        thread.join();
    }
};

template <class T>
T get(std::future<T>& f) {
    REQUIRE(f.wait_for(20s) == std::future_status::ready);
    return f.get();
}

redis_reply run(redis_async_connection& c, std::vector<std::string> args) {
    auto f = c.async_command(std::move(args), asio::use_future);
    return get(f);
}

struct failure_seen {
    redis_failure failure;
    std::string what;
};

failure_seen expect_failure(std::future<redis_reply>& f) {
    REQUIRE(f.wait_for(20s) == std::future_status::ready);
    try {
        auto r = f.get();
        FAIL("no exception; reply: " << r.str);
    } catch (const redis_error& e) {
        CHECK(e.code() == orchcore::errc::backend_unavailable);
        return {e.failure(), e.what()};
    }
    return {};
}

// Arguments built outside the coroutine frame (g++ 12 rejects braced
// initializer lists in a co_await expression: "array used as initializer").
template <class... S>
std::vector<std::string> argv(const S&... s) {
    return {std::string(s)...};
}

std::size_t thread_count() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
    return n;
}

// Waits (polling, with a generous deadline) until the server reports `n`
// clients blocked in BLPOP.
void wait_blocked_clients(redis_client& admin, int n) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    const std::string want = "blocked_clients:" + std::to_string(n) + "\r";
    while (admin.command({"INFO", "clients"}).str.find(want) == std::string::npos) {
        REQUIRE(std::chrono::steady_clock::now() < deadline);
        std::this_thread::sleep_for(5ms);
    }
}

}  // namespace

TEST_CASE("redis_async: SET/GET round trip with binary data, via use_future and use_awaitable", "[redis][async]") {
    io_thread t;
    auto o = shared_redis_server().options("async");
    auto c = redis_async_connection::create(t.io.get_executor(), o);
    const std::string key = o.prefix + std::string(":bin\0key\r\n", 10);
    const std::string value("a\0b\r\n\xff\x00z", 8);

    CHECK(run(*c, {"SET", key, value}).str == "OK");
    auto r = run(*c, {"GET", key});
    CHECK(r.type == redis_reply::kind::string);
    CHECK(r.str == value);
    CHECK(r.str.size() == 8);
    CHECK(run(*c, {"GET", o.prefix + ":missing"}).is_nil());

    auto done = asio::co_spawn(
        t.io,
        [&]() -> asio::awaitable<std::string> {
            const std::string k2 = o.prefix + ":coro";
            auto set = co_await c->async_command(argv("SET", k2, value + value), asio::use_awaitable);
            if (set.str != "OK") co_return std::string("SET: ") + set.str;
            auto got = co_await c->async_command(argv("GET", k2), asio::use_awaitable);
            if (got.str != value + value) co_return std::string("GET returned a different value");
            // An error reply is a value, not an exception.
            auto bad = co_await c->async_command(argv("INCR", k2), asio::use_awaitable);
            if (!bad.is_error()) co_return std::string("INCR on a non-integer did not return an error reply");
            auto arr = co_await c->async_command(argv("MGET", key, k2, o.prefix + ":none"), asio::use_awaitable);
            if (arr.type != redis_reply::kind::array || arr.elements.size() != 3 || arr.elements[0].str != value ||
                !arr.elements[2].is_nil())
                co_return std::string("MGET");
            co_return std::string("ok");
        },
        asio::use_future);
    CHECK(get(done) == "ok");
    CHECK(c->stats().connects == 1);  // one connection, opened lazily by the first command
}

TEST_CASE("redis_async: 1000 pipelined INCRs from callbacks and coroutines complete in order on the io thread",
          "[redis][async]") {
    asio::io_context io;  // run by this thread only
    auto o = shared_redis_server().options("async");
    auto c = redis_async_connection::create(io.get_executor(), o);
    const std::string k1 = o.prefix + ":cb", k2 = o.prefix + ":coro";
    constexpr int n = 1000, coroutines = 50, per_coroutine = n / coroutines;

    const auto me = std::this_thread::get_id();
    const std::size_t threads_before = thread_count();
    std::vector<int> order;
    std::vector<long long> values;
    std::size_t completed_when_all_issued = 999'999;
    int errors = 0, wrong_thread = 0, coroutines_in_order = 0, coroutines_done = 0;
    std::set<long long> coroutine_values;
    std::size_t threads_during = 0;

    auto maybe_close = [&] {
        if (order.size() == n && coroutines_done == coroutines) {
            threads_during = thread_count();
            c->close();  // frees the socket: io.run() returns once everything is delivered
        }
    };
    asio::post(io, [&] {
        for (int i = 0; i < n; ++i)
            c->async_command({"INCR", k1}, [&, i](std::exception_ptr ep, redis_reply r) {
                if (ep || r.type != redis_reply::kind::integer) ++errors;
                if (std::this_thread::get_id() != me) ++wrong_thread;
                order.push_back(i);
                values.push_back(r.integer);
                maybe_close();
            });
        // Every call above returned before any reply was delivered.
        completed_when_all_issued = order.size();
    });
    for (int j = 0; j < coroutines; ++j)
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                long long last = 0;
                bool in_order = true;
                for (int i = 0; i < per_coroutine; ++i) {
                    auto r = co_await c->async_command(argv("INCR", k2), asio::use_awaitable);
                    if (std::this_thread::get_id() != me) ++wrong_thread;
                    if (r.integer <= last) in_order = false;
                    last = r.integer;
                    coroutine_values.insert(r.integer);
                }
                if (in_order) ++coroutines_in_order;
                ++coroutines_done;
                maybe_close();
            },
            [&](std::exception_ptr ep) {
                if (ep) ++errors;
            });
    io.run();

    CHECK(completed_when_all_issued == 0);
    CHECK(errors == 0);
    CHECK(wrong_thread == 0);
    REQUIRE(order.size() == n);
    bool in_order = true;
    for (int i = 0; i < n; ++i)
        if (order[static_cast<std::size_t>(i)] != i || values[static_cast<std::size_t>(i)] != i + 1) in_order = false;
    CHECK(in_order);
    CHECK(coroutines_done == coroutines);
    CHECK(coroutines_in_order == coroutines);
    CHECK(coroutine_values.size() == n);
    CHECK(*coroutine_values.rbegin() == n);
    CHECK(threads_during == threads_before);  // no thread was started for the connection
    CHECK(c->stats().connects == 1);
    redis_client check(o);
    CHECK(check.command({"GET", k1}).str == "1000");
    CHECK(check.command({"GET", k2}).str == "1000");
}

TEST_CASE("redis_async: async_eval runs EVALSHA and reloads the script after SCRIPT FLUSH", "[redis][async]") {
    static const redis_script incrby("test_incrby", "return redis.call('INCRBY', KEYS[1], ARGV[1])");
    static const redis_script failing("test_failing", "return redis.error_reply('boom')");
    io_thread t;
    redis_server server;  // SCRIPT FLUSH must not disturb other tests
    auto o = server.options("async");
    auto c = redis_async_connection::create(t.io.get_executor(), o);
    const std::string key = o.prefix + ":n";

    auto f1 = c->async_eval(incrby, {key}, {"5"}, asio::use_future);
    CHECK(get(f1).integer == 5);
    auto f2 = c->async_eval(incrby, {key}, {"5"}, asio::use_future);
    CHECK(get(f2).integer == 10);
    CHECK(c->stats().script_loads == 1);

    redis_client admin(server.options());
    REQUIRE(admin.command({"SCRIPT", "FLUSH"}).str == "OK");
    auto f3 = asio::co_spawn(
        t.io, [&]() -> asio::awaitable<redis_reply> { co_return co_await c->async_eval(incrby, argv(key), argv("5"), asio::use_awaitable); },
        asio::use_future);
    CHECK(get(f3).integer == 15);  // NOSCRIPT -> SCRIPT LOAD -> EVALSHA
    CHECK(c->stats().script_loads == 2);

    auto f4 = c->async_eval(failing, {}, {}, asio::use_future);
    auto e = expect_failure(f4);
    CHECK(e.failure == redis_failure::server);
    CHECK_THAT(e.what, Catch::Contains("test_failing") && Catch::Contains("boom"));
    CHECK(run(*c, {"PING"}).str == "PONG");  // a script error does not break the connection
}

TEST_CASE("redis_async: AUTH and SELECT are sent first; a wrong password fails with redis_failure::auth",
          "[redis][async][auth]") {
    io_thread t;
    redis_server server({"--requirepass", "s3cret"}, "s3cret");
    auto o = server.options("async");

    SECTION("right password and db") {
        o.password = "s3cret";
        o.db = 2;
        auto c = redis_async_connection::create(t.io.get_executor(), o);
        CHECK(run(*c, {"SET", "k", "v"}).str == "OK");
        auto admin_o = server.options();
        admin_o.password = "s3cret";
        redis_client admin(admin_o);
        CHECK(admin.command({"GET", "k"}).is_nil());  // db 2, not 0
        CHECK(run(*c, {"GET", "k"}).str == "v");
    }
    SECTION("wrong password: every pipelined command fails with auth") {
        o.password = "wrong-pw";
        auto c = redis_async_connection::create(t.io.get_executor(), o);
        std::vector<std::future<redis_reply>> fs;
        for (int i = 0; i < 3; ++i) fs.push_back(c->async_command({"PING"}, asio::use_future));
        for (auto& f : fs) {
            auto e = expect_failure(f);
            CHECK(e.failure == redis_failure::auth);
            CHECK_THAT(e.what, Catch::Contains("refused authentication") && Catch::Contains("WRONGPASS") &&
                                   Catch::Contains(o.describe()));
            CHECK_THAT(e.what, !Catch::Contains("wrong-pw"));
        }
        CHECK(c->stats().connects == 0);  // the handshake never succeeded
    }
    SECTION("no password") {
        auto c = redis_async_connection::create(t.io.get_executor(), o);
        auto f = c->async_command({"PING"}, asio::use_future);
        auto e = expect_failure(f);
        CHECK(e.failure == redis_failure::auth);
        CHECK_THAT(e.what, Catch::Contains("requires authentication"));
    }
    SECTION("ACL user") {
        auto admin_o = o;
        admin_o.password = "s3cret";
        redis_client admin(admin_o);
        REQUIRE(admin.command({"ACL", "SETUSER", "alice", "on", ">alicepw", "~*", "+@all"}).str == "OK");
        o.user = "alice";
        o.password = "alicepw";
        auto c = redis_async_connection::create(t.io.get_executor(), o);
        CHECK(run(*c, {"ACL", "WHOAMI"}).str == "alice");
        o.password = "nope";
        auto bad = redis_async_connection::create(t.io.get_executor(), o);
        auto f = bad->async_command({"PING"}, asio::use_future);
        auto e = expect_failure(f);
        CHECK(e.failure == redis_failure::auth);
        CHECK_THAT(e.what, Catch::Contains("for user 'alice'"));
    }
}

TEST_CASE("redis_async: a server that stops answering times out, and the connection works again afterwards",
          "[redis][async][failure]") {
    io_thread t;
    redis_server server;
    auto o = server.options("async");
    o.command_timeout = 300ms;
    o.reconnect_backoff_base = 20ms;
    o.reconnect_backoff_cap = 100ms;
    auto c = redis_async_connection::create(t.io.get_executor(), o);
    REQUIRE(run(*c, {"PING"}).str == "PONG");

    redis_client admin(server.options());
    REQUIRE(admin.command({"CLIENT", "PAUSE", "2500", "ALL"}).str == "OK");
    const auto start = std::chrono::steady_clock::now();
    auto f1 = c->async_command({"GET", "x"}, asio::use_future);
    auto f2 = c->async_command({"GET", "y"}, asio::use_future);
    auto e1 = expect_failure(f1);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    CHECK(e1.failure == redis_failure::timeout);
    CHECK_THAT(e1.what, Catch::Contains("no reply within command_timeout = 300ms") && Catch::Contains(o.describe()));
    CHECK(elapsed >= 300ms);
    CHECK(elapsed < 2000ms);  // well before the pause ends
    // The other one either timed out too or was failed by the dropped connection.
    auto e2 = expect_failure(f2);
    CHECK((e2.failure == redis_failure::timeout || e2.failure == redis_failure::io));

    // After the pause the connection works again (it reconnects on its own).
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    for (;;) {
        auto f = c->async_command({"PING"}, asio::use_future);
        REQUIRE(f.wait_for(20s) == std::future_status::ready);
        try {
            const auto r = f.get();
            CHECK(r.str == "PONG");
            break;
        } catch (const redis_error&) {
            REQUIRE(std::chrono::steady_clock::now() < deadline);  // still paused: try again
        }
    }
    CHECK(c->stats().connects >= 2);
    CHECK(c->stats().timeouts >= 1);
}

TEST_CASE("redis_async: a server restart fails outstanding commands; later ones reconnect", "[redis][async][failure]") {
    io_thread t;
    redis_server server;
    auto o = server.options("async");
    o.command_timeout = 20s;
    o.reconnect_backoff_base = 20ms;
    o.reconnect_backoff_cap = 100ms;
    auto c = redis_async_connection::create(t.io.get_executor(), o);
    REQUIRE(run(*c, {"PING"}).str == "PONG");

    {
        redis_client admin(server.options());
        auto blocked = c->async_command({"BLPOP", o.prefix + ":never", "0"}, asio::use_future);
        auto behind = c->async_command({"GET", "x"}, asio::use_future);  // pipelined behind BLPOP
        wait_blocked_clients(admin, 1);
        server.stop();
        for (auto* f : {&blocked, &behind}) {
            auto e = expect_failure(*f);
            CHECK(e.failure == redis_failure::io);
            CHECK_THAT(e.what, Catch::Contains(o.describe()) && Catch::Contains("server closed the connection"));
        }
    }
    // While it is down: a clear connect error.
    auto down = c->async_command({"PING"}, asio::use_future);
    auto e = expect_failure(down);
    CHECK(e.failure == redis_failure::connect);
    CHECK_THAT(e.what, Catch::Contains("cannot connect to redis at " + o.describe()));

    server.start();
    CHECK(run(*c, {"SET", "k", "v"}).str == "OK");  // reconnects after the backoff
    CHECK(run(*c, {"GET", "k"}).str == "v");
    CHECK(c->stats().connects == 2);
}

TEST_CASE("redis_async: close() and the destructor complete outstanding commands with an error exactly once",
          "[redis][async]") {
    auto o = shared_redis_server().options("async");
    redis_client admin(shared_redis_server().options());
    constexpr int n = 5;
    std::atomic<int> calls[n] = {};
    std::atomic<int> closed_errors{0}, other{0};
    auto callback = [&](int i) {
        return [&, i](std::exception_ptr ep, redis_reply) {
            calls[i].fetch_add(1);
            try {
                if (ep) std::rethrow_exception(ep);
                other.fetch_add(1);
            } catch (const redis_error& e) {
                if (e.failure() == redis_failure::io && std::string(e.what()).find("closed") != std::string::npos)
                    closed_errors.fetch_add(1);
                else
                    other.fetch_add(1);
            }
        };
    };
    auto issue = [&](redis_async_connection& c) {
        // One blocks on the server, the rest are pipelined behind it.
        c.async_command({"BLPOP", o.prefix + ":never", "0"}, callback(0));
        for (int i = 1; i < n; ++i) c.async_command({"GET", o.prefix + ":x"}, callback(i));
    };
    {
        io_thread t;
        auto c = redis_async_connection::create(t.io.get_executor(), o);
        REQUIRE(run(*c, {"PING"}).str == "PONG");
        SECTION("close()") {
            issue(*c);
            wait_blocked_clients(admin, 1);
            c->close();
            auto after = c->async_command({"PING"}, asio::use_future);
            auto e = expect_failure(after);
            CHECK(e.failure == redis_failure::io);
            CHECK_THAT(e.what, Catch::Contains("closed"));
            c->close();  // idempotent
        }
        SECTION("destructor") {
            issue(*c);
            wait_blocked_clients(admin, 1);
            c.reset();  // the last reference
        }
        SECTION("close() before the connection is open") {
            auto fresh = redis_async_connection::create(t.io.get_executor(), o);
            issue(*fresh);
            fresh->close();
        }
    }  // joins the io thread once nothing is left to run: every handler has run
    for (int i = 0; i < n; ++i) CHECK(calls[i].load() == 1);
    CHECK(closed_errors.load() + other.load() == n);
    CHECK(other.load() == 0);
    wait_blocked_clients(admin, 0);  // the server saw the connection go
}

TEST_CASE("redis_async: options are validated and a refused connection is a connect error", "[redis][async][failure]") {
    io_thread t;
    auto bad = shared_redis_server().options();
    bad.port = 0;
    CHECK_THROWS_AS(redis_async_connection::create(t.io.get_executor(), bad), orchcore::invalid_argument);

    auto o = shared_redis_server().options();
    o.port = orchcore::test::free_local_port();  // nothing listens there
    o.reconnect_backoff_base = 20ms;
    auto c = redis_async_connection::create(t.io.get_executor(), o);
    for (int i = 0; i < 2; ++i) {  // the second one goes through the backoff timer
        auto f = c->async_command({"PING"}, asio::use_future);
        auto e = expect_failure(f);
        CHECK(e.failure == redis_failure::connect);
        CHECK_THAT(e.what, Catch::Contains("cannot connect to redis at " + o.describe()));
    }
    CHECK(c->stats().connect_failures == 2);
    auto empty = c->async_command({}, asio::use_future);
    REQUIRE(empty.wait_for(20s) == std::future_status::ready);
    CHECK_THROWS_AS(empty.get(), orchcore::invalid_argument);
}
