// One conformance suite for the transport interface, written against
// orchcore::transport only and run on every backend in ORCHCORE_TRANSPORTS
// (memory always; Redis when built with ORCHCORE_WITH_REDIS, against a
// private redis-server). Time is passed in, so the tests do not sleep.
#include <orchcore/transport.hpp>

#ifdef ORCHCORE_TEST_WITH_REDIS
#include <orchcore/redis/redis.hpp>

#include "redis/redis_server_fixture.hpp"
#endif

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace orchcore;
using namespace std::chrono_literals;

namespace {

// make(o) gives a transport; peer() another handle on the same queue (for
// Redis: another client, so another process as far as Redis can tell).
struct memory_transports {
    std::shared_ptr<transport> main;
    explicit memory_transports(transport_options o = {}) : main(std::make_shared<memory_transport>(o)) {}
    std::shared_ptr<transport> peer() const { return main; }
};

#ifdef ORCHCORE_TEST_WITH_REDIS
struct redis_transports {
    redis_options ro;
    transport_options to;
    std::shared_ptr<transport> main;
    explicit redis_transports(transport_options o = {})
        : ro(orchcore::test::shared_redis_server().options("tr")), to(o) {
        main = std::make_shared<redis_transport>(std::make_shared<redis_client>(ro), "q", to);
    }
    std::shared_ptr<transport> peer() const {
        return std::make_shared<redis_transport>(std::make_shared<redis_client>(ro), "q", to);
    }
};
#define ORCHCORE_TRANSPORTS memory_transports, redis_transports
#else
#define ORCHCORE_TRANSPORTS memory_transports
#endif

const auto t0 = std::chrono::system_clock::time_point{std::chrono::milliseconds{1'700'000'000'000}};

std::vector<std::string> ids_of(const std::vector<transport_lease>& ls) {
    std::vector<std::string> out;
    for (const auto& l : ls) out.push_back(l.task_id);
    return out;
}

}  // namespace

TEMPLATE_TEST_CASE("transport: FIFO admission, positions, leasing in order", "[conformance][transport]",
                   ORCHCORE_TRANSPORTS) {
    TestType b;
    auto& t = *b.main;
    for (int i = 0; i < 5; ++i) {
        auto r = t.admit({"t" + std::to_string(i), i % 3 == 0 ? priority::high : priority::low});
        REQUIRE(r.accepted());
        CHECK(*r.id == "t" + std::to_string(i));
        CHECK(r.position == static_cast<std::size_t>(i));
        CHECK_FALSE(r.evicted.has_value());
    }
    CHECK(t.size_approx() == 5);
    auto ls = t.lease("w1", 3, 1000ms, t0);
    CHECK(ids_of(ls) == std::vector<std::string>{"t0", "t1", "t2"});
    for (const auto& l : ls) {
        CHECK(l.worker_id == "w1");
        CHECK(l.attempt == 1);
        CHECK(l.deadline == t0 + 1000ms);
    }
    CHECK(ls[0].token < ls[1].token);
    CHECK(ls[1].token < ls[2].token);
    CHECK(t.size_approx() == 2);
    CHECK(t.leased_count() == 3);
    CHECK(ids_of(t.lease("w1", 10, 1000ms, t0)) == std::vector<std::string>{"t3", "t4"});
    CHECK(t.lease("w1", 10, 1000ms, t0).empty());
    CHECK(t.lease("w1", 0, 1000ms, t0).empty());
}

