// The node engine on redis_node_backend (what redis_transport offers a
// node by default): the distributed scenarios and the fast-path ones
// (tests/unit/node_fastpath_scenarios.hpp) over Redis.
#include <orchcore/redis/redis.hpp>

#include "redis/node_backend_support.hpp"
#include "redis/redis_server_fixture.hpp"
#include "unit/node_fastpath_scenarios.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

using namespace orchcore;
using orchcore::test::shared_redis_server;

namespace {

// The node_backend redis_transport offers (what a node takes when none is
// given: tests/unit/node_fastpath_test.cpp).
test::dist_backend redis_fast() {
    auto client = shared_redis_server().client("fast");
    auto tp = std::make_shared<redis_transport>(client, "q");
    auto store = std::make_shared<redis_task_store>(client, "q");
    return {tp, store, std::make_shared<redis_worker_registry>(client, "q"), tp->make_node_backend(store)};
}

}  // namespace

TEST_CASE("node fast path (redis): cross-node completion, async waits, duplicates", "[redis][node_fastpath]") {
    test::scenario_cross_node_completion(redis_fast);
    test::scenario_async_wait_across_nodes(redis_fast);
    test::scenario_duplicate_id_across_nodes(redis_fast);
}

TEST_CASE("node fast path (redis): lease takeover and fencing", "[redis][node_fastpath][fencing]") {
    test::scenario_lease_takeover(redis_fast);
}

TEST_CASE("node fast path (redis): cancel, steering, stop hand-back", "[redis][node_fastpath]") {
    test::scenario_cross_node_cancel(redis_fast);
    test::scenario_cross_node_steering(redis_fast);
    test::scenario_stop_hands_back(redis_fast);
}

TEST_CASE("node fast path (redis): bulk submission and many tasks through one node", "[redis][node_fastpath]") {
    test::scenario_bulk_submit(redis_fast, 1024);
    test::scenario_fastpath_throughput(redis_fast);
}

TEST_CASE("node fast path (redis): retries, turns, timeouts and tags", "[redis][node_fastpath]") {
    test::scenario_fastpath_lifecycle(redis_fast);
}

namespace {

// Everything the store keeps for finished task `id` of queue `q`: the
// record, its index entries, the class's registry and counts, whether it
// has a Redis expiry.
std::vector<std::string> store_keys_of(redis_client& c, const std::string& base, const std::string& id,
                                       const std::string& bucket) {
    std::vector<std::string> out;
    auto flat = c.command({"HGETALL", base + ":task:" + id});
    std::vector<std::pair<std::string, std::string>> rec;
    for (std::size_t i = 0; i + 1 < flat.elements.size(); i += 2)
        rec.emplace_back(flat.elements[i].str, flat.elements[i + 1].str);
    std::sort(rec.begin(), rec.end());
    for (const auto& [f, v] : rec) out.push_back(f + "=" + v);
    out.push_back("live " + std::to_string(c.command({"SISMEMBER", base + ":tasks", id}).integer));
    for (const auto& e : c.command({"LRANGE", base + ":finished:completed:" + bucket, "0", "-1"}).elements)
        out.push_back("bucket " + e.str);
    for (const auto& e : c.command({"ZRANGE", base + ":finished:completed", "0", "-1"}).elements)
        out.push_back("registry " + e.str);
    auto counts = c.command({"HGETALL", base + ":finished:completed:count"});
    for (const auto& e : counts.elements) out.push_back("count " + e.str);
    out.push_back("expires " + std::to_string(c.command({"PTTL", base + ":task:" + id}).integer > 0));
    return out;
}

}  // namespace

