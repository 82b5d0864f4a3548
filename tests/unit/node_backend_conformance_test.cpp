// One conformance suite for node_backend (<orchcore/node_backend.hpp>):
// composed_node_backend over the memory transport and store, and (built
// with ORCHCORE_WITH_REDIS) redis_node_backend against a private
// redis-server.
#include <orchcore/node_backend.hpp>

#ifdef ORCHCORE_TEST_WITH_REDIS
#include <orchcore/redis/redis.hpp>
#include <orchcore/redis/redis_node_backend.hpp>

#include "redis/redis_server_fixture.hpp"
#endif

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

using namespace orchcore;
using namespace std::chrono_literals;

namespace {

struct memory_nodes {
    std::shared_ptr<node_backend> nb;
    memory_nodes()
        : nb(std::make_shared<composed_node_backend>(std::make_shared<memory_transport>(),
                                                     std::make_shared<memory_task_store>())) {}
};

#ifdef ORCHCORE_TEST_WITH_REDIS
struct redis_nodes {
    std::shared_ptr<node_backend> nb;
    redis_nodes() {
        auto client = orchcore::test::shared_redis_server().client("nb");
        // No Redis-side expiry: the tests' clock (t0) is years in the past.
        const redis_task_store_options keep{std::chrono::milliseconds(0), std::chrono::milliseconds(0),
                                            std::chrono::milliseconds(0)};
        nb = std::make_shared<redis_node_backend>(std::make_shared<redis_transport>(client, "q"),
                                                  std::make_shared<redis_task_store>(client, "q", keep));
    }
};
#define ORCHCORE_NODE_BACKENDS memory_nodes, redis_nodes
#else
#define ORCHCORE_NODE_BACKENDS memory_nodes
#endif

const auto t0 = std::chrono::system_clock::time_point{std::chrono::milliseconds{1'700'000'000'000}};

start_spec spec(std::string worker = "w1") {
    start_spec s;
    s.worker = std::move(worker);
    s.hold_keys = {"orchcore.cancel"};
    s.lease_duration = 10s;
    return s;
}

task_record make_record(const std::string& id) {
    task_record r;
    r.id = id;
    r.type = "t";
    r.payload = "payload of " + id;
    r.metadata = {{"started_at", "a metadata value"}, {"k", "v"}};
    r.status = task_status::queued;
    r.created_at = t0;
    return r;
}

void submit(node_backend& nb, const task_record& r) {
    REQUIRE(nb.store()->create(r));
    REQUIRE(nb.transport()->admit({r.id, priority::normal}).is_accepted);
}

void submit_ids(node_backend& nb, const std::vector<std::string>& ids) {
    for (const auto& id : ids) submit(nb, make_record(id));
}

node_outcome outcome(const node_task& t, task_status to, std::chrono::milliseconds delay = 0ms) {
    node_outcome o;
    o.rec = *t.record;
    o.expected = t.record->status;
    o.rec.status = to;
    if (is_terminal(to)) o.rec.finished_at = t0 + 1s;
    if (to == task_status::completed) o.rec.result = "result of " + o.rec.id;
    if (to == task_status::failed || to == task_status::timed_out) o.rec.error = "boom";
    o.token = t.lease.token;
    o.delay = delay;
    return o;
}

std::vector<std::string> ids_of(const std::vector<node_task>& ts) {
    std::vector<std::string> out;
    for (const auto& t : ts) out.push_back(t.lease.task_id);
    return out;
}

}  // namespace