TEMPLATE_TEST_CASE("transport: invalid requests and duplicates are rejected", "[conformance][transport]",
                   ORCHCORE_TRANSPORTS) {
    TestType b;
    auto& t = *b.main;
    REQUIRE(t.admit({"a", priority::normal}));
    auto dup = t.admit({"a", priority::high});
    CHECK(dup.rejected());
    CHECK(dup.reason == rejection_reason::invalid_request);
    CHECK(dup.detail == detail::transport_text_duplicate);
    CHECK(dup.retry_after == 0ms);
    CHECK(t.admit({"", priority::normal}).reason == rejection_reason::invalid_request);
    CHECK(t.admit({"b", 21}).reason == rejection_reason::invalid_request);
    CHECK(t.admit({"b", -1}).detail == detail::transport_text_bad_priority);
    // Leased is still a duplicate; acked is gone and may come again.
    auto l = t.lease("w", 1, 1000ms, t0);
    REQUIRE(l.size() == 1);
    CHECK(t.admit({"a"}).reason == rejection_reason::invalid_request);
    CHECK(t.ack("a", l[0].token));
    CHECK(t.admit({"a"}).accepted());
    auto s = t.stats();
    CHECK(s.accepted == 2);
    CHECK(s.rejected(rejection_reason::invalid_request) == 5);
}

TEMPLATE_TEST_CASE("transport: reject-new capacity and retry-after", "[conformance][transport]", ORCHCORE_TRANSPORTS) {
    TestType b({.policy = queue_policy::reject_new, .capacity = 2, .default_retry_after = 700ms});
    auto& t = *b.main;
    REQUIRE(t.admit({"a"}));
    REQUIRE(t.admit({"b"}));
    auto full = t.admit({"c"});
    CHECK(full.reason == rejection_reason::queue_full);
    CHECK(full.detail == detail::transport_text_full);
    CHECK(full.retry_after == 700ms);  // nothing measured yet
    // Two dequeues 100 ms apart: the smoothed interval is 100 ms.
    REQUIRE(t.lease("w", 1, 10s, t0).size() == 1);
    REQUIRE(t.lease("w", 1, 10s, t0 + 100ms).size() == 1);
    REQUIRE(t.admit({"c"}));
    REQUIRE(t.admit({"d"}));
    CHECK(t.admit({"e"}).retry_after == 100ms);
    // Leased tasks do not count against the capacity.
    CHECK(t.leased_count() == 2);
    CHECK(t.stats().rejected(rejection_reason::queue_full) == 2);
}

TEMPLATE_TEST_CASE("transport: capacity 0 admits nothing", "[conformance][transport]", ORCHCORE_TRANSPORTS) {
    for (auto p : {queue_policy::reject_new, queue_policy::drop_lru, queue_policy::priority}) {
        TestType b({.policy = p, .capacity = 0});
        auto r = b.main->admit({"a"});
        CHECK(r.reason == rejection_reason::queue_full);
        CHECK(b.main->size_approx() == 0);
    }
}

TEMPLATE_TEST_CASE("transport: priority policy orders and evicts like admission_core", "[conformance][transport]",
                   ORCHCORE_TRANSPORTS) {
    TestType b({.policy = queue_policy::priority, .capacity = 4});
    auto& t = *b.main;
    CHECK(t.admit({"n1", priority::normal}).position == 0);
    CHECK(t.admit({"l1", priority::low}).position == 1);
    CHECK(t.admit({"h1", priority::high}).position == 0);
    CHECK(t.admit({"l2", priority::low}).position == 3);
    // Full: a newcomer that outranks the lowest evicts the newest lowest.
    auto r = t.admit({"n2", priority::normal});
    REQUIRE(r.accepted());
    CHECK(r.position == 2);
    REQUIRE(r.evicted.has_value());
    CHECK(r.evicted->id == "l2");
    CHECK(r.evicted->priority == priority::low);
    // Not outranking: rejected, nothing evicted.
    auto low = t.admit({"l3", priority::low});
    CHECK(low.reason == rejection_reason::queue_full);
    CHECK(low.detail == detail::transport_text_not_outranked);
    CHECK(ids_of(t.lease("w", 10, 1s, t0)) == std::vector<std::string>{"h1", "n1", "n2", "l1"});
    CHECK(t.stats().evicted == 1);
}