TEST_CASE("redis_node_backend: a finish writes and files the record as the store's update does",
          "[redis][node_backend]") {
    auto client = shared_redis_server().client("nbfile");
    const auto now = std::chrono::system_clock::now();
    const auto finished = now + std::chrono::seconds(1);
    std::vector<std::vector<std::string>> views;
    for (const bool fast : {false, true}) {
        const std::string queue = fast ? "fast" : "plain";
        auto tp = std::make_shared<redis_transport>(client, queue);
        auto store = std::make_shared<redis_task_store>(client, queue);
        redis_node_backend nb(tp, store);
        task_record r;
        r.id = "a";
        r.type = "t";
        r.payload = "p";
        r.tags = {"gpu"};
        r.status = task_status::queued;
        r.created_at = now;
        REQUIRE(store->create(r));
        REQUIRE(tp->admit({"a"}).is_accepted);
        start_spec s;
        s.worker = "w";
        s.tags = {"gpu"};
        const auto got = nb.lease_and_start(s, 1, now);
        REQUIRE(got.size() == 1);
        REQUIRE(got[0].started);
        auto done = *got[0].record;
        CHECK(done.status == task_status::running);
        CHECK(done.attempts == 1);
        CHECK(done.worker_id == "w");
        CHECK(done.started_at == now);
        CHECK(store->get("a")->status == task_status::running);
        done.status = task_status::completed;
        done.result = "r";
        done.finished_at = finished;
        if (fast) {
            const std::vector<node_outcome> outs{{done, task_status::running, got[0].lease.token, {}}};
            CHECK(nb.finish_and_fetch(outs, s, 0, finished).settled ==
                  std::vector<node_batch::fate>{node_batch::fate::recorded});
        } else {
            REQUIRE(store->update(done, task_status::running));
            tp->ack("a", got[0].lease.token);
        }
        const auto back = store->get("a");
        REQUIRE(back);
        CHECK(back->status == task_status::completed);
        CHECK(back->result == "r");
        CHECK(back->payload == "p");
        CHECK(back->tags == done.tags);
        CHECK(back->finished_at == finished);
        CHECK(back->started_at == now);
        CHECK(store->size() == 1);
        CHECK(tp->leased_count() == 0);
        const auto bucket =
            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(finished.time_since_epoch()).count());
        views.push_back(store_keys_of(*client, store->key_base(), "a", bucket));
    }
    CHECK(views[0] == views[1]);
    CHECK(std::find(views[1].begin(), views[1].end(), "live 0") != views[1].end());
    CHECK(std::find(views[1].begin(), views[1].end(), "bucket a") != views[1].end());
    CHECK(std::find(views[1].begin(), views[1].end(), "expires 1") != views[1].end());
}

namespace {

// What the store and the queue keep for the tasks `ids` of queue `base`:
// records, live set, Redis expiries, the buckets, registries and counts of
// completed and failed, the leases and the waiting set.
std::vector<std::string> queue_view(redis_client& c, const std::string& base, const std::vector<std::string>& ids,
                                    const std::string& bucket) {
    std::vector<std::string> out;
    auto sorted = [](redis_reply r) {
        std::vector<std::string> v;
        for (const auto& e : r.elements)
            v.push_back(e.type == redis_reply::kind::integer ? std::to_string(e.integer) : e.str);
        std::sort(v.begin(), v.end());
        return v;
    };
    for (const auto& id : ids) {
        for (const auto& f : sorted(c.command({"HGETALL", base + ":task:" + id}))) out.push_back(id + " " + f);
        out.push_back(id + " live " + std::to_string(c.command({"SISMEMBER", base + ":tasks", id}).integer));
        out.push_back(id + " expires " + std::to_string(c.command({"PTTL", base + ":task:" + id}).integer > 0));
    }
    for (const std::string cls : {"completed", "failed"}) {
        const auto k = base + ":finished:" + cls;
        for (const auto& e : sorted(c.command({"LRANGE", k + ":" + bucket, "0", "-1"})))
            out.push_back(cls + " bucket " + e);
        out.push_back(cls + " bucket expires " + std::to_string(c.command({"PTTL", k + ":" + bucket}).integer > 0));
        for (const auto& e : sorted(c.command({"ZRANGE", k, "0", "-1"}))) out.push_back(cls + " registry " + e);
        for (const auto& e : sorted(c.command({"HGETALL", k + ":count"}))) out.push_back(cls + " count " + e);
    }
    for (const auto& e : sorted(c.command({"ZRANGE", base + ":leases", "0", "-1"}))) out.push_back("leased " + e);
    for (const auto& e : sorted(c.command({"ZRANGE", base + ":waiting", "0", "-1"}))) out.push_back("waiting " + e);
    return out;
}

}  // namespace

