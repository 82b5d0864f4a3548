// The event bus over Redis pub/sub: redis_event_publisher and
// redis_event_subscriber against a private redis-server.
#include <orchcore/redis/redis.hpp>

#include "redis/redis_server_fixture.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace orchcore;
using namespace std::chrono_literals;
using orchcore::test::redis_server;
using orchcore::test::shared_redis_server;

namespace {

// Collects events from any thread.
struct collector {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<event> events;

    void operator()(const event& e) {
        {
            std::lock_guard lk(mu);
            events.push_back(e);
        }
        cv.notify_all();
    }
    bool wait_for_count(std::size_t n, std::chrono::milliseconds d = 5s) {
        std::unique_lock lk(mu);
        return cv.wait_for(lk, d, [&] { return events.size() >= n; });
    }
    std::size_t size() {
        std::lock_guard lk(mu);
        return events.size();
    }
    event at(std::size_t i) {
        std::lock_guard lk(mu);
        return events.at(i);
    }
};

event full_event() {
    event e;
    e.kind = event_kind::task_progress;
    e.task_id = std::string("id with \"quotes\", \n newline, \0 nul and \xff bytes", 47);
    e.worker_id = "worker-7";
    e.status = task_status::running;
    e.attempt = 3;
    e.detail = "half way {json: true}";
    e.progress = 0.625;
    e.from = 2;
    e.to = 9;
    e.at = std::chrono::system_clock::time_point{std::chrono::system_clock::duration{1'700'000'000'123'456'789LL}};
    return e;
}

void check_same(const event& a, const event& b) {
    CHECK(a.kind == b.kind);
    CHECK(a.task_id == b.task_id);
    CHECK(a.worker_id == b.worker_id);
    CHECK(a.status == b.status);
    CHECK(a.attempt == b.attempt);
    CHECK(a.detail == b.detail);
    CHECK(a.progress == b.progress);
    CHECK(a.from == b.from);
    CHECK(a.to == b.to);
    CHECK(a.at == b.at);
}

template <class Pred>
bool eventually(Pred p, std::chrono::milliseconds d = 5s) {
    const auto end = std::chrono::steady_clock::now() + d;
    while (!p()) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

}  // namespace

TEST_CASE("redis events: the JSON encoding round-trips every field", "[redis][events]") {
    const auto e = full_event();
    std::string origin;
    const auto d = decode_event_json(encode_event_json(e, "node-1"), &origin);
    check_same(e, d);
    CHECK(origin == "node-1");
    // Every kind survives.
    for (auto k : {event_kind::task_queued, event_kind::stale_token_refused, event_kind::worker_dead,
                   event_kind::scaled}) {
        event x;
        x.kind = k;
        CHECK(decode_event_json(encode_event_json(x)).kind == k);
    }
    auto why = [](std::string_view text) {
        try {
            decode_event_json(text);
        } catch (const orchcore::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("decoded");
    };
    CHECK_THAT(why("{nope"), Catch::Contains("not valid JSON"));
    CHECK_THAT(why("[1,2]"), Catch::Contains("not a JSON object"));
    CHECK_THAT(why(R"({"kind":"task.queued"})"), Catch::Contains("version"));
    CHECK_THAT(why(R"({"v":1,"kind":"task.exploded"})"), Catch::Contains("unknown kind"));
    CHECK_THAT(why(R"({"v":1,"kind":"task.queued","attempt":"x"})"), Catch::Contains("attempt"));
    CHECK_THAT(why(R"({"v":1,"kind":"task.queued","attempt":-1})"), Catch::Contains("attempt"));
    CHECK_THAT(why(R"({"v":1,"kind":"task.queued","status":"weird"})"), Catch::Contains("unknown status"));
    CHECK_THAT(why(R"({"v":1,"kind":"task.queued","task_id":5})"), Catch::Contains("task_id"));
    CHECK(why(R"({"v":1,"kind":"worker.started"})") == "decoded");  // missing fields keep defaults
}

TEST_CASE("redis events: progress reads back as the same double, NaN and infinity included", "[redis][events]") {
    // Boost.JSON 1.81's parser rounds some texts to a neighbouring double,
    // and its serialiser writes NaN and infinity as text no JSON parser reads.
    for (double p : {2.1e29, 0.30000000000000004, 1.3927926388013963e-143, -0.0, 4.9406564584124654e-324,
                     std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
        event e;
        e.kind = event_kind::task_progress;
        e.progress = p;
        const auto text = encode_event_json(e);
        INFO(text);
        const auto d = decode_event_json(text);
        if (std::isnan(p)) {
            CHECK(std::isnan(d.progress));
        } else {
            CHECK(d.progress == p);
            CHECK(std::signbit(d.progress) == std::signbit(p));
        }
    }
}

TEST_CASE("redis events: an event published by one side arrives on the other with all fields",
          "[redis][events]") {
    auto client = shared_redis_server().client("ev");
    collector got;
    redis_event_subscriber sub(client->options(), std::ref(got));
    REQUIRE(sub.wait_subscribed(5s));

    redis_event_publisher pub(client);
    CHECK(pub.channel(event_channel::tasks) == client->options().prefix + ":tasks.events");
    CHECK(pub.channel(event_channel::workers) == client->options().prefix + ":workers.events");
    const auto e = full_event();
    CHECK(pub.publish(e) == 1);  // one subscriber received it
    event w;
    w.kind = event_kind::scaled;
    w.from = 1;
    w.to = 4;
    w.detail = "depth 900";
    pub.post(w);  // through the sender thread
    REQUIRE(pub.flush(5s));
    REQUIRE(got.wait_for_count(2));
    check_same(got.at(0), e);
    check_same(got.at(1), w);
    CHECK(pub.stats().published == 2);
    const auto s = sub.stats();
    CHECK(s.received == 2);
    CHECK(s.delivered == 2);
    CHECK(s.malformed == 0);
    CHECK(s.subscribed);
    CHECK(s.connects == 1);
}

TEST_CASE("redis events: two processes' buses are bridged without echoes", "[redis][events]") {
    auto ro = shared_redis_server().options("bridge");
    // "Process" A and B: each a local bus, a publisher attached to it, and
    // a subscriber that republishes remote events into it.
    event_bus bus_a, bus_b;
    redis_event_publisher pub_a(std::make_shared<redis_client>(ro));
    redis_event_publisher pub_b(std::make_shared<redis_client>(ro));
    auto att_a = pub_a.attach(bus_a);
    auto att_b = pub_b.attach(bus_b);
    redis_event_subscriber sub_a(ro, bus_a, {.ignore_origin = pub_a.origin()});
    redis_event_subscriber sub_b(ro, bus_b, {.ignore_origin = pub_b.origin()});
    REQUIRE(sub_a.wait_subscribed(5s));
    REQUIRE(sub_b.wait_subscribed(5s));
    collector seen_a, seen_b, workers_b;
    auto s1 = bus_a.subscribe(event_channel::tasks, std::ref(seen_a));
    auto s2 = bus_b.subscribe(event_channel::tasks, std::ref(seen_b));
    auto s3 = bus_b.subscribe(event_channel::workers, std::ref(workers_b));

    const auto e = full_event();
    bus_a.publish(e);  // local delivery in A, and through Redis to B
    event started;
    started.kind = event_kind::worker_started;
    started.worker_id = "w-a-1";
    bus_a.publish(started);
    REQUIRE(pub_a.flush(5s));
    REQUIRE(seen_b.wait_for_count(1));
    REQUIRE(workers_b.wait_for_count(1));
    check_same(seen_b.at(0), e);
    CHECK(workers_b.at(0).worker_id == "w-a-1");
    // A's own message came back to A's subscriber and was skipped; B did
    // not forward what it received.
    REQUIRE(eventually([&] { return sub_a.stats().skipped_own == 2; }));
    std::this_thread::sleep_for(100ms);
    CHECK(pub_b.flush(1s));
    CHECK(pub_b.stats().published == 0);
    CHECK(seen_a.size() == 1);  // only the local delivery
    CHECK(seen_b.size() == 1);
    CHECK(sub_b.stats().delivered == 2);
    CHECK(pub_a.stats().published == 2);
    // Detached: nothing more is forwarded.
    att_a.reset();
    bus_a.publish(e);
    CHECK(pub_a.flush(1s));
    CHECK(pub_a.stats().published == 2);
}

TEST_CASE("redis events: malformed messages are counted and skipped", "[redis][events]") {
    auto client = shared_redis_server().client("bad");
    collector got;
    std::mutex mu;
    std::vector<std::string> reasons;
    redis_event_subscriber_options so;
    so.on_malformed = [&](std::string_view channel, std::string_view msg, std::string_view why) {
        std::lock_guard lk(mu);
        reasons.push_back(std::string(channel) + " | " + std::string(msg) + " | " + std::string(why));
    };
    redis_event_subscriber sub(client->options(), std::ref(got), so);
    REQUIRE(sub.wait_subscribed(5s));
    const std::string ch = redis_event_channel(client->options(), event_channel::tasks);
    for (const char* junk : {"not json at all", "{\"v\":1,\"kind\":\"nope\"}", "{\"v\":2,\"kind\":\"task.queued\"}",
                             "{\"v\":1,\"kind\":\"task.queued\",\"attempt\":{}}", ""})
        client->command({"PUBLISH", ch, junk});
    redis_event_publisher pub(client);
    event ok;
    ok.kind = event_kind::task_completed;
    ok.task_id = "after-junk";
    pub.publish(ok);
    REQUIRE(got.wait_for_count(1));
    CHECK(got.at(0).task_id == "after-junk");
    const auto s = sub.stats();
    CHECK(s.received == 6);
    CHECK(s.malformed == 5);
    CHECK(s.delivered == 1);
    CHECK(s.subscribed);
    std::lock_guard lk(mu);
    REQUIRE(reasons.size() == 5);
    CHECK_THAT(reasons[0], Catch::StartsWith(ch + " | not json at all | ") && Catch::Contains("not valid JSON"));
    CHECK_THAT(reasons[1], Catch::Contains("unknown kind"));
}

TEST_CASE("redis events: a throwing callback is counted and does not stop the subscriber", "[redis][events]") {
    auto client = shared_redis_server().client("throw");
    std::atomic<int> calls{0};
    redis_event_subscriber sub(client->options(), [&](const event& e) {
        ++calls;
        if (e.task_id == "boom") throw std::runtime_error("handler failed");
    });
    REQUIRE(sub.wait_subscribed(5s));
    redis_event_publisher pub(client);
    event e;
    e.task_id = "boom";
    pub.publish(e);
    e.task_id = "fine";
    pub.publish(e);
    REQUIRE(eventually([&] { return calls.load() == 2; }));
    CHECK(sub.stats().handler_errors == 1);
    CHECK(sub.stats().delivered == 2);
}

TEST_CASE("redis events: the subscriber reconnects with backoff when Redis restarts", "[redis][events][failure]") {
    redis_server server;
    auto o = server.options("re");
    o.reconnect_backoff_base = 20ms;
    o.reconnect_backoff_cap = 200ms;
    collector got;
    redis_event_subscriber sub(o, std::ref(got), {.health_check_interval = 500ms});
    REQUIRE(sub.wait_subscribed(5s));
    auto client = std::make_shared<redis_client>(o);
    redis_event_publisher pub(client);
    event e;
    e.task_id = "before";
    pub.publish(e);
    REQUIRE(got.wait_for_count(1));

    server.stop();
    REQUIRE(eventually([&] { return !sub.stats().subscribed; }));
    std::this_thread::sleep_for(300ms);  // a few failed reconnects
    CHECK(sub.stats().connection_failures >= 2);
    server.start();  // same port
    REQUIRE(sub.wait_subscribed(5s));
    e.task_id = "after";
    pub.publish(e);  // the pooled client reconnects too
    REQUIRE(got.wait_for_count(2));
    CHECK(got.at(1).task_id == "after");
    CHECK(sub.stats().connects == 2);
    CHECK_FALSE(sub.stats().last_error.empty());
}

TEST_CASE("redis events: stop() returns promptly while connecting or waiting", "[redis][events][failure]") {
    SECTION("nothing listens") {
        redis_options o;
        o.port = orchcore::test::free_local_port();
        o.reconnect_backoff_base = 2000ms;
        o.reconnect_backoff_cap = 5000ms;
        collector got;
        redis_event_subscriber sub(o, std::ref(got));
        CHECK_FALSE(sub.wait_subscribed(100ms));
        const auto start = std::chrono::steady_clock::now();
        sub.stop();
        CHECK(std::chrono::steady_clock::now() - start < 500ms);
        CHECK(sub.stats().connection_failures >= 1);
        CHECK_THAT(sub.stats().last_error, Catch::Contains("refused"));
    }
    SECTION("subscribed, idle, long health-check interval") {
        collector got;
        redis_event_subscriber sub(shared_redis_server().options("idle"), std::ref(got),
                                   {.health_check_interval = 60s});
        REQUIRE(sub.wait_subscribed(5s));
        const auto start = std::chrono::steady_clock::now();
        sub.stop();
        sub.stop();  // idempotent
        CHECK(std::chrono::steady_clock::now() - start < 500ms);
    }
    SECTION("a server that accepts but never answers (paused)") {
        redis_server server;
        redis_client admin(server.options());
        admin.command({"CLIENT", "PAUSE", "3000", "ALL"});
        auto o = server.options();
        o.command_timeout = 10s;
        collector got;
        redis_event_subscriber sub(o, std::ref(got));
        std::this_thread::sleep_for(100ms);
        const auto start = std::chrono::steady_clock::now();
        sub.stop();
        CHECK(std::chrono::steady_clock::now() - start < 500ms);
    }
}

TEST_CASE("redis events: a publisher whose Redis is gone counts failures and does not block its bus",
          "[redis][events][failure]") {
    redis_options o;
    o.port = orchcore::test::free_local_port();
    o.connect_timeout = 100ms;
    o.retry_timeout = 100ms;
    o.on_warning = [](std::string_view) {};
    redis_event_publisher pub(std::make_shared<redis_client>(o), {.max_pending = 10});
    event_bus bus;
    auto att = pub.attach(bus);
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 100; ++i) bus.publish(event{});
    CHECK(std::chrono::steady_clock::now() - start < 100ms);  // never waits for Redis
    REQUIRE(pub.flush(5s));
    const auto s = pub.stats();
    CHECK(s.failed + s.dropped == 100);
    CHECK(s.dropped >= 80);
    CHECK(s.published == 0);
    CHECK_THAT(s.last_error, Catch::Contains("cannot connect"));
    CHECK_THROWS_AS(pub.publish(event{}), redis_error);
}