TEMPLATE_TEST_CASE("transport: drop-lru evicts the oldest of the lowest priority", "[conformance][transport]",
                   ORCHCORE_TRANSPORTS) {
    TestType b({.policy = queue_policy::drop_lru, .capacity = 3});
    auto& t = *b.main;
    REQUIRE(t.admit({"h", priority::high}));
    REQUIRE(t.admit({"l1", priority::low}));
    REQUIRE(t.admit({"l2", priority::low}));
    auto r = t.admit({"x", priority::low});
    REQUIRE(r.accepted());
    REQUIRE(r.evicted.has_value());
    CHECK(r.evicted->id == "l1");
    CHECK(r.position == 2);
    CHECK(ids_of(t.lease("w", 10, 1s, t0)) == std::vector<std::string>{"h", "l2", "x"});
}

TEMPLATE_TEST_CASE("transport: fencing tokens, ack, nack and extend", "[conformance][transport]", ORCHCORE_TRANSPORTS) {
    TestType b;
    auto& t = *b.main;
    REQUIRE(t.admit({"a"}));
    REQUIRE(t.admit({"b"}));
    auto l1 = t.lease("w1", 1, 1000ms, t0).at(0);
    CHECK(l1.task_id == "a");
    CHECK_FALSE(t.ack("a", l1.token + 1));      // wrong token
    CHECK_FALSE(t.ack("b", l1.token));          // not leased
    CHECK_FALSE(t.ack("missing", l1.token));
    CHECK(t.extend("a", l1.token, 5000ms, t0 + 500ms));
    CHECK_FALSE(t.extend("a", l1.token + 7, 5000ms, t0 + 500ms));
    // nack puts it back in front of later tasks (it keeps its sequence).
    CHECK(t.nack("a", l1.token, 0ms, t0 + 600ms));
    CHECK_FALSE(t.nack("a", l1.token, 0ms, t0 + 600ms));  // idempotent
    CHECK_FALSE(t.ack("a", l1.token));                     // that lease is over
    auto l2 = t.lease("w2", 1, 1000ms, t0 + 700ms).at(0);
    CHECK(l2.task_id == "a");
    CHECK(l2.attempt == 2);
    CHECK(l2.token > l1.token);
    CHECK(l2.worker_id == "w2");
    CHECK(t.ack("a", l2.token));
    CHECK_FALSE(t.ack("a", l2.token));  // idempotent
    CHECK(t.stats().stale_refusals >= 7);
    CHECK(t.stats().acked == 1);
}

TEMPLATE_TEST_CASE("transport: extend refuses an expired lease", "[conformance][transport]", ORCHCORE_TRANSPORTS) {
    TestType b;
    auto& t = *b.main;
    REQUIRE(t.admit({"a"}));
    auto l = t.lease("w", 1, 100ms, t0).at(0);
    CHECK_FALSE(t.extend("a", l.token, 1000ms, t0 + 101ms));
    // Still held (nobody recovered it): its holder may ack.
    CHECK(t.ack("a", l.token));
}

TEMPLATE_TEST_CASE("transport: delayed retries become visible when due", "[conformance][transport]",
                   ORCHCORE_TRANSPORTS) {
    TestType b;
    auto& t = *b.main;
    REQUIRE(t.admit({"a"}));
    REQUIRE(t.admit({"b"}));
    auto l = t.lease("w", 1, 1000ms, t0).at(0);
    REQUIRE(t.nack("a", l.token, 500ms, t0 + 10ms));
    CHECK(t.size_approx() == 2);  // waiting b + delayed a
    CHECK(t.stats().delayed == 1);
    CHECK(ids_of(t.lease("w", 10, 1000ms, t0 + 400ms)) == std::vector<std::string>{"b"});
    CHECK(t.lease("w", 10, 1000ms, t0 + 509ms).empty());
    auto again = t.lease("w", 10, 1000ms, t0 + 510ms);
    REQUIRE(again.size() == 1);
    CHECK(again[0].task_id == "a");
    CHECK(again[0].attempt == 2);
}

