// Corrupted Redis state met by redis_node_backend's script: the same checks
// as the transport's scripts (tests/redis/corruption_test.cpp), plus the
// task records it reads and writes.
#include <orchcore/redis/redis.hpp>

#include "redis/redis_server_fixture.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <vector>

using namespace orchcore;
using namespace std::chrono_literals;
using orchcore::test::shared_redis_server;

namespace {

struct node_fixture {
    std::shared_ptr<redis_client> client;
    std::shared_ptr<redis_transport> tp;
    std::shared_ptr<redis_task_store> store;
    std::shared_ptr<redis_node_backend> nb;
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now();

    explicit node_fixture(const std::string& hint)
        : client(shared_redis_server().client(hint)),
          tp(std::make_shared<redis_transport>(client, "q")),
          store(std::make_shared<redis_task_store>(client, "q")),
          nb(std::make_shared<redis_node_backend>(tp, store)) {}

    void submit(std::initializer_list<const char*> ids) {
        for (const char* id : ids) {
            task_record r;
            r.id = id;
            r.type = "t";
            r.payload = "p";
            r.status = task_status::queued;
            r.created_at = now;
            REQUIRE(store->create(r));
            REQUIRE(tp->admit({id}).is_accepted);
        }
    }
    std::string key(const std::string& suffix) const { return tp->key_base() + suffix; }
    start_spec spec() const {
        start_spec s;
        s.worker = "w";
        return s;
    }
};

std::set<std::string> ids_of(const std::vector<node_task>& ts) {
    std::set<std::string> out;
    for (const auto& t : ts) out.insert(t.lease.task_id);
    return out;
}

template <class Fn>
std::string error_of(Fn&& fn) {
    try {
        fn();
    } catch (const orchcore::error& e) {
        return e.what();
    }
    return "no exception";
}

}  // namespace

TEST_CASE("redis_node_backend: corrupted transport entries are parked and dead-lettered, healthy tasks start",
          "[redis][corruption][node_backend]") {
    node_fixture f("ncorr");
    f.submit({"a", "b", "c"});
    f.client->command({"HSET", f.key(":m:b"), "a", "garbage"});
    const auto got = f.nb->lease_and_start(f.spec(), 10, f.now);
    CHECK(ids_of(got) == std::set<std::string>{"a", "c"});
    std::set<std::string> dead;
    for (const auto& l : f.tp->recover_expired(f.now, 100))
        if (l.dead_lettered) dead.insert(l.task_id);
    CHECK(dead == std::set<std::string>{"b"});
    const auto letters = f.tp->dead_letters();
    REQUIRE(letters.size() == 1);
    CHECK_THAT(letters[0].reason, Catch::Contains("field a = 'garbage'"));
}

TEST_CASE("redis_node_backend: a damaged :state or store key fails the call by name and changes nothing",
          "[redis][corruption][node_backend]") {
    node_fixture f("nstate");
    f.submit({"a"});
    f.client->command({"HSET", f.key(":state"), "token", "x1"});
    CHECK_THAT(error_of([&] { f.nb->lease_and_start(f.spec(), 1, f.now); }),
               Catch::Contains(f.key(":state")) && Catch::Contains("token") && Catch::Contains("x1"));
    f.client->command({"HSET", f.key(":state"), "token", "5"});
    f.client->command({"DEL", f.key(":finished:completed")});
    f.client->command({"SET", f.key(":finished:completed"), "not a zset"});
    CHECK_THAT(error_of([&] { f.nb->lease_and_start(f.spec(), 1, f.now); }),
               Catch::Contains(f.key(":finished:completed")));
    CHECK(f.tp->size_approx() == 1);  // nothing was leased
    CHECK(f.store->get("a")->status == task_status::queued);
}

TEST_CASE("redis_node_backend: a record it cannot read is leased unstarted and left to the store",
          "[redis][corruption][node_backend]") {
    node_fixture f("nrec");
    f.submit({"a", "b", "c"});
    f.client->command({"HSET", f.key(":task:b"), "k", "{not json"});  // tags
    f.client->command({"DEL", f.key(":task:c")});
    f.client->command({"SET", f.key(":task:c"), "not a hash"});
    const auto got = f.nb->lease_and_start(f.spec(), 10, f.now);
    REQUIRE(ids_of(got) == std::set<std::string>{"a", "b", "c"});
    for (const auto& t : got) {
        INFO(t.lease.task_id);
        CHECK(t.started == (t.lease.task_id == "a"));
        CHECK(t.record.has_value() == (t.lease.task_id == "a"));
    }
    // The store dead-lettered both with the reason.
    const auto dead = f.store->dead_letters();
    REQUIRE(dead.size() == 2);
    CHECK(f.store->get("b") == std::nullopt);
}

