// Redis-specific behaviour: configuration, connection failures, key layout,
// injection, dead letters, key hygiene. The interface semantics are covered
// by the conformance suites (tests/unit/*conformance_test.cpp).
#include <orchcore/redis/redis.hpp>

#include "redis/redis_server_fixture.hpp"
#include "support/error_helpers.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace orchcore;
using namespace std::chrono_literals;
using orchcore::test::redis_server;
using orchcore::test::invalid_field;
using orchcore::test::shared_redis_server;

namespace {

// Every key of the server whose name starts with `prefix` (SCAN).
std::vector<std::string> keys_with_prefix(redis_client& c, const std::string& prefix) {
    std::vector<std::string> out;
    std::string cursor = "0";
    do {
        auto r = c.command({"SCAN", cursor, "COUNT", "1000"});
        cursor = r.elements.at(0).str;
        for (const auto& k : r.elements.at(1).elements)
            if (k.str.compare(0, prefix.size(), prefix) == 0) out.push_back(k.str);
    } while (cursor != "0");
    std::sort(out.begin(), out.end());
    return out;
}

task_record record(const std::string& id, task_status s = task_status::queued) {
    task_record r;
    r.id = id;
    r.type = "t";
    r.payload = "payload";
    r.status = s;
    r.created_at = std::chrono::system_clock::now();
    return r;
}

}  // namespace

TEST_CASE("redis_options::from_url parses every part", "[redis][options]") {
    auto o = redis_options::from_url("redis://alice:s%40cret@example.org:6380/3?prefix=app&pool_size=4");
    CHECK(o.user == "alice");
    CHECK(o.password == "s@cret");
    CHECK(o.host == "example.org");
    CHECK(o.port == 6380);
    CHECK(o.db == 3);
    CHECK(o.prefix == "app");
    CHECK(o.pool_size == 4);
    CHECK(o.describe() == "redis://alice@example.org:6380/3");

    auto d = redis_options::from_url("redis://localhost");
    CHECK(d.host == "localhost");
    CHECK(d.port == 6379);
    CHECK(d.db == 0);
    CHECK(d.password.empty());

    auto p = redis_options::from_url("redis://:pw@[::1]:7000/");
    CHECK(p.user.empty());
    CHECK(p.password == "pw");
    CHECK(p.host == "::1");
    CHECK(p.port == 7000);

    auto q = redis_options::from_url("REDIS://h?connect_timeout_ms=150&command_timeout_ms=250&retry_timeout_ms=0");
    CHECK(q.connect_timeout == 150ms);
    CHECK(q.command_timeout == 250ms);
    CHECK(q.retry_timeout == 0ms);
}

TEST_CASE("redis_options::from_url names the bad field and hides the password", "[redis][options]") {
    auto field = [](const char* url) { return invalid_field([&] { redis_options::from_url(url); }); };
    CHECK_THAT(field("http://h"), Catch::StartsWith("url | orchcore: invalid url = \"http://h\": must start with redis://"));
    CHECK_THAT(field("rediss://h"), Catch::StartsWith("url | ") && Catch::Contains("TLS"));
    CHECK_THAT(field("redis://h:99999"), Catch::StartsWith("url.port | ") && Catch::Contains("99999"));
    CHECK_THAT(field("redis://h:abc"), Catch::StartsWith("url.port | "));
    CHECK_THAT(field("redis://h:"), Catch::StartsWith("url.port | "));
    CHECK_THAT(field("redis://h/x"), Catch::StartsWith("url.db | ") && Catch::Contains("\"x\""));
    CHECK_THAT(field("redis://h/-1"), Catch::StartsWith("url.db | "));
    CHECK_THAT(field("redis://"), Catch::StartsWith("url.host | "));
    CHECK_THAT(field("redis://u:topsecret@/0"), Catch::StartsWith("url.host | ") && !Catch::Contains("topsecret"));
    CHECK_THAT(field("redis://u:@h"), Catch::StartsWith("url.password | "));
    CHECK_THAT(field("redis://u:%zz@h"), Catch::StartsWith("url.password | ") && !Catch::Contains("%zz"));
    CHECK_THAT(field("redis://h?pool_size=0"), Catch::StartsWith("pool_size | "));
    CHECK_THAT(field("redis://h?pool_size=x"), Catch::StartsWith("url.pool_size | "));
    CHECK_THAT(field("redis://h?colour=red"), Catch::StartsWith("url.query | ") && Catch::Contains("colour"));
    CHECK_THAT(field("redis://h?prefix=a{b}"), Catch::StartsWith("prefix | "));
    CHECK_THAT(field("redis://[::1"), Catch::StartsWith("url.host | "));
}