TEMPLATE_TEST_CASE("transport: cancel removes waiting and delayed tasks only", "[conformance][transport]",
                   ORCHCORE_TRANSPORTS) {
    TestType b({.policy = queue_policy::drop_lru});
    auto& t = *b.main;
    for (auto id : {"a", "b", "c"}) REQUIRE(t.admit({id}));
    CHECK(t.cancel("b"));
    CHECK_FALSE(t.cancel("b"));
    auto l = t.lease("w", 1, 1000ms, t0).at(0);
    CHECK_FALSE(t.cancel("a"));  // leased: the coordinator fences it instead
    REQUIRE(t.nack("a", l.token, 1000ms, t0));
    CHECK(t.cancel("a"));  // delayed
    CHECK(ids_of(t.lease("w", 10, 1000ms, t0 + 5000ms)) == std::vector<std::string>{"c"});
    CHECK(t.admit({"b"}).accepted());  // cancelled ids may come back
    CHECK(t.stats().cancelled == 2);
}

TEMPLATE_TEST_CASE("transport: recover_expired requeues orphans once and fences their holders",
                   "[conformance][transport]", ORCHCORE_TRANSPORTS) {
    TestType b;
    auto& t = *b.main;
    for (auto id : {"a", "b", "c"}) REQUIRE(t.admit({id}));
    auto ls = t.lease("w1", 2, 100ms, t0);
    REQUIRE(ls.size() == 2);
    CHECK(t.recover_expired(t0 + 100ms, 100).empty());  // deadline not passed yet
    auto orphans = t.recover_expired(t0 + 101ms, 100);
    REQUIRE(orphans.size() == 2);
    std::sort(orphans.begin(), orphans.end(), [](auto& x, auto& y) { return x.task_id < y.task_id; });
    CHECK(orphans[0].task_id == "a");
    CHECK(orphans[0].worker_id == "w1");
    CHECK(orphans[0].token == ls[0].token);
    CHECK(orphans[0].attempt == 1);
    CHECK(orphans[0].deadline == t0 + 100ms);
    CHECK(t.recover_expired(t0 + 200ms, 100).empty());  // once
    CHECK_FALSE(t.ack("a", ls[0].token));                // the old holder is fenced off
    CHECK_FALSE(t.extend("b", ls[1].token, 1s, t0 + 200ms));
    // Orphans keep their place ahead of later admissions.
    auto again = t.lease("w2", 10, 1000ms, t0 + 300ms);
    CHECK(ids_of(again) == std::vector<std::string>{"a", "b", "c"});
    CHECK(again[0].attempt == 2);
    CHECK(again[0].token > ls[1].token);
    CHECK(t.stats().recovered == 2);
}

TEMPLATE_TEST_CASE("transport: nacked and recovered tasks are never refused for capacity", "[conformance][transport]",
                   ORCHCORE_TRANSPORTS) {
    TestType b({.capacity = 1});
    auto& t = *b.main;
    REQUIRE(t.admit({"a"}));
    auto l = t.lease("w", 1, 100ms, t0).at(0);
    REQUIRE(t.admit({"b"}));
    CHECK(t.nack("a", l.token, 0ms, t0));
    CHECK(t.size_approx() == 2);  // above capacity through a requeue only
    CHECK(t.admit({"c"}).reason == rejection_reason::queue_full);
}

TEMPLATE_TEST_CASE("transport: bulk admission and bulk ack", "[conformance][transport]", ORCHCORE_TRANSPORTS) {
    TestType b({.capacity = 1000});
    auto& t = *b.main;
    std::vector<transport_request> rs;
    for (int i = 0; i < 1100; ++i) rs.push_back({"t" + std::to_string(i), priority::normal});
    rs[5].id = "t1";  // duplicate within the batch
    auto res = t.admit_many(rs);
    REQUIRE(res.size() == rs.size());
    CHECK(res[0].accepted());
    CHECK(res[5].reason == rejection_reason::invalid_request);
    CHECK(res[999].accepted());
    CHECK(res[1000].accepted());  // one slot was left by the duplicate
    CHECK(res[1000].position == 999);
    CHECK(res[1001].reason == rejection_reason::queue_full);
    CHECK(t.size_approx() == 1000);
    auto ls = t.lease("w", 1000, 10s, t0);
    REQUIRE(ls.size() == 1000);
    std::vector<lease_ref> refs;
    for (const auto& l : ls) refs.push_back({l.task_id, l.token});
    refs[3].token += 100000;  // stale
    auto acked = t.ack_many(refs);
    CHECK(std::count(acked.begin(), acked.end(), true) == 999);
    CHECK_FALSE(acked[3]);
    CHECK(t.leased_count() == 1);
}

