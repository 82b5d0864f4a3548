// Corrupted Redis state: each test damages keys directly (a raw command to
// the private test server) and checks that the backend reports it (an
// orchcore::error naming the key and the value, a dead letter with the
// reason, a warning) instead of misreading it, and that no healthy task is
// lost on the way.
#include <orchcore/redis/redis.hpp>

#include "redis/redis_server_fixture.hpp"
#include "unit/distributed_scenarios.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

using namespace orchcore;
using namespace std::chrono_literals;
using orchcore::test::shared_redis_server;

namespace {

struct queue_keys {
    std::string base;
    std::string m(const std::string& id) const { return base + ":m:" + id; }
    std::string waiting() const { return base + ":waiting"; }
    std::string leases() const { return base + ":leases"; }
    std::string state() const { return base + ":state"; }
};

std::map<std::string, std::string> dead_map(transport& t) {
    std::map<std::string, std::string> out;
    for (auto& d : t.dead_letters()) out[d.id] = d.reason;
    return out;
}

std::set<std::string> ids_of(const std::vector<transport_lease>& ls) {
    std::set<std::string> out;
    for (const auto& l : ls) out.insert(l.task_id);
    return out;
}

// The message of the orchcore::error `fn` throws ("no exception" if none;
// "not an orchcore::error" for anything else).
template <class Fn>
std::string orchcore_error_of(Fn&& fn) {
    try {
        fn();
    } catch (const orchcore::error& e) {
        return e.what();
    } catch (...) {
        return "not an orchcore::error";
    }
    return "no exception";
}

// The ids recover_expired(at) returns as dead-lettered.
std::set<std::string> recovered_dead(transport& t, std::chrono::system_clock::time_point at) {
    std::set<std::string> out;
    for (const auto& l : t.recover_expired(at, 1000))
        if (l.dead_lettered) out.insert(l.task_id);
    return out;
}

void admit_all(transport& t, std::initializer_list<const char*> ids) {
    for (const char* id : ids) REQUIRE(t.admit({id}).is_accepted);
}

}  // namespace

TEST_CASE("redis_transport: a lease batch with corrupted entries leases every healthy task and dead-letters the "
          "bad ones",
          "[redis][corruption][lease]") {
    auto client = shared_redis_server().client("clease");
    redis_transport t(client, "q");
    const queue_keys k{t.key_base()};
    admit_all(t, {"a", "b", "c", "d", "e"});
    client->command({"DEL", k.m("b")});
    client->command({"SET", k.m("b"), "not a hash"});
    client->command({"HSET", k.m("d"), "a", "garbage"});
    const auto now = std::chrono::system_clock::now();

    const auto leased = t.lease("w", 10, 10s, now);
    CHECK(ids_of(leased) == std::set<std::string>{"a", "c", "e"});
    for (const auto& l : leased) CHECK(l.attempt == 1);
    CHECK(t.size_approx() == 0);
    // The bad ones are handed to the next recovery, which reports them (so
    // their records can be ended) and dead-letters them with the reason.
    CHECK(recovered_dead(t, now) == std::set<std::string>{"b", "d"});
    const auto dead = dead_map(t);
    REQUIRE(dead.size() == 2);
    CHECK_THAT(dead.at("b"), Catch::Contains(k.m("b")) && Catch::Contains("not a hash"));
    CHECK_THAT(dead.at("d"), Catch::Contains("field a = 'garbage'"));
    CHECK(t.size_approx() == 0);
    CHECK(t.leased_count() == 3);
    // The buried ids left the transport: they may be admitted again.
    CHECK(t.admit({"b"}).is_accepted);
}

TEST_CASE("redis_transport: a lease batch fills up past corrupted entries", "[redis][corruption][lease]") {
    auto client = shared_redis_server().client("cfill");
    redis_transport t(client, "q");
    const queue_keys k{t.key_base()};
    admit_all(t, {"a", "b", "c"});
    client->command({"HSET", k.m("a"), "s", "-1"});
    const auto now = std::chrono::system_clock::now();
    const auto leased = t.lease("w", 2, 10s, now);
    CHECK(ids_of(leased) == std::set<std::string>{"b", "c"});
    CHECK(recovered_dead(t, now) == std::set<std::string>{"a"});
    CHECK(dead_map(t).count("a") == 1);
}

