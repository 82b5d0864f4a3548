// The Redis layout of task records: one small hash per task, state written
// without the write-once part, Redis-side expiry of terminal records, and
// an index that never outlives its records. The memory figure (hidden test,
// tag [.memory]) prints the Redis memory per kept job.
#include <orchcore/redis/redis.hpp>

#include "redis/redis_server_fixture.hpp"

#include <catch2/catch.hpp>

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
