// redis_options: URL parsing (no server), validation of options set
// directly, the largest timeouts, and the injectivity of the key names.
#include <orchcore/redis/redis.hpp>

#include "redis/redis_server_fixture.hpp"
#include "support/error_helpers.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/use_future.hpp>

#include <catch2/catch.hpp>
#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include <chrono>
#include <future>
#include <limits>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace orchcore;
using namespace std::chrono_literals;
using orchcore::test::redis_server;
using orchcore::test::invalid_field;
using orchcore::test::shared_redis_server;

namespace {

std::string url_error(std::string_view url) {
    return invalid_field([&] { redis_options::from_url(url); });
}

constexpr auto forever = std::chrono::milliseconds::max();

// Every piece of every password below contains this marker; it appears
// nowhere else in the URLs.
constexpr std::string_view marker = "S3CR";

struct url_case {
    std::string url;
    std::string field;     // the field named in the error; empty: the URL is accepted
    std::string password;  // when accepted: the decoded password
};

}  // namespace

TEST_CASE("redis_options::from_url: a password with '/', '?', '#', '@' or ':' is parsed and never shown",
          "[redis][options]") {
    const std::vector<url_case> cases = {
        {"redis://user:S3CRa/S3CRb@h:6379/0", "", "S3CRa/S3CRb"},
        {"redis://user:1234/S3CRwxyz@h:6379/0", "", "1234/S3CRwxyz"},
        {"redis://user:S3CRa?S3CRb@h:6379/0", "", "S3CRa?S3CRb"},
        {"redis://user:S3CRa#S3CRb@h/1", "", "S3CRa#S3CRb"},
        {"redis://user:S3CRa@S3CRb@h", "", "S3CRa@S3CRb"},
        {"redis://user:S3CRa:S3CRb@h", "", "S3CRa:S3CRb"},
        {"redis://user:S3CR%2F%3F%23%40%3A%25@h", "", "S3CR/?#@:%"},
        {"redis://:S3CRa/S3CRb@h", "", "S3CRa/S3CRb"},
        {"redis://S3CRa/S3CRb@h", "", "S3CRa/S3CRb"},  // a lone userinfo is the password
        {"redis://user:S3CRa/S3CRb@[::1]:7000/2?prefix=p", "", "S3CRa/S3CRb"},
        {"redis://user:S3CRa/S3CRb@h:99999/0", "url.port", ""},
        {"redis://user:S3CRa/S3CRb@h:6379:6380", "url.port", ""},
        {"redis://user:S3CRa/S3CRb@h/x", "url.db", ""},
        {"redis://user:S3CRa/S3CRb@h/0/1", "url.db", ""},
        {"redis://user:S3CRa?x=S3CRb@h?colour=red", "url.query", ""},
        {"redis://user:S3CRa/S3CRb@h?pool_size=x", "url.pool_size", ""},
        {"redis://user:S3CRa/S3CRb@h?prefix=a{b}", "prefix", ""},
        {"redis://user:S3CR%zz@h", "url.password", ""},
        {"redis://user:S3CR%4@h", "url.password", ""},
        {"redis://user:S3CRa/S3CRb@", "url.host", ""},
        {"redis://user:S3CRa/S3CRb@/0", "url.host", ""},
        {"redis://u:S3CRa/S3CRb@[::1", "url.host", ""},
        {"redis://user:S3CRa/S3CRb@h#S", "url.fragment", ""},
        {"redis://user:S3CRa\x01S3CRb@h", "url.password", ""},
        {"redis://user:S3CRa/S3CRb@h\x7f", "url.host", ""},
        {"rediss://user:S3CRa/S3CRb@h", "url", ""},
        {"http://user:S3CRa/S3CRb@h", "url", ""},
        {"user:S3CRa://S3CRb@h", "url", ""},
        {"redis://user:@h", "url.password", ""},
        {"redis://user:S3CRa/S3CRb@h?pool_size=0", "pool_size", ""},
    };
    for (const auto& c : cases) {
        INFO("url: " << c.url);
        if (c.field.empty()) {
            redis_options o;
            REQUIRE_NOTHROW(o = redis_options::from_url(c.url));
            CHECK(o.password == c.password);
            CHECK(o.describe().find(marker) == std::string::npos);
        } else {
            const std::string e = url_error(c.url);
            CHECK_THAT(e, Catch::StartsWith(c.field + " | "));
            CHECK(e.find(marker) == std::string::npos);
        }
    }
}