TEST_CASE("redis_transport: a delayed task whose entry is corrupted is dead-lettered when due, not dropped",
          "[redis][corruption][lease]") {
    auto client = shared_redis_server().client("cdelay");
    redis_transport t(client, "q");
    const queue_keys k{t.key_base()};
    admit_all(t, {"a", "b"});
    const auto now = std::chrono::system_clock::now();
    const auto ls = t.lease("w", 2, 10s, now);
    REQUIRE(ls.size() == 2);
    for (const auto& l : ls) REQUIRE(t.nack(l.task_id, l.token, 1s, now));
    client->command({"HSET", k.m("a"), "p", "99"});
    const auto again = t.lease("w", 10, 10s, now + 2s);
    CHECK(ids_of(again) == std::set<std::string>{"b"});
    CHECK(recovered_dead(t, now + 2s) == std::set<std::string>{"a"});
    const auto dead = dead_map(t);
    REQUIRE(dead.count("a") == 1);
    CHECK_THAT(dead.at("a"), Catch::Contains("field p = '99'"));
    CHECK(t.stats().delayed == 0);
}

TEST_CASE("redis_transport: recovery validates every orphan; a garbage token or deadline dead-letters that one only",
          "[redis][corruption][recover]") {
    auto client = shared_redis_server().client("crec");
    redis_transport t(client, "q");
    const queue_keys k{t.key_base()};
    admit_all(t, {"a", "b", "c", "d"});
    const auto now = std::chrono::system_clock::now();
    REQUIRE(t.lease("w", 4, 1s, now).size() == 4);
    client->command({"HSET", k.m("b"), "t", "garbage"});
    client->command({"ZADD", k.leases(), "-inf", "c"});
    client->command({"DEL", k.m("d")});
    client->command({"RPUSH", k.m("d"), "x"});

    std::vector<transport_lease> got;
    REQUIRE_NOTHROW(got = t.recover_expired(now + 5s, 100));
    std::map<std::string, transport_lease> by_id;
    for (auto& l : got) by_id[l.task_id] = l;
    REQUIRE(by_id.size() == 4);
    CHECK_FALSE(by_id.at("a").dead_lettered);
    CHECK(by_id.at("a").expiries == 1);
    for (const char* bad : {"b", "c", "d"}) CHECK(by_id.at(bad).dead_lettered);
    const auto dead = dead_map(t);
    REQUIRE(dead.size() == 3);
    CHECK_THAT(dead.at("b"), Catch::Contains("field t = 'garbage'"));
    CHECK_THAT(dead.at("c"), Catch::Contains("lease deadline '-inf'"));
    CHECK_THAT(dead.at("d"), Catch::Contains("not a hash"));
    // The healthy orphan is back and leasable; nothing else is left anywhere.
    const auto again = t.lease("w2", 10, 10s, now + 6s);
    CHECK(ids_of(again) == std::set<std::string>{"a"});
    CHECK(t.leased_count() == 1);
}

TEST_CASE("redis_transport: an eviction victim with a corrupted entry is dead-lettered and the admission goes on",
          "[redis][corruption][admit]") {
    auto client = shared_redis_server().client("cadmit");
    const auto policy = GENERATE(queue_policy::drop_lru, queue_policy::priority);
    redis_transport t(client, "q", {.policy = policy, .capacity = 2});
    const queue_keys k{t.key_base()};
    REQUIRE(t.admit({"a", 1}).is_accepted);
    REQUIRE(t.admit({"b", 2}).is_accepted);
    // "a" is the victim of both policies (least recently admitted at the
    // lowest level; lowest priority).
    client->command({"HSET", k.m("a"), "p", "low"});
    const auto r = t.admit({"c", 3});
    CHECK(r.is_accepted);
    CHECK_FALSE(r.evicted.has_value());  // the bad entry made room; nothing healthy was evicted
    CHECK(recovered_dead(t, std::chrono::system_clock::now()) == std::set<std::string>{"a"});
    CHECK_THAT(dead_map(t).at("a"), Catch::Contains("field p = 'low'"));
    CHECK(t.size_approx() == 2);
}