TEMPLATE_TEST_CASE("transport: concurrent workers lease each task exactly once", "[conformance][transport]",
                   ORCHCORE_TRANSPORTS) {
    TestType b({.capacity = 10000});
    std::vector<transport_request> rs;
    for (int i = 0; i < 400; ++i) rs.push_back({"t" + std::to_string(i), i % 21});
    for (const auto& r : b.main->admit_many(rs)) REQUIRE(r.accepted());
    std::mutex mu;
    std::multiset<std::string> seen;
    std::vector<std::thread> threads;
    for (int w = 0; w < 4; ++w) {
        threads.emplace_back([&, w, tr = b.peer()] {
            for (;;) {
                auto ls = tr->lease("w" + std::to_string(w), 7, 10s, t0);
                if (ls.empty()) break;
                for (const auto& l : ls) {
                    {
                        std::lock_guard lk(mu);
                        seen.insert(l.task_id);
                    }
                    if (!tr->ack(l.task_id, l.token)) std::abort();
                }
            }
        });
    }
    for (auto& th : threads) th.join();
    CHECK(seen.size() == 400);
    CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == 400);
    CHECK(b.main->size_approx() == 0);
    CHECK(b.main->leased_count() == 0);
}

TEMPLATE_TEST_CASE("transport: racing recoverers requeue each orphan exactly once", "[conformance][transport]",
                   ORCHCORE_TRANSPORTS) {
    TestType b({.capacity = 10000});
    std::vector<transport_request> rs;
    for (int i = 0; i < 300; ++i) rs.push_back({"t" + std::to_string(i)});
    b.main->admit_many(rs);
    REQUIRE(b.main->lease("dead-worker", 300, 10ms, t0).size() == 300);
    std::mutex mu;
    std::vector<std::string> recovered;
    std::vector<std::thread> threads;
    for (int w = 0; w < 4; ++w) {
        threads.emplace_back([&, tr = b.peer()] {
            for (;;) {
                auto got = tr->recover_expired(t0 + 1s, 16);
                if (got.empty()) break;
                std::lock_guard lk(mu);
                for (auto& l : got) recovered.push_back(l.task_id);
            }
        });
    }
    for (auto& th : threads) th.join();
    CHECK(recovered.size() == 300);
    CHECK(std::set<std::string>(recovered.begin(), recovered.end()).size() == 300);
    CHECK(b.main->size_approx() == 300);
    CHECK(b.main->leased_count() == 0);
}

