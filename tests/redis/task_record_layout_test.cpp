// The Redis layout of task records: one small hash per task, state written
// without the write-once part, Redis-side expiry of terminal records, and
// an index that never outlives its records. The memory figure (hidden test,
// tag [.memory]) prints the Redis memory per kept job.
#include <orchcore/redis/redis.hpp>

#include "redis/redis_server_fixture.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

using namespace orchcore;
using namespace std::chrono_literals;
using orchcore::test::shared_redis_server;

namespace {

// A record as the coordinator writes it at submit.
task_record submitted(const std::string& id) {
    task_record r;
    r.id = id;
    r.type = "noop";
    r.payload = "0123456789abcdef";
    r.status = task_status::queued;
    r.max_retries = 3;
    r.created_at = std::chrono::system_clock::now();
    return r;
}

// Moves a stored record through running to completed, as a worker does.
void run_to_completion(redis_task_store& s, task_record r) {
    r.status = task_status::running;
    r.attempts = 1;
    r.worker_id = "node-7f3a9c/worker-1";
    r.started_at = std::chrono::system_clock::now();
    REQUIRE(s.update(r, task_status::queued));
    r.status = task_status::completed;
    r.progress = 1.0;
    r.finished_at = std::chrono::system_clock::now();
    REQUIRE(s.update(r, task_status::running));
}

long long used_memory(redis_client& c) {
    const auto info = c.command({"INFO", "memory"}).str;
    const auto at = info.find("used_memory:");
    REQUIRE(at != std::string::npos);
    return std::stoll(info.substr(at + 12));
}

}  // namespace

TEST_CASE("redis_task_store: Redis memory per kept job", "[.memory]") {
    orchcore::test::redis_server server;
    auto client = server.client("mem");
    redis_task_store_options o;
    o.completed_ttl = 24h;
    redis_task_store s(client, "q", o);
    constexpr int jobs = 20'000;
    const auto before = used_memory(*client);
    for (int i = 0; i < jobs; ++i) {
        auto r = submitted("node-7f3a9c-" + std::to_string(i));
        REQUIRE(s.create(r));
        run_to_completion(s, r);
    }
    const auto after = used_memory(*client);
    const auto one = client->command({"MEMORY", "USAGE", s.record_key("node-7f3a9c-7")}).integer;
    const auto enc = client->command({"OBJECT", "ENCODING", s.record_key("node-7f3a9c-7")}).str;
    std::printf("redis memory per kept job: %lld B (%d jobs); MEMORY USAGE of one record: %lld B (%s)\n",
                (after - before) / jobs, jobs, one, enc.c_str());
    CHECK(s.size() == jobs);
}

namespace {
// Waits (bounded) until `done()` holds.
template <class F>
bool eventually(F done) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(20ms);
    }
    return true;
}
}  // namespace

TEST_CASE("redis_task_store: a record is one hash that stays compact", "[redis][store]") {
    auto client = shared_redis_server().client("layout");
    redis_task_store s(client, "q");
    auto r = submitted("a");
    REQUIRE(s.create(r));
    run_to_completion(s, r);
    CHECK(client->command({"TYPE", s.record_key("a")}).str == "hash");
    const auto enc = client->command({"OBJECT", "ENCODING", s.record_key("a")}).str;
    CHECK((enc == "listpack" || enc == "ziplist"));
    // Empty and default fields are not stored.
    CHECK(client->command({"HEXISTS", s.record_key("a"), "e"}).integer == 0);
    CHECK(client->command({"HEXISTS", s.record_key("a"), "r"}).integer == 0);
}

TEST_CASE("redis_task_store: update writes only the state fields", "[redis][store]") {
    auto client = shared_redis_server().client("stateonly");
    redis_task_store s(client, "q");
    auto r = submitted("a");
    REQUIRE(s.create(r));
    // Changed behind the store's back: an update that rewrote the payload
    // would put the record's own copy back.
    client->command({"HSET", s.record_key("a"), "p", "as stored"});
    r.status = task_status::running;
    r.attempts = 1;
    REQUIRE(s.update(r, task_status::queued));
    const auto got = s.get("a");
    REQUIRE(got.has_value());
    CHECK(got->payload == "as stored");
    CHECK(got->attempts == 1);
    CHECK(client->command({"PTTL", s.record_key("a")}).integer == -1);  // no expiry while not finished
}

TEST_CASE("redis_task_store: a finished record expires in Redis with nobody calling expire()", "[redis][store]") {
    auto client = shared_redis_server().client("selfexpire");
    redis_task_store_options o;
    o.completed_ttl = 200ms;
    redis_task_store s(client, "q", o);
    auto kept = submitted("kept");
    REQUIRE(s.create(kept));
    auto r = submitted("a");
    REQUIRE(s.create(r));
    run_to_completion(s, r);
    CHECK(client->command({"PTTL", s.record_key("a")}).integer > 0);
    CHECK(eventually([&] { return client->command({"EXISTS", s.record_key("a")}).integer == 0; }));
    CHECK_FALSE(s.get("a").has_value());
    // list() never returns an entry whose record is gone.
    const auto all = s.list({});
    REQUIRE(all.size() == 1);
    CHECK(all[0].id == "kept");
    CHECK(s.list({.status = task_status::completed}).empty());
    // expire() reports it once and drops its index entry.
    std::vector<std::string> gone;
    CHECK(eventually([&] {
        for (auto& id : s.expire(std::chrono::system_clock::now(), 1h, 1h, 1h)) gone.push_back(id);
        return !gone.empty();
    }));
    CHECK(gone == std::vector<std::string>{"a"});
    CHECK(s.size() == 1);
    CHECK(s.expire(std::chrono::system_clock::now(), 1h, 1h, 1h).empty());
}

TEST_CASE("redis_task_store: an index entry whose record vanished is skipped, then reported once",
          "[redis][store]") {
    auto client = shared_redis_server().client("vanished");
    redis_task_store s(client, "q");
    for (const char* id : {"a", "b"}) {
        auto r = submitted(id);
        REQUIRE(s.create(r));
        run_to_completion(s, r);
    }
    client->command({"DEL", s.record_key("a")});  // as if Redis expired it
    const auto all = s.list({});
    REQUIRE(all.size() == 1);
    CHECK(all[0].id == "b");
    CHECK(s.size() == 2);  // counted until expire() meets it
    const auto later = std::chrono::system_clock::now() + 2h;
    auto gone = s.expire(later, 1h, 1h, 1h);
    std::sort(gone.begin(), gone.end());
    CHECK(gone == std::vector<std::string>{"a", "b"});
    CHECK(s.size() == 0);
    CHECK(s.list({}).empty());
}

TEST_CASE("redis_task_store: an id used again after its record expired is not removed by the old entry",
          "[redis][store]") {
    auto client = shared_redis_server().client("reused");
    redis_task_store s(client, "q");
    auto r = submitted("a");
    REQUIRE(s.create(r));
    run_to_completion(s, r);
    client->command({"DEL", s.record_key("a")});  // as if Redis expired it
    auto again = submitted("a");
    REQUIRE(s.create(again));
    // The old entry goes without reporting "a": that id names a live task.
    CHECK(s.expire(std::chrono::system_clock::now() + 2h, 1h, 1h, 1h).empty());
    const auto got = s.get("a");
    REQUIRE(got.has_value());
    CHECK(got->status == task_status::queued);
    CHECK(s.list({}).size() == 1);
    CHECK(s.size() == 1);
}