TEST_CASE("redis_transport: ack, nack, extend and mailboxes of a corrupted entry refuse and change nothing",
          "[redis][corruption][ack]") {
    auto client = shared_redis_server().client("cack");
    redis_transport t(client, "q");
    const queue_keys k{t.key_base()};
    admit_all(t, {"a", "b", "c", "d", "e"});
    const auto now = std::chrono::system_clock::now();
    std::map<std::string, std::uint64_t> tok;
    for (const auto& l : t.lease("w", 5, 10s, now)) tok[l.task_id] = l.token;
    client->command({"DEL", k.m("a")});
    client->command({"SET", k.m("a"), "x"});
    client->command({"HSET", k.m("b"), "s", "x"});
    client->command({"HSET", k.m("c"), "p", "-3"});
    const std::string mailbox = t.key_base() + ":mb:d";
    client->command({"SET", mailbox, "x"});

    CHECK_FALSE(t.ack("a", tok["a"]));
    CHECK_FALSE(t.nack("b", tok["b"], 0ms, now));  // it would have been put back with no place in the queue
    CHECK_FALSE(t.extend("c", tok["c"], 10s, now));
    CHECK_THAT(orchcore_error_of([&] { t.take_messages("d", tok["d"]); }),
               Catch::Contains(mailbox) && Catch::Contains("not a list"));
    const std::vector<std::string> msg{"m"};
    CHECK_THAT(orchcore_error_of([&] { t.post_messages("d", msg); }), Catch::Contains(mailbox));
    CHECK(t.ack("e", tok["e"]));
    CHECK(t.leased_count() == 4);  // still held; nothing was dropped
    // When the leases expire, recovery dead-letters the bad entries and
    // requeues the task whose own entry is fine.
    CHECK(recovered_dead(t, now + 11s) == std::set<std::string>{"a", "b", "c"});
    const auto dead = dead_map(t);
    CHECK(dead.size() == 3);
    CHECK_THAT(dead.at("a"), Catch::Contains("not a hash"));
    CHECK_THAT(dead.at("b"), Catch::Contains("field s = 'x'"));
    CHECK_THAT(dead.at("c"), Catch::Contains("field p = '-3'"));
    CHECK(t.size_approx() == 1);
}

TEST_CASE("redis_transport: a garbage ewma in the queue state is a clear error and admits nothing",
          "[redis][corruption][state]") {
    auto client = shared_redis_server().client("cewma");
    redis_transport t(client, "q", {.capacity = 1});
    const queue_keys k{t.key_base()};
    REQUIRE(t.admit({"a"}).is_accepted);
    const std::string bad = GENERATE(std::string("nan"), std::string("abc"), std::string("-5"), std::string("inf"));
    client->command({"HSET", k.state(), "ewma", bad});
    const auto msg = orchcore_error_of([&] { t.admit({"b"}); });
    CHECK_THAT(msg, Catch::Contains(k.state()) && Catch::Contains("ewma = '" + bad + "'"));
    CHECK(client->command({"EXISTS", k.m("b")}).integer == 0);
    CHECK_THAT(orchcore_error_of([&] { t.stats(); }), Catch::Contains("ewma"));
    // Repaired, the queue works again.
    client->command({"HSET", k.state(), "ewma", "12.5"});
    const auto r = t.admit({"b"});
    REQUIRE_FALSE(r.is_accepted);
    CHECK(r.retry_after == 13ms);
}

TEST_CASE("redis_transport: a garbage token counter fails the lease before any task moves",
          "[redis][corruption][state]") {
    auto client = shared_redis_server().client("ctoken");
    redis_transport t(client, "q");
    const queue_keys k{t.key_base()};
    admit_all(t, {"a", "b", "c"});
    client->command({"HSET", k.state(), "token", "12abc"});
    const auto now = std::chrono::system_clock::now();
    CHECK_THAT(orchcore_error_of([&] { t.lease("w", 10, 10s, now); }),
               Catch::Contains(k.state()) && Catch::Contains("token = '12abc'"));
    CHECK(t.size_approx() == 3);
    CHECK(t.leased_count() == 0);
    client->command({"HSET", k.state(), "token", "100"});
    const auto leased = t.lease("w", 10, 10s, now);
    CHECK(ids_of(leased) == std::set<std::string>{"a", "b", "c"});
    for (const auto& l : leased) CHECK(l.token > 100);
}