TEMPLATE_TEST_CASE("node_backend: lease_and_start leases in order and marks the records started",
                   "[conformance][node_backend]", ORCHCORE_NODE_BACKENDS) {
    TestType b;
    auto& nb = *b.nb;
    submit_ids(nb, {"a", "b", "c"});
    const auto got = nb.lease_and_start(spec(), 2, t0);
    REQUIRE(ids_of(got) == std::vector<std::string>{"a", "b"});
    for (const auto& t : got) {
        REQUIRE(t.started);
        REQUIRE(t.record);
        CHECK(t.lease.attempt == 1);
        CHECK(t.lease.worker_id == "w1");
        CHECK(t.lease.deadline == t0 + 10s);
        const auto stored = nb.store()->get(t.lease.task_id);
        REQUIRE(stored);
        for (const auto* r : {&*t.record, &*stored}) {
            CHECK(r->status == task_status::running);
            CHECK(r->attempts == 1);
            CHECK(r->worker_id == "w1");
            CHECK(r->started_at == t0);
            CHECK(r->worker_losses == 0);
            CHECK(r->payload == "payload of " + t.lease.task_id);
            CHECK(r->metadata.at("started_at") == "a metadata value");
        }
    }
    CHECK(got[0].lease.token < got[1].lease.token);
    CHECK(nb.transport()->leased_count() == 2);
    CHECK(nb.transport()->size_approx() == 1);
}

TEMPLATE_TEST_CASE("node_backend: finish_and_fetch records, acks and returns the next task",
                   "[conformance][node_backend]", ORCHCORE_NODE_BACKENDS) {
    TestType b;
    auto& nb = *b.nb;
    submit_ids(nb, {"a", "b", "c"});
    const auto first = nb.lease_and_start(spec(), 2, t0);
    REQUIRE(first.size() == 2);
    const std::vector<node_outcome> outs{outcome(first[0], task_status::completed)};
    const auto batch = nb.finish_and_fetch(outs, spec(), 5, t0 + 1s);
    REQUIRE(batch.settled == std::vector<node_batch::fate>{node_batch::fate::recorded});
    REQUIRE(ids_of(batch.next) == std::vector<std::string>{"c"});
    CHECK(batch.next[0].started);
    CHECK(batch.next[0].record->status == task_status::running);
    const auto a = nb.store()->get("a");
    REQUIRE(a);
    CHECK(a->status == task_status::completed);
    CHECK(a->result == "result of a");
    CHECK(a->payload == "payload of a");  // written once, kept
    CHECK(a->finished_at == t0 + 1s);
    CHECK(nb.store()->list({.status = task_status::completed}).size() == 1);
    CHECK_FALSE(nb.transport()->ack("a", first[0].lease.token));  // already acked
    CHECK(nb.transport()->leased_count() == 2);                   // b and c
    // The store's expiry sees it as finished.
    CHECK(nb.store()->expire(t0 + 2s, 0ms, 0ms, 0ms) == std::vector<std::string>{"a"});
}

TEMPLATE_TEST_CASE("node_backend: stale tokens and expired leases are refused per item",
                   "[conformance][node_backend]", ORCHCORE_NODE_BACKENDS) {
    TestType b;
    auto& nb = *b.nb;
    submit_ids(nb, {"a", "b", "c"});
    const auto got = nb.lease_and_start(spec(), 3, t0);
    REQUIRE(got.size() == 3);
    auto bad = outcome(got[0], task_status::completed);
    bad.token += 1000;
    const std::vector<node_outcome> outs{bad, outcome(got[1], task_status::completed)};
    const auto batch = nb.finish_and_fetch(outs, spec(), 0, t0 + 1s);
    CHECK(batch.settled == std::vector<node_batch::fate>{node_batch::fate::stale, node_batch::fate::recorded});
    CHECK(batch.next.empty());
    CHECK(nb.store()->get("a")->status == task_status::running);  // untouched
    CHECK(nb.store()->get("b")->status == task_status::completed);
    CHECK(nb.transport()->ack("a", got[0].lease.token));  // still held by its real holder
    CHECK(nb.transport()->stats().stale_refusals >= 1);
    // Past the lease deadline (10 s) the holder must stop: refused too.
    const std::vector<node_outcome> late{outcome(got[2], task_status::completed)};
    CHECK(nb.finish_and_fetch(late, spec(), 0, t0 + 11s).settled ==
          std::vector<node_batch::fate>{node_batch::fate::stale});
    CHECK(nb.store()->get("c")->status == task_status::running);
}

