// One conformance suite for the storage interfaces, written against
// task_store and worker_registry only. Each backend adds a factory type to
// ORCHCORE_BACKENDS below (the Redis adapter adds its own when the tests are
// built with ORCHCORE_WITH_REDIS: it runs against a private redis-server).
#include <orchcore/task_store.hpp>
#include <orchcore/worker_registry.hpp>

#ifdef ORCHCORE_TEST_WITH_REDIS
#include <orchcore/redis/redis.hpp>

#include "redis/redis_server_fixture.hpp"
#endif

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <set>
#include <thread>
#include <vector>

using namespace orchcore;
using namespace std::chrono_literals;

namespace {

struct memory_backend {
    static std::unique_ptr<task_store> make_store() { return std::make_unique<memory_task_store>(); }
    static std::unique_ptr<worker_registry> make_registry() { return std::make_unique<memory_worker_registry>(); }
};

#ifdef ORCHCORE_TEST_WITH_REDIS
struct redis_backend {
    static std::unique_ptr<task_store> make_store() {
        return std::make_unique<redis_task_store>(orchcore::test::shared_redis_server().client("store"), "q");
    }
    static std::unique_ptr<worker_registry> make_registry() {
        return std::make_unique<redis_worker_registry>(orchcore::test::shared_redis_server().client("reg"), "q");
    }
};
#define ORCHCORE_BACKENDS memory_backend, redis_backend
#else
#define ORCHCORE_BACKENDS memory_backend
#endif

task_record make_record(const std::string& id, task_status s = task_status::queued) {
    task_record r;
    r.id = id;
    r.type = "t";
    r.payload = "p-" + id;
    r.owner = "alice";
    r.status = s;
    r.created_at = std::chrono::system_clock::now();
    return r;
}

}  // namespace

TEMPLATE_TEST_CASE("task_store: create refuses duplicates and get returns what was stored", "[conformance][store]",
                   ORCHCORE_BACKENDS) {
    auto store = TestType::make_store();
    auto r = make_record("a");
    r.metadata["k"] = "v";
    r.tags = {"gpu"};
    REQUIRE(store->create(r));
    auto dup = make_record("a");
    dup.payload = "other";
    CHECK_FALSE(store->create(dup));
    auto got = store->get("a");
    REQUIRE(got.has_value());
    CHECK(got->payload == "p-a");  // not overwritten
    CHECK(got->metadata.at("k") == "v");
    CHECK(got->tags == std::vector<std::string>{"gpu"});
    CHECK_FALSE(store->get("missing").has_value());
    CHECK(store->size() == 1);
}

TEMPLATE_TEST_CASE("task_store: update is compare-and-set on the status", "[conformance][store]", ORCHCORE_BACKENDS) {
    auto store = TestType::make_store();
    REQUIRE(store->create(make_record("a")));
    auto running = make_record("a", task_status::running);
    CHECK(store->update(running, task_status::queued));
    // A second writer that still believes the task is queued loses.
    auto other = make_record("a", task_status::cancelled);
    CHECK_FALSE(store->update(other, task_status::queued));
    CHECK(store->get("a")->status == task_status::running);
    // Same-status update (progress, fields) is allowed.
    running.progress = 0.5;
    CHECK(store->update(running, task_status::running));
    CHECK(store->get("a")->progress == 0.5);
    // An illegal transition is a bug, not a silent overwrite.
    auto back = make_record("a", task_status::pending);
    CHECK_THROWS_AS(store->update(back, task_status::running), orchcore::error);
    CHECK_FALSE(store->update(make_record("missing", task_status::running), task_status::queued));
}