TEST_CASE("redis_options::validate names the field", "[redis][options]") {
    auto check = [](auto mutate, const char* field) {
        redis_options o;
        mutate(o);
        CHECK_THAT(invalid_field([&] { o.validate(); }), Catch::StartsWith(std::string(field) + " | "));
    };
    check([](redis_options& o) { o.port = 0; }, "port");
    check([](redis_options& o) { o.db = -2; }, "db");
    check([](redis_options& o) { o.prefix = ""; }, "prefix");
    check([](redis_options& o) { o.pool_size = 0; }, "pool_size");
    check([](redis_options& o) { o.command_timeout = 0ms; }, "command_timeout");
    check([](redis_options& o) { o.reconnect_backoff_cap = 1ms; }, "reconnect_backoff_cap");
    check([](redis_options& o) { o.user = "bob"; }, "password");
    CHECK_THROWS_AS(redis_transport(shared_redis_server().client(), "a{b}"), orchcore::invalid_argument);
    CHECK_THROWS_AS(redis_transport(shared_redis_server().client(), ""), orchcore::invalid_argument);
}

TEST_CASE("redis: an unreachable server gives a clear error within the retry budget", "[redis][failure]") {
    redis_options o;
    o.port = orchcore::test::free_local_port();  // nothing listens there
    o.connect_timeout = 200ms;
    o.retry_timeout = 300ms;
    o.reconnect_backoff_base = 20ms;
    redis_client c(o);
    const auto start = std::chrono::steady_clock::now();
    try {
        c.ping();
        FAIL("no exception");
    } catch (const redis_error& e) {
        CHECK(e.code() == orchcore::errc::backend_unavailable);
        CHECK(e.failure() == redis_failure::connect);
        CHECK_THAT(std::string(e.what()), Catch::Contains("cannot connect to redis at redis://127.0.0.1:" +
                                                          std::to_string(o.port)) &&
                                              Catch::Contains("gave up after"));
    }
    CHECK(std::chrono::steady_clock::now() - start < 2s);
    // A transport over it fails the same way (and does not crash).
    redis_transport t(std::make_shared<redis_client>(o), "q");
    CHECK_THROWS_AS(t.admit({"a"}), redis_error);
}

TEST_CASE("redis: a server that stops answering times out instead of hanging", "[redis][failure]") {
    redis_server server;
    auto o = server.options();
    o.command_timeout = 200ms;
    o.retry_timeout = 200ms;
    redis_client c(o);
    c.ping();
    redis_client admin(server.options());
    admin.command({"CLIENT", "PAUSE", "1500", "ALL"});
    const auto start = std::chrono::steady_clock::now();
    try {
        c.command({"GET", "x"});
        FAIL("no exception");
    } catch (const redis_error& e) {
        CHECK(e.failure() == redis_failure::timeout);
        CHECK_THAT(std::string(e.what()), Catch::Contains("no reply within command_timeout = 200ms"));
    }
    CHECK(std::chrono::steady_clock::now() - start < 1200ms);
    std::this_thread::sleep_for(1500ms);
    c.ping();  // reconnects on its own
}

TEST_CASE("redis: AUTH with password and ACL user; wrong credentials give a clear error", "[redis][auth]") {
    redis_server server({"--requirepass", "s3cret"}, "s3cret");
    auto o = server.options();

    SECTION("right password") {
        o.password = "s3cret";
        redis_client c(o);
        c.ping();
    }
    SECTION("wrong password") {
        o.password = "wrong-pw";
        redis_client c(o);
        try {
            c.ping();
            FAIL("no exception");
        } catch (const redis_error& e) {
            CHECK(e.failure() == redis_failure::auth);
            CHECK(e.code() == orchcore::errc::backend_unavailable);
            const std::string what = e.what();
            CHECK_THAT(what, Catch::Contains("refused authentication") && Catch::Contains("WRONGPASS"));
            CHECK_THAT(what, !Catch::Contains("wrong-pw"));
        }
        CHECK(c.stats().connect_failures == 1);  // auth failures are not retried
    }
    SECTION("no password") {
        redis_client c(o);
        try {
            c.ping();
            FAIL("no exception");
        } catch (const redis_error& e) {
            CHECK(e.failure() == redis_failure::auth);
            CHECK_THAT(std::string(e.what()), Catch::Contains("requires authentication"));
        }
    }
    SECTION("ACL user") {
        auto admin_o = o;
        admin_o.password = "s3cret";
        redis_client admin(admin_o);
        REQUIRE(admin.command({"ACL", "SETUSER", "alice", "on", ">alicepw", "~*", "+@all"}).str == "OK");
        auto url = redis_options::from_url("redis://alice:alicepw@127.0.0.1:" + std::to_string(server.port()) + "/2");
        url.on_warning = [](std::string_view) {};
        redis_client c(url);
        c.ping();
        CHECK(c.command({"SET", "k", "v"}).str == "OK");
        CHECK(admin.command({"GET", "k"}).is_nil());  // db 2, not 0
        url.password = "nope";
        redis_client bad(url);
        try {
            bad.ping();
            FAIL("no exception");
        } catch (const redis_error& e) {
            CHECK(e.failure() == redis_failure::auth);
            CHECK_THAT(std::string(e.what()), Catch::Contains("for user 'alice'"));
        }
    }
}