TEST_CASE("redis_node_backend: finishes in one call are recorded, filed and settled as in calls of their own",
          "[redis][node_backend]") {
    auto client = shared_redis_server().client("nbbatch");
    const auto now = std::chrono::system_clock::now();
    const auto finished = now + std::chrono::seconds(1);
    const auto bucket =
        std::to_string(std::chrono::duration_cast<std::chrono::seconds>(finished.time_since_epoch()).count());
    const std::vector<std::string> ids{"a", "b", "c", "d", "e"};
    std::vector<std::vector<std::string>> views;
    for (const bool one_call : {false, true}) {
        auto tp = std::make_shared<redis_transport>(client, one_call ? "together" : "apart");
        auto store = std::make_shared<redis_task_store>(client, one_call ? "together" : "apart");
        redis_node_backend nb(tp, store);
        for (const auto& id : ids) orchcore::test::create_and_admit(*store, *tp, id, now);
        start_spec s;
        s.worker = "w";
        auto got = nb.lease_and_start(s, ids.size(), now);
        REQUIRE(got.size() == ids.size());
        std::sort(got.begin(), got.end(),
                  [](const auto& x, const auto& y) { return x.lease.task_id < y.lease.task_id; });
        // a, e completed; b failed; c run again; d completed under a token not its own.
        std::vector<node_outcome> outs;
        for (auto& t : got) {
            REQUIRE(t.started);
            auto rec = *t.record;
            const auto& id = t.lease.task_id;
            rec.status = id == "b" ? task_status::failed : id == "c" ? task_status::queued : task_status::completed;
            if (id != "c") rec.finished_at = finished;
            if (id == "b") rec.error = "e";
            outs.push_back({rec, task_status::running, t.lease.token + (id == "d" ? 100 : 0), {}});
        }
        std::vector<node_batch::fate> settled;
        if (one_call) {
            settled = nb.finish_and_fetch(outs, s, 0, finished).settled;
        } else {
            for (const auto& o : outs)
                settled.push_back(nb.finish_and_fetch(std::span(&o, 1), s, 0, finished).settled.at(0));
        }
        using f = node_batch::fate;
        CHECK(settled == std::vector<f>{f::recorded, f::recorded, f::recorded, f::stale, f::recorded});
        CHECK(store->get("a")->status == task_status::completed);
        CHECK(store->get("b")->status == task_status::failed);
        CHECK(store->get("c")->status == task_status::queued);
        CHECK(store->get("d")->status == task_status::running);
        CHECK(tp->leased_count() == 1);
        CHECK(tp->size_approx() == 1);
        views.push_back(queue_view(*client, store->key_base(), ids, bucket));
    }
    // The views name no queue: the two queues keep the same.
    CHECK(views[0] == views[1]);
    const auto& v = views[1];
    for (const char* want : {"completed bucket a", "completed bucket e", "completed count 2", "failed bucket b",
                             "a expires 1", "b expires 1", "c live 1", "completed bucket expires 1", "leased d",
                             "waiting c"})
        CHECK(std::find(v.begin(), v.end(), want) != v.end());
}