TEMPLATE_TEST_CASE("task_store: update writes the state part; the write-once part stays as created",
                   "[conformance][store]", ORCHCORE_BACKENDS) {
    auto store = TestType::make_store();
    auto r = make_record("a");
    r.priority = 3;
    r.tags = {"gpu"};
    r.max_retries = 2;
    REQUIRE(store->create(r));
    auto u = r;
    u.status = task_status::running;
    u.attempts = 1;
    u.worker_id = "w-1";
    u.started_at = r.created_at + 1ms;
    u.metadata["cancel"] = "requested";
    // Write-once fields that differ are ignored, not written.
    u.payload = "changed";
    u.type = "other";
    u.priority = 9;
    u.owner = "mallory";
    u.tags = {"cpu"};
    u.max_retries = 7;
    u.timeout = 5s;
    u.created_at = r.created_at + 1h;
    REQUIRE(store->update(u, task_status::queued));
    auto got = store->get("a");
    REQUIRE(got.has_value());
    CHECK(got->status == task_status::running);
    CHECK(got->attempts == 1);
    CHECK(got->worker_id == "w-1");
    CHECK(got->started_at == u.started_at);
    CHECK(got->metadata == u.metadata);
    CHECK(got->payload == r.payload);
    CHECK(got->type == r.type);
    CHECK(got->priority == 3);
    CHECK(got->owner == r.owner);
    CHECK(got->tags == r.tags);
    CHECK(got->max_retries == 2);
    CHECK(got->timeout == r.timeout);
    CHECK(got->created_at == r.created_at);
    // State fields set back to their defaults are cleared.
    auto done = *got;
    done.status = task_status::completed;
    done.worker_id.clear();
    done.metadata.clear();
    done.result = "ok";
    done.finished_at = r.created_at + 2ms;
    REQUIRE(store->update(done, task_status::running));
    got = store->get("a");
    REQUIRE(got.has_value());
    CHECK(got->worker_id.empty());
    CHECK(got->metadata.empty());
    CHECK(got->result == "ok");
    CHECK(got->finished_at == done.finished_at);
    CHECK(store->list({.status = task_status::completed}).size() == 1);
    CHECK(store->list({.status = task_status::running}).empty());
    CHECK(store->size() == 1);
}

TEMPLATE_TEST_CASE("task_store: concurrent CAS lets exactly one writer win", "[conformance][store]", ORCHCORE_BACKENDS) {
    auto store = TestType::make_store();
    for (int i = 0; i < 50; ++i) REQUIRE(store->create(make_record("t" + std::to_string(i))));
    std::atomic<int> wins{0};
    std::vector<std::thread> threads;
    for (int w = 0; w < 4; ++w) {
        threads.emplace_back([&] {
            for (int i = 0; i < 50; ++i)
                if (store->update(make_record("t" + std::to_string(i), task_status::running), task_status::queued))
                    wins.fetch_add(1);
        });
    }
    for (auto& t : threads) t.join();
    CHECK(wins.load() == 50);
}

TEMPLATE_TEST_CASE("task_store: list filters and respects the limit", "[conformance][store]", ORCHCORE_BACKENDS) {
    auto store = TestType::make_store();
    for (int i = 0; i < 10; ++i) {
        auto r = make_record("t" + std::to_string(i));
        if (i % 2) r.status = task_status::running;
        r.owner = i < 5 ? "alice" : "bob";
        REQUIRE(store->create(r));
    }
    CHECK(store->list({.status = task_status::running}).size() == 5);
    CHECK(store->list({.owner = std::string("bob")}).size() == 5);
    CHECK(store->list({.status = task_status::running, .owner = std::string("alice")}).size() == 2);
    CHECK(store->list({.limit = 3}).size() == 3);
}

TEMPLATE_TEST_CASE("task_store: expire removes terminal records after their TTL only", "[conformance][store]",
                   ORCHCORE_BACKENDS) {
    auto store = TestType::make_store();
    const auto t0 = std::chrono::system_clock::now();
    auto done = make_record("done", task_status::completed);
    done.finished_at = t0;
    auto failed = make_record("failed", task_status::failed);
    failed.finished_at = t0;
    auto live = make_record("live", task_status::running);
    REQUIRE(store->create(done));
    REQUIRE(store->create(failed));
    REQUIRE(store->create(live));
    CHECK(store->expire(t0 + 500ms, 1s, 10s, 1s).empty());
    auto gone = store->expire(t0 + 2s, 1s, 10s, 1s);
    CHECK(gone == std::vector<std::string>{"done"});
    CHECK(store->get("failed").has_value());
    CHECK(store->get("live").has_value());
    CHECK(store->expire(t0 + 11s, 1s, 10s, 1s) == std::vector<std::string>{"failed"});
    CHECK(store->size() == 1);
    CHECK(store->erase("live"));
    CHECK_FALSE(store->erase("live"));
}