TEMPLATE_TEST_CASE("node_backend: a batch of mixed outcomes; a retry runs again as the next attempt",
                   "[conformance][node_backend]", ORCHCORE_NODE_BACKENDS) {
    TestType b;
    auto& nb = *b.nb;
    submit_ids(nb, {"ok", "bad", "cx", "late", "again"});
    const auto got = nb.lease_and_start(spec(), 5, t0);
    REQUIRE(got.size() == 5);
    auto retry = outcome(got[4], task_status::queued);
    retry.rec.retries = 1;
    const std::vector<node_outcome> outs{outcome(got[0], task_status::completed), outcome(got[1], task_status::failed),
                                         outcome(got[2], task_status::cancelled),
                                         outcome(got[3], task_status::timed_out), retry};
    const auto batch = nb.finish_and_fetch(outs, spec("w2"), 5, t0 + 1s);
    CHECK(batch.settled == std::vector<node_batch::fate>(5, node_batch::fate::recorded));
    REQUIRE(ids_of(batch.next) == std::vector<std::string>{"again"});
    const auto& next = batch.next[0];
    CHECK(next.started);
    CHECK(next.lease.attempt == 2);
    CHECK(next.record->attempts == 2);
    CHECK(next.record->retries == 1);
    CHECK(next.record->worker_id == "w2");
    CHECK(next.record->started_at == t0);  // the first start stays
    CHECK(nb.store()->get("ok")->status == task_status::completed);
    CHECK(nb.store()->get("bad")->status == task_status::failed);
    CHECK(nb.store()->get("bad")->error == "boom");
    CHECK(nb.store()->get("cx")->status == task_status::cancelled);
    CHECK(nb.store()->get("late")->status == task_status::timed_out);
    CHECK(nb.transport()->leased_count() == 1);
}

TEMPLATE_TEST_CASE("node_backend: a retry with a delay is leased once the delay has passed",
                   "[conformance][node_backend]", ORCHCORE_NODE_BACKENDS) {
    TestType b;
    auto& nb = *b.nb;
    submit_ids(nb, {"a"});
    const auto got = nb.lease_and_start(spec(), 1, t0);
    REQUIRE(got.size() == 1);
    const std::vector<node_outcome> outs{outcome(got[0], task_status::queued, 5s)};
    const auto batch = nb.finish_and_fetch(outs, spec(), 1, t0 + 1s);
    CHECK(batch.settled == std::vector<node_batch::fate>{node_batch::fate::recorded});
    CHECK(batch.next.empty());
    CHECK(nb.store()->get("a")->status == task_status::queued);
    CHECK(nb.lease_and_start(spec(), 1, t0 + 5s).empty());
    const auto later = nb.lease_and_start(spec(), 1, t0 + 6s);
    REQUIRE(ids_of(later) == std::vector<std::string>{"a"});
    CHECK(later[0].started);
    CHECK(later[0].record->attempts == 2);
}

TEMPLATE_TEST_CASE("node_backend: cancelled tasks are not leased; an empty queue gives nothing",
                   "[conformance][node_backend]", ORCHCORE_NODE_BACKENDS) {
    TestType b;
    auto& nb = *b.nb;
    CHECK(nb.lease_and_start(spec(), 4, t0).empty());
    CHECK(nb.finish_and_fetch({}, spec(), 4, t0).next.empty());
    submit_ids(nb, {"a", "b"});
    REQUIRE(nb.transport()->cancel("a"));
    const auto got = nb.lease_and_start(spec(), 4, t0);
    CHECK(ids_of(got) == std::vector<std::string>{"b"});
    CHECK(nb.store()->get("a")->status == task_status::queued);
}