TEST_CASE("redis: SELECT of a database that does not exist is a clear error", "[redis][failure]") {
    auto o = shared_redis_server().options();
    o.db = 5000;
    redis_client c(o);
    try {
        c.ping();
        FAIL("no exception");
    } catch (const redis_error& e) {
        CHECK(e.failure() == redis_failure::server);
        CHECK_THAT(std::string(e.what()), Catch::Contains("SELECT 5000 failed"));
    }
}

TEST_CASE("redis: the client reconnects after the server restarts", "[redis][failure]") {
    redis_server server;
    auto client = server.client();
    redis_transport t(client, "q");
    REQUIRE(t.admit({"a"}));
    server.stop();
    server.start();  // same port, empty data (no persistence)
    client->ping();  // idempotent: retried on a fresh connection
    REQUIRE(t.admit({"b"}).accepted());
    CHECK(t.size_approx() == 1);
    CHECK(client->stats().connects >= 2);
}

TEST_CASE("redis: keys are namespaced by prefix and hash-tagged per queue", "[redis][keys]") {
    auto client = shared_redis_server().client("ns");
    const std::string prefix = client->options().prefix;
    redis_transport t(client, "jobs", {.policy = queue_policy::drop_lru});
    redis_task_store s(client, "jobs");
    redis_worker_registry w(client, "jobs");
    CHECK(t.key_base() == "{" + prefix + ":jobs}");
    REQUIRE(t.admit({"a"}));
    REQUIRE(t.admit({"b"}));
    auto l = t.lease("w", 1, 10s, std::chrono::system_clock::now());
    REQUIRE(t.nack(l.at(0).task_id, l.at(0).token, 10s, std::chrono::system_clock::now()));
    REQUIRE(s.create(record("a")));
    w.upsert({.id = "w1"});
    auto keys = keys_with_prefix(*client, "");
    std::vector<std::string> ours;
    for (const auto& k : keys)
        if (k.find(prefix) != std::string::npos) ours.push_back(k);
    REQUIRE(ours.size() >= 7);
    for (const auto& k : ours) CHECK_THAT(k, Catch::StartsWith("{" + prefix + ":jobs}:"));
}

TEST_CASE("redis: ids with quotes, spaces, braces and newlines cannot break out", "[redis][keys][injection]") {
    auto client = shared_redis_server().client("inj");
    const std::string base = "{" + client->options().prefix + ":q}";
    redis_transport t(client, "q");
    redis_task_store s(client, "q");
    const std::vector<std::string> ids = {
        "a\"b'c",
        "with space",
        "}{evil}",
        "line\nbreak\r\n",
        "') redis.call('FLUSHALL') --",
        "]] .. redis.call('FLUSHALL') .. [[",
        "*",
        std::string("nul\0byte", 8),
    };
    REQUIRE(client->command({"SET", "sentinel", "still-here"}).str == "OK");
    for (const auto& id : ids) {
        INFO(id);
        auto r = t.admit({id});
        REQUIRE(r.accepted());
        CHECK(*r.id == id);
        auto rec = record(id);
        REQUIRE(s.create(rec));
        auto got = s.get(id);
        REQUIRE(got.has_value());
        CHECK(got->id == id);
    }
    auto ls = t.lease("w", 100, 10s, std::chrono::system_clock::now());
    REQUIRE(ls.size() == ids.size());
    std::set<std::string> leased;
    for (const auto& l : ls) {
        leased.insert(l.task_id);
        CHECK(t.ack(l.task_id, l.token));
    }
    CHECK(leased == std::set<std::string>(ids.begin(), ids.end()));
    CHECK(client->command({"GET", "sentinel"}).str == "still-here");
    for (const auto& k : keys_with_prefix(*client, "{" + client->options().prefix))
        CHECK_THAT(k, Catch::StartsWith(base + ":"));
    CHECK(s.list({}).size() == ids.size());
    for (const auto& id : ids) CHECK(s.erase(id));
}