TEMPLATE_TEST_CASE("worker_registry: heartbeats, filters and reaping", "[conformance][registry]", ORCHCORE_BACKENDS) {
    auto reg = TestType::make_registry();
    const auto t0 = std::chrono::system_clock::now();
    reg->upsert({.id = "w1", .tags = {"gpu", "x86"}, .registered_at = t0, .last_heartbeat = t0});
    reg->upsert({.id = "w2", .tags = {"x86"}, .registered_at = t0, .last_heartbeat = t0});
    CHECK(reg->list().size() == 2);
    CHECK(reg->list({.tags = {"gpu"}}).size() == 1);
    CHECK(reg->list({.tags = {"gpu", "arm"}}).empty());

    CHECK(reg->heartbeat("w1", t0 + 3s));
    CHECK_FALSE(reg->heartbeat("nobody", t0 + 3s));
    auto reaped = reg->reap_stale(t0 + 4s, 2s);
    CHECK(reaped == std::vector<std::string>{"w2"});
    CHECK(reg->get("w2")->status == worker_status::error);
    CHECK(reg->reap_stale(t0 + 4s, 2s).empty());  // each reaped once
    CHECK_FALSE(reg->heartbeat("w2", t0 + 5s));   // a dead worker stays dead
    CHECK(reg->list({.status = worker_status::error}).size() == 1);
    CHECK(reg->set_status("w1", worker_status::busy));
    CHECK(reg->get("w1")->status == worker_status::busy);
    CHECK(reg->remove("w2"));
    CHECK_FALSE(reg->get("w2").has_value());
}

TEMPLATE_TEST_CASE("task_store: every field survives a round trip, binary payloads included", "[conformance][store]",
                   ORCHCORE_BACKENDS) {
    auto store = TestType::make_store();
    task_record r = make_record("full");
    r.payload = std::string("bin\0\xff\xfe\n\"}{", 10);
    r.result = std::string("\x80\x81 result", 9);
    r.priority = 17;
    r.metadata = {{"a", "1"}, {"quote\"", "new\nline"}};
    r.tags = {"gpu", "x86"};
    r.timeout = 1500ms;
    r.turn_timeout = 250ms;
    r.max_retries = 4;
    r.backoff = {.base = 20ms, .cap = 900ms, .jitter = false};
    r.started_at = r.created_at + 3ms;
    r.attempts = 3;
    r.retries = 1;
    r.turns = 2;
    r.worker_losses = 1;
    r.worker_id = "w-7";
    r.progress = 0.25;
    r.progress_message = "quarter";
    r.error = std::string("err \xc3\x28 invalid utf8", 20);
    REQUIRE(store->create(r));
    auto got = store->get("full");
    REQUIRE(got.has_value());
    CHECK(got->payload == r.payload);
    CHECK(got->result == r.result);
    CHECK(got->priority == 17);
    CHECK(got->metadata == r.metadata);
    CHECK(got->tags == r.tags);
    CHECK(got->timeout == r.timeout);
    CHECK(got->turn_timeout == r.turn_timeout);
    CHECK(got->max_retries == 4);
    CHECK(got->backoff.base == 20ms);
    CHECK(got->backoff.cap == 900ms);
    CHECK_FALSE(got->backoff.jitter);
    CHECK(got->created_at == r.created_at);
    CHECK(got->started_at == r.started_at);
    CHECK_FALSE(got->finished_at.has_value());
    CHECK(got->attempts == 3);
    CHECK(got->retries == 1);
    CHECK(got->turns == 2);
    CHECK(got->worker_losses == 1);
    CHECK(got->worker_id == "w-7");
    CHECK(got->progress == 0.25);
    CHECK(got->progress_message == "quarter");
    CHECK(got->error == r.error);
    CHECK(got->status == task_status::queued);
}