TEST_CASE("redis_options::from_url: user and password are percent-decoded; host and port are split exactly",
          "[redis][options]") {
    auto o = redis_options::from_url("redis://al%69ce:p%20w@example.org:6380/3");
    CHECK(o.user == "alice");
    CHECK(o.password == "p w");
    CHECK(o.host == "example.org");
    CHECK(o.port == 6380);
    CHECK(o.db == 3);
    auto v6 = redis_options::from_url("redis://[fe80::1]/0");
    CHECK(v6.host == "fe80::1");
    CHECK(v6.port == 6379);
}

TEST_CASE("redis_options::from_url refuses malformed URLs, naming the field and the value", "[redis][options]") {
    using Catch::Contains;
    using Catch::StartsWith;
    const std::string nul_host("redis://127.0.0.1\0.evil.example", 31);
    CHECK_THAT(url_error(nul_host), StartsWith("url.host | ") && Contains("\\x00"));
    CHECK_THAT(url_error("redis://h#fragment"), StartsWith("url.fragment | ") && Contains("fragment"));
    CHECK_THAT(url_error("redis://h:6379:6380"), StartsWith("url.port | ") && Contains("6379:6380"));
    CHECK_THAT(url_error("redis://::1"), StartsWith("url.host | ") && Contains("[::1]"));
    CHECK_THAT(url_error("redis://h a"), StartsWith("url.host | "));
    CHECK_THAT(url_error("redis://[zz::1]"), StartsWith("url.host | ") && Contains("zz::1"));
    CHECK_THAT(url_error("redis://[]"), StartsWith("url.host | "));
    CHECK_THAT(url_error("redis://h:+1"), StartsWith("url.port | ") && Contains("+1"));
    CHECK_THAT(url_error("redis://h/+1"), StartsWith("url.db | ") && Contains("+1"));
    CHECK_THAT(url_error("redis://h?prefix=a&prefix=b"), StartsWith("url.prefix | ") && Contains("more than once"));
    CHECK_THAT(url_error("redis://h?retry_timeout_ms=99999999999999999999"),
               StartsWith("url.retry_timeout_ms | ") && Contains("99999999999999999999"));
    CHECK_THAT(url_error("redis://h?connect_timeout_ms=-1"), StartsWith("url.connect_timeout_ms | "));
    CHECK_THAT(url_error("redis://h?=1"), StartsWith("url.query | "));
    CHECK_THAT(url_error("redis://h?pool_size"), StartsWith("url.query | ") && Contains("pool_size"));
    CHECK_THAT(url_error("redis://h?pool_size=1\n"), StartsWith("url.query | ") && Contains("\\x0a"));
    CHECK_THAT(url_error("redis://h?Prefix=a"), StartsWith("url.query | ") && Contains("unknown parameter"));
}