TEST_CASE("redis_node_backend: a store key damaged after the backend checked it fails the finish by name, "
          "and its task is left to recovery, not lost",
          "[redis][corruption][node_backend]") {
    node_fixture f("ntrust");
    f.submit({"a", "b"});
    const auto got = f.nb->lease_and_start(f.spec(), 1, f.now);  // checks every key
    REQUIRE(got.size() == 1);
    REQUIRE(got[0].started);
    f.client->command({"SET", f.key(":tasks"), "not a set"});
    auto done = *got[0].record;
    done.status = task_status::completed;
    done.finished_at = f.now;
    const std::vector<node_outcome> outs{{done, task_status::running, got[0].lease.token, {}}};
    CHECK_THAT(error_of([&] { f.nb->finish_and_fetch(outs, f.spec(), 1, f.now); }),
               Catch::Contains(f.key(":tasks")));
    CHECK(f.tp->size_approx() == 1);  // nothing more was leased
    f.client->command({"DEL", f.key(":tasks")});
    std::set<std::string> recovered;
    for (const auto& l : f.tp->recover_expired(f.now + std::chrono::hours(1), 100)) recovered.insert(l.task_id);
    CHECK(recovered == std::set<std::string>{got[0].lease.task_id});
    // Repaired: the next call works.
    CHECK(f.nb->lease_and_start(f.spec(), 2, f.now).size() == 2);
}

TEST_CASE("redis_node_backend: a queue key damaged after the backend checked it fails the call by name, "
          "and no task is lost",
          "[redis][corruption][node_backend]") {
    node_fixture f("nqtrust");
    SECTION("the delayed set, met by the lease after a finish") {
        f.submit({"a", "b"});
        const auto got = f.nb->lease_and_start(f.spec(), 1, f.now);  // checks every key
        REQUIRE(got.size() == 1);
        f.client->command({"SET", f.key(":delayed"), "not a zset"});
        auto done = *got[0].record;
        done.status = task_status::completed;
        done.finished_at = f.now;
        const std::vector<node_outcome> outs{{done, task_status::running, got[0].lease.token, {}}};
        CHECK_THAT(error_of([&] { f.nb->finish_and_fetch(outs, f.spec(), 1, f.now); }),
                   Catch::Contains(f.key(":delayed")) && Catch::Contains("string"));
        f.client->command({"DEL", f.key(":delayed")});
        CHECK(f.tp->leased_count() == 0);  // the finish was recorded, nothing more leased
        CHECK(f.store->get(got[0].lease.task_id)->status == task_status::completed);
        const auto next = f.nb->lease_and_start(f.spec(), 2, f.now);
        REQUIRE(next.size() == 1);
        CHECK(next[0].lease.task_id != got[0].lease.task_id);
    }
    SECTION("the waiting set, met by a nack: the task stays leased, for recovery") {
        f.submit({"a"});
        const auto got = f.nb->lease_and_start(f.spec(), 1, f.now);
        REQUIRE(got.size() == 1);
        f.client->command({"SET", f.key(":waiting"), "not a zset"});
        auto again = *got[0].record;
        again.status = task_status::queued;
        const std::vector<node_outcome> outs{{again, task_status::running, got[0].lease.token, {}}};
        CHECK_THAT(error_of([&] { f.nb->finish_and_fetch(outs, f.spec(), 1, f.now); }),
                   Catch::Contains(f.key(":waiting")));
        f.client->command({"DEL", f.key(":waiting")});
        CHECK(f.tp->leased_count() == 1);
        std::set<std::string> recovered;
        for (const auto& l : f.tp->recover_expired(f.now + std::chrono::hours(1), 100)) recovered.insert(l.task_id);
        CHECK(recovered == std::set<std::string>{"a"});
        CHECK(ids_of(f.nb->lease_and_start(f.spec(), 1, f.now + std::chrono::hours(1))) ==
              std::set<std::string>{"a"});
    }
    SECTION("the leases, met by a lease without a finish before it moves a task") {
        f.submit({"a"});
        REQUIRE(f.nb->lease_and_start(f.spec(), 0, f.now).empty());  // checks every key
        f.client->command({"SET", f.key(":leases"), "not a zset"});
        CHECK_THAT(error_of([&] { f.nb->lease_and_start(f.spec(), 1, f.now); }),
                   Catch::Contains(f.key(":leases")));
        f.client->command({"DEL", f.key(":leases")});
        CHECK(f.tp->size_approx() == 1);
        CHECK(ids_of(f.nb->lease_and_start(f.spec(), 1, f.now)) == std::set<std::string>{"a"});
    }
    SECTION("the queue state, read by the trusting call too") {
        f.submit({"a", "b"});
        const auto got = f.nb->lease_and_start(f.spec(), 1, f.now);
        REQUIRE(got.size() == 1);
        f.client->command({"HSET", f.key(":state"), "granted", "many"});
        CHECK_THAT(error_of([&] { f.nb->lease_and_start(f.spec(), 1, f.now); }),
                   Catch::Contains(f.key(":state")) && Catch::Contains("granted = 'many'"));
        CHECK(f.tp->size_approx() == 1);
        f.client->command({"HSET", f.key(":state"), "granted", "1"});
        CHECK(f.nb->lease_and_start(f.spec(), 1, f.now).size() == 1);
    }
}