TEST_CASE("redis_transport: a queue key of the wrong type fails the script before it changes anything",
          "[redis][corruption][state]") {
    auto client = shared_redis_server().client("ctype");
    redis_transport t(client, "q");
    const queue_keys k{t.key_base()};
    admit_all(t, {"a", "b"});
    client->command({"SET", k.leases(), "x"});
    const auto now = std::chrono::system_clock::now();
    CHECK_THAT(orchcore_error_of([&] { t.lease("w", 10, 10s, now); }),
               Catch::Contains(k.leases()) && Catch::Contains("is a string"));
    CHECK(client->command({"ZCARD", k.waiting()}).integer == 2);
    CHECK_THAT(orchcore_error_of([&] { t.leased_count(); }), Catch::Contains(k.leases()));
    client->command({"DEL", k.leases()});
    CHECK(t.lease("w", 10, 10s, now).size() == 2);

    client->command({"DEL", k.waiting()});
    client->command({"SET", k.waiting(), "x"});
    CHECK_THAT(orchcore_error_of([&] { t.size_approx(); }), Catch::Contains(k.waiting()));
}

TEST_CASE("redis_transport: a garbage statistics counter is reported, not read as 0", "[redis][corruption][state]") {
    auto client = shared_redis_server().client("cstat");
    redis_transport t(client, "q");
    const queue_keys k{t.key_base()};
    admit_all(t, {"a"});
    client->command({"HSET", k.state(), "acked", "lots"});
    CHECK_THAT(orchcore_error_of([&] { t.stats(); }), Catch::Contains(k.state()) && Catch::Contains("\"lots\""));
    client->command({"HSET", k.state(), "acked", "7"});
    CHECK(t.stats().acked == 7);
}

TEST_CASE("coordinator on redis: a task whose queue entry is corrupted ends failed; every other task completes",
          "[redis][corruption][coordinator]") {
    auto client = shared_redis_server().client("ccoord");
    const auto tp = std::make_shared<redis_transport>(client, "q");
    const test::dist_backend b{tp, std::make_shared<redis_task_store>(client, "q"),
                               std::make_shared<redis_worker_registry>(client, "q")};
    const queue_keys k{tp->key_base()};
    coordinator producer{test::node_options(b, 0, "producer")};
    std::vector<task_handle> handles;
    for (int i = 0; i < 6; ++i) {
        auto r = producer.submit_async("echo", "p", {.id = "t" + std::to_string(i)});
        REQUIRE(r);
        handles.push_back(r.handle);
    }
    client->command({"DEL", k.m("t2")});
    client->command({"SET", k.m("t2"), "x"});
    client->command({"HSET", k.m("t4"), "a", "-1"});

    coordinator workers{test::node_options(b, 2, "workers")};
    workers.register_handler("echo", [](task_context&) { return std::string("done"); });
    for (std::size_t i = 0; i < handles.size(); ++i) {
        const auto done = handles[i].wait_for(20s);
        REQUIRE(done);
        INFO(done->id);
        if (i == 2 || i == 4) {
            CHECK(done->status == task_status::failed);
            CHECK_THAT(done->error, Catch::Contains("dead-lettered"));
        } else {
            CHECK(done->status == task_status::completed);
        }
    }
    const auto dead = dead_map(*tp);
    CHECK_THAT(dead.at("t2"), Catch::Contains("not a hash"));
    CHECK_THAT(dead.at("t4"), Catch::Contains("field a = '-1'"));
}

// --- task store ---------------------------------------------------------------

namespace {
task_record record(const std::string& id) {
    task_record r;
    r.id = id;
    r.type = "t";
    r.payload = "payload";
    r.status = task_status::queued;
    r.created_at = std::chrono::system_clock::now();
    return r;
}

}  // namespace

TEST_CASE("redis_task_store: a record with a field out of range is dead-lettered naming the field",
          "[redis][corruption][store]") {
    auto client = shared_redis_server().client("crange");
    redis_task_store s(client, "q");
    REQUIRE(s.create(record("x")));
    struct bad_case {
        std::string field, value, expect;
    };
    const auto c = GENERATE(bad_case{"o", "-7,0,0,0,100,30000,1", "o.priority = \"-7\""},
                            bad_case{"o", "21,0,0,0,100,30000,1", "o.priority = \"21\""},
                            bad_case{"o", "5,-5,0,0,100,30000,1", "o.timeout_ms = \"-5\""},
                            bad_case{"o", "5,0,0,0,-1,30000,1", "o.backoff.base_ms = \"-1\""},
                            bad_case{"o", "5,0,0,0,100,50,1", "o.backoff.cap_ms = \"50\""},
                            bad_case{"o", "5,0,0,0,100,30000", "o = \"5,0,0,0,100,30000\""},
                            bad_case{"g", "7", "g = \"7\""},
                            bad_case{"g", "nan", "g = \"nan\""},
                            bad_case{"a", "-1", "a = \"-1\""},
                            bad_case{"a", "4294967296", "a = \"4294967296\""},
                            bad_case{"s", "sleeping", "s = \"sleeping\""},
                            bad_case{"c", "soon", "c = \"soon\""},
                            bad_case{"m", "{\"k\":1}", "m.k = \"1\""},
                            bad_case{"k", "[\"gpu\",2]", "k = \"2\""},
                            bad_case{"d", "{}", "d = \"{}\""});
    client->command({"HSET", s.record_key("x"), c.field, c.value});
    CHECK_FALSE(s.get("x").has_value());
    const auto dead = s.dead_letters();
    REQUIRE(dead.size() == 1);
    CHECK_THAT(dead[0].reason, Catch::Contains(s.record_key("x")) && Catch::Contains(c.expect));
    CHECK(s.size() == 0);
}