TEMPLATE_TEST_CASE("node_backend: tasks this worker must not start are leased with their record untouched",
                   "[conformance][node_backend]", ORCHCORE_NODE_BACKENDS) {
    TestType b;
    auto& nb = *b.nb;
    auto held = make_record("held");
    held.metadata["orchcore.cancel"] = "1";
    auto other = make_record("other");
    other.type = "other";
    auto tagged = make_record("tagged");
    tagged.tags = {"gpu", "x\"y"};
    auto fits = make_record("fits");
    fits.tags = {"x\"y"};
    auto expired = make_record("expired");
    expired.timeout = 1s;
    auto done = make_record("done");
    for (const auto& r : {held, other, tagged, fits, expired, done}) submit(nb, r);
    auto fin = done;
    fin.status = task_status::running;
    REQUIRE(nb.store()->update(fin, task_status::queued));
    fin.status = task_status::completed;
    REQUIRE(nb.store()->update(fin, task_status::running));
    auto s = spec();
    s.types = {"t"};
    s.tags = {"x\"y", "cpu"};
    const auto got = nb.lease_and_start(s, 10, t0 + 2s);
    REQUIRE(ids_of(got) == std::vector<std::string>{"held", "other", "tagged", "fits", "expired", "done"});
    for (const auto& t : got) {
        INFO(t.lease.task_id);
        REQUIRE(t.record);
        CHECK(t.started == (t.lease.task_id == "fits"));
        const auto want = t.lease.task_id == "fits"   ? task_status::running
                          : t.lease.task_id == "done" ? task_status::completed
                                                      : task_status::queued;
        CHECK(t.record->status == want);
        CHECK(nb.store()->get(t.lease.task_id)->status == want);
    }
}

TEMPLATE_TEST_CASE("node_backend: a recovered task is started again and counts the lost worker",
                   "[conformance][node_backend]", ORCHCORE_NODE_BACKENDS) {
    TestType b;
    auto& nb = *b.nb;
    submit_ids(nb, {"a"});
    const auto first = nb.lease_and_start(spec("w1"), 1, t0);
    REQUIRE(first.size() == 1);
    REQUIRE(nb.transport()->recover_expired(t0 + 11s, 10).size() == 1);
    const auto again = nb.lease_and_start(spec("w2"), 1, t0 + 12s);
    REQUIRE(again.size() == 1);
    CHECK(again[0].started);
    CHECK(again[0].record->attempts == 2);
    CHECK(again[0].record->worker_losses == 1);
    CHECK(again[0].record->worker_id == "w2");
    // The first holder's outcome is refused.
    const std::vector<node_outcome> outs{outcome(first[0], task_status::completed)};
    CHECK(nb.finish_and_fetch(outs, spec("w1"), 0, t0 + 12s).settled ==
          std::vector<node_batch::fate>{node_batch::fate::stale});
}

TEMPLATE_TEST_CASE("node_backend: a record changed by someone else is a conflict and keeps its lease",
                   "[conformance][node_backend]", ORCHCORE_NODE_BACKENDS) {
    TestType b;
    auto& nb = *b.nb;
    submit_ids(nb, {"a"});
    const auto got = nb.lease_and_start(spec(), 1, t0);
    REQUIRE(got.size() == 1);
    auto cancelled = *got[0].record;
    cancelled.status = task_status::cancelled;
    cancelled.finished_at = t0;
    REQUIRE(nb.store()->update(cancelled, task_status::running));
    const std::vector<node_outcome> outs{outcome(got[0], task_status::completed)};
    CHECK(nb.finish_and_fetch(outs, spec(), 0, t0 + 1s).settled ==
          std::vector<node_batch::fate>{node_batch::fate::conflict});
    CHECK(nb.store()->get("a")->status == task_status::cancelled);
    CHECK(nb.transport()->ack("a", got[0].lease.token));
}

TEMPLATE_TEST_CASE("node_backend: bad arguments are refused by name", "[conformance][node_backend]",
                   ORCHCORE_NODE_BACKENDS) {
    TestType b;
    auto s = spec("");
    CHECK_THROWS_AS(b.nb->lease_and_start(s, 1, t0), invalid_argument);
    s = spec();
    s.lease_duration = 0ms;
    CHECK_THROWS_AS(b.nb->lease_and_start(s, 1, t0), invalid_argument);
}