TEST_CASE("redis: a stale fencing token from another process is refused", "[redis][fencing]") {
    auto ro = shared_redis_server().options("fence");
    redis_transport a(std::make_shared<redis_client>(ro), "q");
    redis_transport b(std::make_shared<redis_client>(ro), "q");
    const auto now = std::chrono::system_clock::now();
    REQUIRE(a.admit({"job"}));
    auto la = a.lease("slow-worker", 1, 50ms, now).at(0);
    auto orphans = b.recover_expired(now + 100ms, 10);
    REQUIRE(orphans.size() == 1);
    auto lb = b.lease("other-worker", 1, 10s, now + 100ms).at(0);
    CHECK(lb.token > la.token);
    CHECK_FALSE(a.extend("job", la.token, 10s, now + 110ms));
    CHECK_FALSE(a.ack("job", la.token));  // the late completion is refused
    CHECK_FALSE(a.nack("job", la.token, 0ms, now + 110ms));
    CHECK(b.ack("job", lb.token));
    CHECK(a.stats().stale_refusals == 3);
}

TEST_CASE("redis: two transports with different policies on one queue are refused", "[redis][transport]") {
    auto ro = shared_redis_server().options("pol");
    redis_transport a(std::make_shared<redis_client>(ro), "q", {.policy = queue_policy::priority});
    redis_transport b(std::make_shared<redis_client>(ro), "q", {.policy = queue_policy::reject_new});
    REQUIRE(a.admit({"x"}));
    try {
        b.admit({"y"});
        FAIL("no exception");
    } catch (const redis_error& e) {
        CHECK_THAT(std::string(e.what()), Catch::Contains("policy mismatch"));
    }
}

TEST_CASE("redis_task_store: an undecodable record goes to the dead-letter set", "[redis][store][deadletter]") {
    auto client = shared_redis_server().client("dead");
    redis_task_store s(client, "q");
    REQUIRE(s.create(record("good")));
    REQUIRE(s.create(record("bad-json")));
    REQUIRE(s.create(record("bad-status")));
    client->command({"HSET", s.record_key("bad-json"), "m", "{not json"});
    client->command({"HSET", s.record_key("bad-status"), "s", "exploded"});
    client->command({"SET", s.record_key("not-a-hash"), "garbage"});
    client->command({"SADD", s.key_base() + ":tasks", "not-a-hash"});

    CHECK_FALSE(s.get("bad-json").has_value());
    auto all = s.list({});
    REQUIRE(all.size() == 1);
    CHECK(all[0].id == "good");
    auto dead = s.dead_letters();
    std::sort(dead.begin(), dead.end(), [](auto& a, auto& b) { return a.id < b.id; });
    REQUIRE(dead.size() == 3);
    CHECK(dead[0].id == "bad-json");
    CHECK_THAT(dead[0].reason, Catch::Contains("not valid JSON"));
    CHECK(dead[1].id == "bad-status");
    CHECK_THAT(dead[1].reason, Catch::Contains("unknown status"));
    CHECK(dead[2].id == "not-a-hash");
    CHECK_THAT(dead[2].reason, Catch::Contains("not a hash"));
    // The record is preserved as found, outside the live set.
    CHECK(client->command({"HGET", s.key_base() + ":dead:bad-json", "m"}).str == "{not json");
    CHECK(client->command({"EXISTS", s.record_key("bad-json")}).integer == 0);
    CHECK(s.size() == 1);
    CHECK(s.drop_dead_letter("bad-json"));
    CHECK_FALSE(s.drop_dead_letter("bad-json"));
    CHECK(s.dead_letters().size() == 2);
}