TEST_CASE("redis_task_store: a record without its status or creation time is dead-lettered",
          "[redis][corruption][store]") {
    auto client = shared_redis_server().client("cmissing");
    redis_task_store s(client, "q");
    REQUIRE(s.create(record("x")));
    const std::string field = GENERATE("s", "c");
    client->command({"HDEL", s.record_key("x"), field});
    CHECK(s.list({}).empty());
    const auto dead = s.dead_letters();
    REQUIRE(dead.size() == 1);
    CHECK_THAT(dead[0].reason, Catch::Contains(s.record_key("x") + " " + field) && Catch::Contains("missing"));
}

TEST_CASE("redis_task_store: a record it could not read back is refused when written, naming the field",
          "[redis][corruption][store]") {
    auto client = shared_redis_server().client("cwrite_range");
    redis_task_store s(client, "q");
    auto r = record("x");
    r.progress = std::numeric_limits<double>::quiet_NaN();
    CHECK_THAT(orchcore_error_of([&] { s.create(r); }), Catch::StartsWith("orchcore: invalid progress = nan"));
    r.progress = 0.5;
    r.priority = -7;
    CHECK_THAT(orchcore_error_of([&] { s.create(r); }), Catch::StartsWith("orchcore: invalid priority = -7"));
    r.priority = 5;
    r.timeout = -5ms;
    CHECK_THAT(orchcore_error_of([&] { s.create(r); }), Catch::StartsWith("orchcore: invalid timeout = -5ms"));
    r.timeout = 0ms;
    REQUIRE(s.create(r));
    auto u = r;
    u.status = task_status::running;
    u.progress = 2.0;
    CHECK_THAT(orchcore_error_of([&] { s.update(u, task_status::queued); }),
               Catch::StartsWith("orchcore: invalid progress"));
    CHECK(s.get("x").has_value());
    CHECK(s.dead_letters().empty());
}

TEST_CASE("redis_task_store: the longest durations round-trip", "[redis][corruption][store]") {
    auto client = shared_redis_server().client("clong");
    redis_task_store s(client, "q");
    auto r = record("x");
    r.timeout = std::chrono::milliseconds::max();
    r.turn_timeout = std::chrono::milliseconds::max();
    r.backoff.cap = std::chrono::milliseconds::max();
    REQUIRE(s.create(r));
    const auto got = s.get("x");
    REQUIRE(got.has_value());
    CHECK(got->turn_timeout == std::chrono::milliseconds::max());
    CHECK(got->backoff.cap == std::chrono::milliseconds::max());
}

TEST_CASE("redis_task_store: size() of an index of the wrong type is an error, not 0", "[redis][corruption][store]") {
    auto client = shared_redis_server().client("csize");
    redis_task_store s(client, "q");
    REQUIRE(s.create(record("x")));
    client->command({"DEL", s.key_base() + ":tasks"});
    client->command({"SET", s.key_base() + ":tasks", "x"});
    CHECK_THAT(orchcore_error_of([&] { s.size(); }), Catch::Contains(s.key_base() + ":tasks"));
}

TEST_CASE("redis_task_store: a write with an index key of the wrong type changes nothing",
          "[redis][corruption][store]") {
    auto client = shared_redis_server().client("cwrite");
    redis_task_store s(client, "q");
    client->command({"SET", s.key_base() + ":tasks", "x"});
    CHECK_THAT(orchcore_error_of([&] { s.create(record("x")); }),
               Catch::Contains(s.key_base() + ":tasks") && Catch::Contains("where a set belongs"));
    CHECK(client->command({"EXISTS", s.record_key("x")}).integer == 0);
    client->command({"DEL", s.key_base() + ":tasks"});
    CHECK(s.create(record("x")));
}