TEST_CASE("redis_options::validate refuses what a URL cannot express, naming the field and the value",
          "[redis][options]") {
    auto field = [](auto mutate) {
        redis_options o;
        mutate(o);
        return invalid_field([&] { o.validate(); });
    };
    using Catch::Contains;
    using Catch::StartsWith;
    CHECK_THAT(field([](redis_options& o) { o.host = std::string("127.0.0.1\0.evil.example", 23); }),
               StartsWith("host | ") && Contains("\\x00"));
    CHECK_THAT(field([](redis_options& o) { o.host = "a b"; }), StartsWith("host | ") && Contains("\"a b\""));
    CHECK_THAT(field([](redis_options& o) { o.host = "h/0"; }), StartsWith("host | "));
    CHECK_THAT(field([](redis_options& o) { o.host = ""; }), StartsWith("host | "));
    CHECK_THAT(field([](redis_options& o) { o.port = 65536; }), StartsWith("port | ") && Contains("65536"));
    CHECK_THAT(field([](redis_options& o) { o.retry_timeout = -1ms; }), StartsWith("retry_timeout | "));
    CHECK_THAT(field([](redis_options& o) { o.connect_timeout = 0ms; }), StartsWith("connect_timeout | "));
    CHECK(field([](redis_options& o) { o.host = "::1"; }) == "no exception");
    CHECK(field([](redis_options& o) { o.host = "redis-1.internal_x"; }) == "no exception");
    CHECK(field([](redis_options& o) {
              o.connect_timeout = o.command_timeout = o.retry_timeout = forever;
              o.reconnect_backoff_base = o.reconnect_backoff_cap = forever;
          }) == "no exception");
}

TEST_CASE("redis_options: the largest timeouts are accepted from a URL", "[redis][options]") {
    const auto o = redis_options::from_url(
        "redis://h?connect_timeout_ms=9223372036854775807&command_timeout_ms=9223372036854775807"
        "&retry_timeout_ms=9223372036854775807");
    CHECK(o.connect_timeout == forever);
    CHECK(o.command_timeout == forever);
    CHECK(o.retry_timeout == forever);
}

TEST_CASE("redis_client: the largest timeouts mean a long time, not an error", "[redis][options]") {
    auto o = shared_redis_server().options("huge");
    o.connect_timeout = o.command_timeout = o.retry_timeout = forever;
    o.reconnect_backoff_cap = forever;
    redis_client c{o};
    CHECK_NOTHROW(c.ping());
    CHECK(c.command({"SET", o.prefix + ":k", "v"}).str == "OK");
    CHECK(c.command({"GET", o.prefix + ":k"}).str == "v");
}

TEST_CASE("redis_client: retry_timeout = milliseconds::max() keeps reconnecting until the server is back",
          "[redis][options]") {
    redis_server server;
    auto o = server.options("retry");
    o.retry_timeout = forever;
    o.connect_timeout = 2'000ms;
    o.reconnect_backoff_base = 5ms;
    o.reconnect_backoff_cap = 20ms;
    server.stop();
    auto c = std::make_shared<redis_client>(o);
    auto done = std::async(std::launch::async, [c] { c->ping(); });
    // Wait until the client has failed twice (it is retrying), then start
    // the server again.
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (c->stats().connect_failures < 2 && done.wait_for(5ms) != std::future_status::ready)
        REQUIRE(std::chrono::steady_clock::now() < deadline);
    server.start();
    REQUIRE(done.wait_for(60s) == std::future_status::ready);
    CHECK_NOTHROW(done.get());
}

TEST_CASE("redis_async_connection: command_timeout = milliseconds::max() means a long time", "[redis][options]") {
    boost::asio::io_context io;
    auto work = boost::asio::make_work_guard(io);
    std::thread t{[&] { io.run(); }};
    auto o = shared_redis_server().options("async-huge");
    o.connect_timeout = o.command_timeout = forever;
    o.reconnect_backoff_cap = forever;
    {
        auto c = redis_async_connection::create(io.get_executor(), o);
        auto f = c->async_command({"PING"}, boost::asio::use_future);
        REQUIRE(f.wait_for(20s) == std::future_status::ready);
        CHECK(f.get().str == "PONG");
    }
    work.reset();
    t.join();
}