TEST_CASE("redis_task_store: oversized payloads are refused with a clear error", "[redis][store]") {
    auto o = shared_redis_server().options("big");
    o.max_payload_bytes = 1000;
    redis_task_store s(std::make_shared<redis_client>(o), "q");
    auto r = record("big");
    r.payload.assign(1001, 'x');
    CHECK_THAT(invalid_field([&] { s.create(r); }),
               Catch::StartsWith("payload | orchcore: invalid payload = 1001 bytes: exceeds max_payload_bytes = 1000"));
    r.payload.assign(1000, 'x');
    CHECK(s.create(r));
    r.status = task_status::running;
    r.result.assign(5000, 'y');
    CHECK_THAT(invalid_field([&] { s.update(r, task_status::queued); }), Catch::StartsWith("result | "));
}

TEST_CASE("redis: every key a task creates is gone after it finishes and its TTL passes", "[redis][keys][ttl]") {
    auto client = shared_redis_server().client("ttl");
    const std::string base = "{" + client->options().prefix + ":q}";
    redis_transport t(client, "q", {.policy = queue_policy::drop_lru, .capacity = 10000});
    redis_task_store s(client, "q", {.completed_ttl = 300ms, .failed_ttl = 300ms, .cancelled_ttl = 300ms});
    auto count_keys = [&] { return keys_with_prefix(*client, base).size(); };

    auto run_tasks = [&](int n, const std::string& tag) {
        auto now = std::chrono::system_clock::now();
        std::vector<transport_request> rs;
        for (int i = 0; i < n; ++i) {
            const std::string id = tag + std::to_string(i);
            REQUIRE(s.create(record(id)));
            rs.push_back({id, i % 21});
        }
        for (const auto& r : t.admit_many(rs)) REQUIRE(r.accepted());
        // Steering messages for every task: some are read, some are left
        // in the mailbox when the task ends; neither may leave a key.
        for (const auto& r : rs) REQUIRE(t.post_messages(r.id, std::vector<std::string>{"steer " + r.id}));
        for (;;) {
            auto ls = t.lease("w", 16, 10s, now);
            if (ls.empty()) break;
            std::vector<lease_ref> refs;
            for (const auto& l : ls) {
                if (l.task_id.back() == '1') REQUIRE(t.take_messages(l.task_id, l.token).has_value());
                auto rec = *s.get(l.task_id);
                rec.status = task_status::running;
                REQUIRE(s.update(rec, task_status::queued));
                if (l.attempt == 1 && l.task_id.back() == '3') {  // some fail once and retry later
                    REQUIRE(t.nack(l.task_id, l.token, 1ms, now));
                    rec.status = task_status::queued;
                    REQUIRE(s.update(rec, task_status::running));
                    continue;
                }
                rec.status = l.task_id.back() == '7' ? task_status::failed : task_status::completed;
                rec.finished_at = std::chrono::system_clock::now();
                REQUIRE(s.update(rec, task_status::running));
                refs.push_back({l.task_id, l.token});
            }
            for (bool ok : t.ack_many(refs)) REQUIRE(ok);
            now += 5ms;
        }
        // One cancelled while waiting.
        REQUIRE(s.create(record(tag + "-c")));
        REQUIRE(t.admit({tag + "-c"}));
        REQUIRE(t.post_messages(tag + "-c", std::vector<std::string>{"never read"}));
        REQUIRE(t.cancel(tag + "-c"));
        auto rec = *s.get(tag + "-c");
        rec.status = task_status::cancelled;
        rec.finished_at = std::chrono::system_clock::now();
        REQUIRE(s.update(rec, task_status::queued));
    };

    run_tasks(3, "warm");  // creates the queue's fixed keys
    std::this_thread::sleep_for(400ms);
    s.expire(std::chrono::system_clock::now(), 1h, 1h, 1h);  // index cleanup of Redis-expired records
    const auto baseline = count_keys();
    CHECK(baseline == 2);  // only :state remains, and :wake (tokens nobody took; they expire)

    run_tasks(200, "job");
    CHECK(count_keys() > baseline);      // records wait for their TTL
    std::this_thread::sleep_for(400ms);  // Redis TTLs (300 ms) pass
    auto expired = s.expire(std::chrono::system_clock::now(), 1h, 1h, 1h);
    CHECK(expired.size() == 201);
    CHECK(s.size() == 0);
    CHECK(count_keys() == baseline);
    CHECK(t.size_approx() == 0);
    CHECK(t.leased_count() == 0);
}

TEST_CASE("redis: a maxmemory-policy that may evict queue keys is reported", "[redis][config]") {
    redis_server server;
    redis_client admin(server.options());
    admin.command({"CONFIG", "SET", "maxmemory-policy", "allkeys-lru"});
    auto o = server.options();
    std::vector<std::string> seen;
    o.on_warning = [&](std::string_view w) { seen.emplace_back(w); };
    redis_client c(o);
    c.ping();
    REQUIRE(seen.size() == 1);
    CHECK_THAT(seen[0], Catch::Contains("allkeys-lru") && Catch::Contains("noeviction"));
    CHECK(c.warnings() == seen);
}