TEST_CASE("redis_task_store: update, erase and expire with a finished set of the wrong type change nothing",
          "[redis][corruption][store]") {
    auto client = shared_redis_server().client("cfin");
    redis_task_store s(client, "q");
    const auto t0 = std::chrono::system_clock::now();
    auto done = record("done");
    done.status = task_status::completed;
    done.finished_at = t0;
    REQUIRE(s.create(done));
    auto x = record("x");
    x.status = task_status::running;
    REQUIRE(s.create(x));
    const std::string failed_set = s.key_base() + ":finished:failed";
    client->command({"SET", failed_set, "x"});

    auto f = x;
    f.status = task_status::failed;
    f.finished_at = t0;
    CHECK_THAT(orchcore_error_of([&] { s.update(f, task_status::running); }), Catch::Contains(failed_set));
    CHECK(s.get("x")->status == task_status::running);
    CHECK_THAT(orchcore_error_of([&] { s.erase("x"); }), Catch::Contains(failed_set));
    CHECK(s.get("x").has_value());
    // expire() would delete "done" and then fail on the failed set, losing
    // the report of what it deleted.
    CHECK_THAT(orchcore_error_of([&] { s.expire(t0 + 1h, 1ms, 1ms, 1ms); }), Catch::Contains(failed_set));
    CHECK(s.get("done").has_value());
    client->command({"DEL", failed_set});
    CHECK(s.expire(t0 + 1h, 1ms, 1ms, 1ms) == std::vector<std::string>{"done"});
}

// --- worker registry ------------------------------------------------------------

TEST_CASE("redis_worker_registry: an undecodable worker entry is reported and skipped",
          "[redis][corruption][registry]") {
    auto o = shared_redis_server().options("cworker");
    std::mutex m;
    std::vector<std::string> warnings;
    o.on_warning = [&](std::string_view w) {
        std::lock_guard lk(m);
        warnings.emplace_back(w);
    };
    auto client = std::make_shared<redis_client>(o);
    redis_worker_registry reg(client, "q");
    const auto now = std::chrono::system_clock::now();
    for (const char* id : {"good", "bad-hb", "not-hash"}) {
        worker_record w;
        w.id = id;
        w.last_heartbeat = now - 1h;
        reg.upsert(w);
    }
    const std::string bad_key = reg.key_base() + ":worker:bad-hb";
    client->command({"HSET", bad_key, "hb", "12x"});
    const std::string hash_key = reg.key_base() + ":worker:not-hash";
    client->command({"DEL", hash_key});
    client->command({"SET", hash_key, "x"});

    CHECK_FALSE(reg.get("bad-hb").has_value());
    const auto all = reg.list();
    REQUIRE(all.size() == 1);
    CHECK(all[0].id == "good");
    {
        std::lock_guard lk(m);
        REQUIRE(warnings.size() >= 2);
        CHECK_THAT(warnings[0], Catch::Contains(bad_key + " hb = \"12x\""));
    }
    // Reaping goes past the entry that is not a hash.
    CHECK(reg.reap_stale(now, 1s) == std::vector<std::string>{"bad-hb", "good"});
}

TEST_CASE("redis_worker_registry: a worker set of the wrong type fails upsert and remove before they change anything",
          "[redis][corruption][registry]") {
    auto client = shared_redis_server().client("cwset");
    redis_worker_registry reg(client, "q");
    worker_record w;
    w.id = "w1";
    reg.upsert(w);
    const std::string set_key = reg.key_base() + ":workers";
    client->command({"DEL", set_key});
    client->command({"SET", set_key, "x"});
    CHECK_THAT(orchcore_error_of([&] { reg.remove("w1"); }),
               Catch::Contains(set_key) && Catch::Contains("where a set belongs"));
    CHECK(client->command({"EXISTS", reg.key_base() + ":worker:w1"}).integer == 1);
    w.id = "w2";
    CHECK_THAT(orchcore_error_of([&] { reg.upsert(w); }), Catch::Contains(set_key));
    CHECK(client->command({"EXISTS", reg.key_base() + ":worker:w2"}).integer == 0);
}