TEST_CASE("redis_transport: offers redis_node_backend for a store of its queue on its server",
          "[redis][node_backend]") {
    auto client = shared_redis_server().client("offer");
    auto tp = std::make_shared<redis_transport>(client, "q");
    auto store = std::make_shared<redis_task_store>(client, "q");
    const auto nb = tp->make_node_backend(store);
    REQUIRE(nb);
    CHECK(dynamic_cast<redis_node_backend*>(nb.get()) != nullptr);
    CHECK(nb->transport() == tp);
    CHECK(nb->store() == store);
    // Another client of the same server and db reaches the same keys.
    auto same_server = std::make_shared<redis_client>(client->options());
    CHECK(tp->make_node_backend(std::make_shared<redis_task_store>(same_server, "q")));
    // Not combined: another queue, another db, another kind of store, opted out, not owned by a shared_ptr.
    CHECK_FALSE(tp->make_node_backend(std::make_shared<redis_task_store>(client, "other")));
    auto db1 = client->options();
    db1.db += 1;
    auto other_db = std::make_shared<redis_task_store>(std::make_shared<redis_client>(db1), "q");
    CHECK_FALSE(tp->make_node_backend(other_db));
    CHECK_THROWS_AS(redis_node_backend(tp, other_db), invalid_argument);
    CHECK_FALSE(tp->make_node_backend(std::make_shared<memory_task_store>()));
    CHECK_FALSE(tp->make_node_backend(nullptr));
    auto off = std::make_shared<redis_transport>(client, "q", transport_options{.combined_node_calls = false});
    CHECK_FALSE(off->make_node_backend(store));
    redis_transport unowned(client, "q");
    CHECK_FALSE(unowned.make_node_backend(store));
}

TEST_CASE("redis_node_backend: a finish publishes the notification of each terminal record itself",
          "[redis][node_backend][wakeup]") {
    auto client = shared_redis_server().client("nbpub");
    auto tp = std::make_shared<redis_transport>(client, "q");
    auto store = std::make_shared<redis_task_store>(client, "q");
    redis_node_backend nb(tp, store);
    // A watcher as another node has it: its own transport object and connection.
    auto other = std::make_shared<redis_transport>(std::make_shared<redis_client>(client->options()), "q");
    std::mutex m;
    std::vector<std::string> seen;
    auto watch = other->watch_finished([&](const std::string& id) {
        std::lock_guard lk(m);
        if (!id.empty()) seen.push_back(id);
    });
    REQUIRE(watch);
    auto heard = [&] {
        std::lock_guard lk(m);
        return seen;
    };
    // The subscription may take a moment: publish a probe until it arrives.
    REQUIRE(test::dist_eventually([&] {
        const std::string probe = "probe";
        tp->publish_finished(std::span<const std::string>(&probe, 1));
        return !heard().empty();
    }));
    const auto now = std::chrono::system_clock::now();
    for (const char* id : {"again", "done"}) orchcore::test::create_and_admit(*store, *tp, id, now);
    start_spec s;
    s.worker = "w";
    auto got = nb.lease_and_start(s, 2, now);
    REQUIRE(got.size() == 2);
    std::vector<node_outcome> outs;
    for (auto& t : got) {
        REQUIRE(t.started);
        auto rec = *t.record;
        rec.status = t.lease.task_id == "done" ? task_status::completed : task_status::queued;
        if (rec.status == task_status::completed) rec.finished_at = now;
        outs.push_back({rec, task_status::running, t.lease.token, std::chrono::hours(1)});
    }
    // The nack first: had it been published, it would be heard before "done".
    std::sort(outs.begin(), outs.end(), [](const auto& a, const auto& b) { return a.rec.id < b.rec.id; });
    {
        std::lock_guard lk(m);
        seen.clear();
    }
    const auto b = nb.finish_and_fetch(outs, s, 0, now);
    CHECK(b.settled == std::vector<node_batch::fate>(2, node_batch::fate::recorded));
    CHECK(b.announced);
    auto finished = [&] {  // without probes still under way
        auto ids = heard();
        ids.erase(std::remove(ids.begin(), ids.end(), "probe"), ids.end());
        return ids;
    };
    REQUIRE(test::dist_eventually([&] { return !finished().empty(); }, std::chrono::seconds(30)));
    CHECK(finished() == std::vector<std::string>{"done"});
}