TEMPLATE_TEST_CASE("transport: a poison task goes to the dead-letter set after max_lease_expiries",
                   "[conformance][transport][poison]", ORCHCORE_TRANSPORTS) {
    TestType b({.max_lease_expiries = 3});
    auto& t = *b.main;
    REQUIRE(t.admit({"poison"}));
    REQUIRE(t.admit({"fine"}));
    auto now = t0;
    // Handler failures (nack) do not count as lease expiries.
    for (int i = 0; i < 4; ++i) {
        auto ls = t.lease("w", 1, 100ms, now);
        REQUIRE(ls.size() == 1);
        REQUIRE(ls[0].task_id == "poison");
        REQUIRE(t.nack("poison", ls[0].token, 0ms, now));
    }
    std::uint64_t last_token = 0;
    for (std::uint32_t crash = 1; crash <= 3; ++crash) {
        auto ls = t.lease("doomed-" + std::to_string(crash), 1, 100ms, now);
        REQUIRE(ls.size() == 1);
        REQUIRE(ls[0].task_id == "poison");
        CHECK(ls[0].attempt == 4 + crash);
        last_token = ls[0].token;
        now += 200ms;  // the worker dies holding it
        auto r = t.recover_expired_ex(now, 100);
        if (crash < 3) {
            REQUIRE(r.requeued.size() == 1);
            CHECK(r.dead_lettered.empty());
            CHECK(r.requeued[0].expiries == crash);
            CHECK_FALSE(r.requeued[0].dead_lettered);
        } else {
            CHECK(r.requeued.empty());
            REQUIRE(r.dead_lettered.size() == 1);
            const auto& d = r.dead_lettered[0];
            CHECK(d.task_id == "poison");
            CHECK(d.dead_lettered);
            CHECK(d.expiries == 3);
            CHECK(d.worker_id == "doomed-3");
            CHECK(d.attempt == 7);
            CHECK(d.token == last_token);
        }
    }
    // Gone from the queue; the last holder is fenced; the other task is intact.
    CHECK(t.leased_count() == 0);
    CHECK(t.size_approx() == 1);
    CHECK_FALSE(t.ack("poison", last_token));
    CHECK(t.recover_expired(now + 1s, 100).empty());
    auto rest = t.lease("w", 10, 100ms, now);
    CHECK(ids_of(rest) == std::vector<std::string>{"fine"});
    auto dl = t.dead_letters();
    REQUIRE(dl.size() == 1);
    CHECK(dl[0].id == "poison");
    CHECK(dl[0].reason == "lease expired 3 times");
    auto s = t.stats();
    CHECK(s.dead_lettered == 1);
    CHECK(s.dead == 1);
    CHECK(s.recovered == 2);  // counted apart
    CHECK(s.nacked == 4);
    // The id left the transport: it may be admitted again; the dead letter can be dropped.
    CHECK(t.admit({"poison"}).accepted());
    CHECK(t.drop_dead_letter("poison"));
    CHECK_FALSE(t.drop_dead_letter("poison"));
    CHECK(t.dead_letters().empty());
    CHECK(t.stats().dead == 0);
}

TEMPLATE_TEST_CASE("transport: max_lease_expiries 0 requeues forever; 1 dead-letters at the first expiry",
                   "[conformance][transport][poison]", ORCHCORE_TRANSPORTS) {
    {
        TestType b;
        auto& t = *b.main;
        REQUIRE(t.admit({"a"}));
        auto now = t0;
        for (std::uint32_t i = 1; i <= 20; ++i) {
            REQUIRE(t.lease("w", 1, 10ms, now).size() == 1);
            now += 20ms;
            auto r = t.recover_expired(now, 10);
            REQUIRE(r.size() == 1);
            CHECK(r[0].expiries == i);
            CHECK_FALSE(r[0].dead_lettered);
        }
        CHECK(t.stats().dead_lettered == 0);
        CHECK(t.dead_letters().empty());
    }
    {
        TestType b({.capacity = 100, .max_lease_expiries = 1});
        auto& t = *b.main;
        std::vector<transport_request> rs;
        for (int i = 0; i < 10; ++i) rs.push_back({"p" + std::to_string(i)});
        t.admit_many(rs);
        REQUIRE(t.lease("w", 10, 10ms, t0).size() == 10);
        auto r = t.recover_expired_ex(t0 + 1s, 4);  // `max` bounds dead-lettered ones too
        CHECK(r.dead_lettered.size() == 4);
        r = t.recover_expired_ex(t0 + 1s, 100);
        CHECK(r.dead_lettered.size() == 6);
        CHECK(r.requeued.empty());
        CHECK(t.dead_letters().size() == 10);
        CHECK(t.dead_letters(3).size() == 3);
        CHECK(t.dead_letters()[0].reason == "lease expired 1 time");
        CHECK(t.stats().dead_lettered == 10);
        CHECK(t.size_approx() == 0);
        CHECK(t.leased_count() == 0);
    }
}