TEST_CASE("redis_task_store: create_many creates in one pipeline and refuses duplicates", "[redis][store]") {
    auto client = shared_redis_server().client("bulk");
    redis_task_store s(client, "q");
    REQUIRE(s.create(record("r3")));
    std::vector<task_record> rs;
    for (int i = 0; i < 2500; ++i) rs.push_back(record("r" + std::to_string(i)));
    rs.push_back(record("r7"));  // duplicate within the batch
    const auto ok = s.create_many(rs);
    REQUIRE(ok.size() == rs.size());
    CHECK(std::count(ok.begin(), ok.end(), true) == 2499);
    CHECK_FALSE(ok[3]);     // existed before
    CHECK_FALSE(ok.back());  // second r7
    CHECK(s.size() == 2500);
    CHECK(s.get("r2499")->payload == "payload");
    // Works on a server that has not loaded the script (NOSCRIPT path).
    client->command({"SCRIPT", "FLUSH"});
    std::vector<task_record> more{record("x1"), record("x2")};
    CHECK(s.create_many(more) == std::vector<bool>{true, true});
    // Checked before anything is sent.
    auto o = shared_redis_server().options("bulk");
    o.max_payload_bytes = 10;
    redis_task_store small(std::make_shared<redis_client>(o), "q");
    std::vector<task_record> bad{record("ok"), record("big")};
    bad[1].payload.assign(11, 'x');
    CHECK_THROWS_AS(small.create_many(bad), orchcore::invalid_argument);
    CHECK_FALSE(small.get("ok").has_value());
}

TEST_CASE("redis_task_store: create_many files finished records in their class and checks the index keys first",
          "[redis][store]") {
    auto client = shared_redis_server().client("bulk_classes");
    redis_task_store s(client, "q");
    std::vector<task_record> rs{record("q1"), record("c1", task_status::completed),
                                record("f1", task_status::timed_out), record("x1", task_status::cancelled)};
    for (auto& r : rs)
        if (r.status != task_status::queued) r.finished_at = std::chrono::system_clock::now();
    CHECK(s.create_many(rs) == std::vector<bool>{true, true, true, true});
    CHECK(s.size() == 4);
    for (const auto& [id, st] : {std::pair{"q1", task_status::queued}, std::pair{"c1", task_status::completed},
                                 std::pair{"f1", task_status::timed_out}, std::pair{"x1", task_status::cancelled}}) {
        const auto listed = s.list({.status = st});
        REQUIRE(listed.size() == 1);
        CHECK(listed[0].id == id);
    }
    // A key of the wrong type: the call fails before it writes anything.
    client->command({"SET", s.key_base() + ":tasks", "corrupt"});
    std::vector<task_record> more{record("y1"), record("y2")};
    CHECK_THROWS_AS(s.create_many(more), orchcore::redis_error);
    CHECK(client->command({"EXISTS", s.record_key("y1"), s.record_key("y2")}).integer == 0);
}

TEST_CASE("redis: while the server is down calls fail within the retry budget, and work again after it returns",
          "[redis][failure]") {
    redis_server server;
    auto o = server.options();
    o.connect_timeout = 200ms;
    o.retry_timeout = 500ms;
    o.reconnect_backoff_base = 20ms;
    o.reconnect_backoff_cap = 100ms;
    auto client = std::make_shared<redis_client>(o);
    redis_transport t(client, "q");
    redis_task_store s(client, "q");
    REQUIRE(t.admit({"a"}));
    server.stop();
    for (int i = 0; i < 3; ++i) {  // every kind of call: idempotent, script, pipeline
        const auto start = std::chrono::steady_clock::now();
        try {
            if (i == 0) t.admit({"b"});
            else if (i == 1) s.get("a");
            else t.stats();
            FAIL("no exception");
        } catch (const redis_error& e) {
            CHECK(e.code() == orchcore::errc::backend_unavailable);
        }
        CHECK(std::chrono::steady_clock::now() - start < 1500ms);  // retry_timeout + one connect_timeout
    }
    server.start();
    CHECK(t.admit({"b"}).accepted());  // the next call reconnects
    CHECK(s.create(record("b")));
    CHECK(t.size_approx() == 1);  // no persistence: only b
}