TEST_CASE("redis keys: a ':' in the queue name is refused, so no two configurations share keys",
          "[redis][options]") {
    // Constructors do not connect: nothing listens on this client's port.
    redis_options app;
    app.prefix = "app";
    auto a = std::make_shared<redis_client>(app);
    redis_options app_x = app;
    app_x.prefix = "app:x";
    auto b = std::make_shared<redis_client>(app_x);

    // Used to be {app:x:jobs} for both.
    CHECK_THAT(invalid_field([&] { redis_transport(a, "x:jobs"); }),
               Catch::StartsWith("queue | ") && Catch::Contains("\"x:jobs\""));
    CHECK_THAT(invalid_field([&] { redis_task_store(a, "x:jobs"); }), Catch::StartsWith("queue | "));
    CHECK_THAT(invalid_field([&] { redis_worker_registry(a, "x:jobs"); }), Catch::StartsWith("queue | "));
    CHECK(redis_task_store(b, "jobs").key_base() == "{app:x:jobs}");
    CHECK(redis_transport(b, "jobs").key_base() == "{app:x:jobs}");
}

TEST_CASE("redis keys: (prefix, queue) -> key base is injective over accepted names", "[redis][options]") {
    // base = "{" + prefix + ":" + queue + "}" and neither part may contain a
    // brace, so two pairs share a base exactly when they split the same
    // text at different ':'. Every other split of an accepted pair must be
    // refused.
    rc::prop("no other split of an accepted prefix:queue is accepted", [] {
        const std::string p = *rc::gen::nonEmpty(rc::gen::container<std::string>(rc::gen::element('a', ':')));
        const std::string q = *rc::gen::nonEmpty(rc::gen::container<std::string>(rc::gen::element('a', 'b')));
        auto accepted = [](const std::string& prefix, const std::string& queue) {
            redis_options o;
            o.prefix = prefix;
            try {
                redis_task_store(std::make_shared<redis_client>(o), queue);
                return true;
            } catch (const orchcore::invalid_argument&) {
                return false;
            }
        };
        RC_ASSERT(accepted(p, q));
        const std::string joined = p + ":" + q;
        for (std::size_t i = 0; i < joined.size(); ++i)
            if (joined[i] == ':' && i != p.size()) RC_ASSERT(!accepted(joined.substr(0, i), joined.substr(i + 1)));
    });
}

TEST_CASE("redis_task_store: a TTL of milliseconds::max() keeps a finished record", "[redis][options]") {
    auto client = shared_redis_server().client("ttl");
    redis_task_store_options so;
    so.completed_ttl = so.failed_ttl = so.cancelled_ttl = forever;
    redis_task_store store(client, "q", so);
    task_record r;
    r.id = "long-lived";
    r.type = "t";
    r.status = task_status::queued;
    r.created_at = std::chrono::system_clock::now();
    REQUIRE(store.create(r));
    r.status = task_status::running;
    r.started_at = std::chrono::system_clock::now();
    REQUIRE(store.update(r, task_status::queued));
    r.status = task_status::completed;
    r.finished_at = std::chrono::system_clock::now();
    REQUIRE(store.update(r, task_status::running));
    const auto got = store.get("long-lived");
    REQUIRE(got.has_value());
    CHECK(got->status == task_status::completed);
    CHECK(client->command({"PTTL", store.record_key("long-lived")}).integer != -2);
}

TEST_CASE("redis_event_subscriber: the largest timeouts mean a long time, not an error", "[redis][options]") {
    auto o = shared_redis_server().options("sub-huge");
    o.connect_timeout = o.command_timeout = o.retry_timeout = forever;
    o.reconnect_backoff_cap = forever;
    redis_event_subscriber_options so;
    so.health_check_interval = forever;
    redis_event_subscriber sub(o, [](const event&) {}, so);
    CHECK(sub.wait_subscribed(20s));
    const auto s = sub.stats();
    CHECK(s.connection_failures == 0);
    CHECK(s.last_error.empty());
}

TEST_CASE("redis_transport: a lease of milliseconds::max() ends in the future", "[redis][options]") {
    auto client = shared_redis_server().client("lease");
    redis_transport t(client, "q");
    const auto now = std::chrono::system_clock::now();
    REQUIRE(t.admit({"a"}));
    const auto leases = t.lease("w", 1, forever, now);
    REQUIRE(leases.size() == 1);
    CHECK(leases[0].deadline > now + std::chrono::hours(24 * 365));
}