TEST_CASE("transport: fail-fast is refused at construction", "[transport]") {
    CHECK_THROWS_AS(memory_transport({.policy = queue_policy::fail_fast}), orchcore::invalid_argument);
    CHECK_THROWS_AS(memory_transport({.capacity = max_queue_capacity + 1}), orchcore::invalid_argument);
}

TEMPLATE_TEST_CASE("transport: ack_many with the same lease twice acks it once; huge max is fine",
                   "[conformance][transport]", ORCHCORE_TRANSPORTS) {
    TestType b;
    auto& t = *b.main;
    for (auto id : {"a", "b"}) REQUIRE(t.admit({id}));
    auto ls = t.lease("w", static_cast<std::size_t>(-1), 1000ms, t0);
    REQUIRE(ls.size() == 2);
    std::vector<lease_ref> refs{{"a", ls[0].token}, {"a", ls[0].token}, {"b", ls[1].token}};
    CHECK(t.ack_many(refs) == std::vector<bool>{true, false, true});
    CHECK(t.stats().acked == 2);
    CHECK(t.recover_expired(t0 + 1h, static_cast<std::size_t>(-1)).empty());
}

TEMPLATE_TEST_CASE("transport: steering mailbox keeps order, is fenced by the lease and goes with the task",
                   "[conformance][transport][steering]", ORCHCORE_TRANSPORTS) {
    TestType b;
    auto& t = *b.main;
    auto other = b.peer();
    using msgs = std::vector<std::string>;
    CHECK_FALSE(t.post_messages("a", msgs{"nobody"}));  // unknown task: nothing stored
    REQUIRE(t.admit({"a"}));
    // Sent while waiting: kept for the first attempt. Binary-safe.
    const std::string odd{"x\0y\n\"}{", 7};
    CHECK(t.post_messages("a", msgs{"m1", odd}));
    auto l1 = t.lease("w1", 1, 1000ms, t0).at(0);
    const auto before = t.stats().stale_refusals;
    CHECK_FALSE(t.take_messages("a", l1.token + 1).has_value());  // not the lease: refused, counted
    CHECK(t.stats().stale_refusals == before + 1);
    CHECK(t.take_messages("a", l1.token) == msgs{"m1", odd});
    CHECK(t.take_messages("a", l1.token) == msgs{});  // exactly once
    CHECK(other->post_messages("a", msgs{"m2"}));     // from another process
    CHECK(other->post_messages("a", msgs{"m3", "m4"}));
    // Not taken by this attempt: waits for the next one, in order.
    REQUIRE(t.nack("a", l1.token, 0ms, t0 + 10ms));
    CHECK(t.post_messages("a", msgs{"m5"}));
    auto l2 = t.lease("w2", 1, 1000ms, t0 + 20ms).at(0);
    CHECK_FALSE(t.take_messages("a", l1.token).has_value());  // the old attempt is fenced
    CHECK(other->take_messages("a", l2.token) == msgs{"m2", "m3", "m4", "m5"});
    CHECK(t.post_messages("a", msgs{"late"}));
    REQUIRE(t.ack("a", l2.token));
    CHECK_FALSE(t.post_messages("a", msgs{"after the end"}));
    // The same id admitted again starts with an empty mailbox.
    REQUIRE(t.admit({"a"}));
    auto l3 = t.lease("w1", 1, 1000ms, t0 + 30ms).at(0);
    CHECK(t.take_messages("a", l3.token) == msgs{});
    REQUIRE(t.ack("a", l3.token));
    // Cancel drops the mailbox too.
    REQUIRE(t.admit({"b"}));
    CHECK(t.post_messages("b", msgs{"for b"}));
    REQUIRE(t.cancel("b"));
    CHECK_FALSE(t.post_messages("b", msgs{}));
    REQUIRE(t.admit({"b"}));
    auto lb = t.lease("w1", 1, 1000ms, t0 + 40ms).at(0);
    CHECK(t.take_messages("b", lb.token) == msgs{});
}
