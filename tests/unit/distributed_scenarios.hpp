// Distributed-mode scenarios (coordinator_options::node), written once
// and run over two backends: memory_transport + memory_task_store +
// memory_worker_registry (tests/unit/coordinator_test.cpp) and
// redis_transport + redis_task_store + redis_worker_registry against a
// private redis-server (tests/redis/distributed_test.cpp). Each scenario runs
// two or three coordinators ("nodes") in this process sharing one backend.
#pragma once

#include <orchcore/coordinator.hpp>
#include <orchcore/task_store.hpp>
#include <orchcore/transport.hpp>
#include <orchcore/worker_registry.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include "support/sync_helpers.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace orchcore::test {

using namespace std::chrono_literals;

struct dist_backend {
    std::shared_ptr<orchcore::transport> tp;
    std::shared_ptr<task_store> store;
    std::shared_ptr<worker_registry> registry;
    std::shared_ptr<orchcore::node_backend> nb{};  // set: the nodes use the combined hot path
};

using dist_backend_factory = std::function<dist_backend()>;

inline dist_backend memory_backend() {
    return {std::make_shared<memory_transport>(), std::make_shared<memory_task_store>(),
            std::make_shared<memory_worker_registry>()};
}

/// A node with `workers` workers (0: producer only).
inline coordinator_options node_options(const dist_backend& b, std::size_t workers, std::string name) {
    coordinator_options o;
    o.store = b.store;
    o.registry = b.registry;
    o.node = orchcore::node_options{.transport = b.tp,
                                    .id = std::move(name),
                                    .lease_duration = 2000ms,
                                    .lease_renew_interval = 50ms,
                                    .backend = b.nb};
    o.policy = b.tp->options().policy;
    o.worker_template.heartbeat_interval = 20ms;
    o.worker_timeout = 3000ms;
    o.default_backoff = {.base = 1ms, .cap = 5ms};
    o.maintenance_interval = 50ms;
    o.cancel_grace = 300ms;
    o.scaling.min_workers = workers;
    o.scaling.max_workers = workers;
    return o;
}


template <class Pred>
bool dist_eventually(Pred&& pred, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    return orchcore::test::eventually(std::forward<Pred>(pred), timeout, std::chrono::milliseconds(5));
}
using dist_gate = orchcore::test::gate;
using dist_gate_guard = orchcore::test::gate_guard;

inline std::string status_of(const std::optional<task_record>& r) {
    return r ? std::string(to_string(r->status)) : std::string("<none>");
}

/// Tasks submitted on a producer-only node run on another node's workers;
/// the producer's handles, wait_for and queries see the results.
inline void scenario_cross_node_completion(const dist_backend_factory& make) {
    auto b = make();
    coordinator producer{node_options(b, 0, "producer")};
    coordinator worker_node{node_options(b, 2, "workers")};
    worker_node.register_handler("echo", [](task_context& ctx) {
        return "done:" + ctx.payload() + "@" + ctx.worker_id();
    });
    CHECK(producer.node_id() == "producer");
    CHECK(producer.get_workers().empty());

    std::vector<task_handle> handles;
    for (int i = 0; i < 20; ++i) {
        auto r = producer.submit_async("echo", "p" + std::to_string(i));
        REQUIRE(r);
        REQUIRE_THAT(r.handle.id(), Catch::StartsWith("producer-"));
        handles.push_back(r.handle);
    }
    for (int i = 0; i < 20; ++i) {
        auto done = handles[static_cast<std::size_t>(i)].wait_for(10s);
        REQUIRE(done);
        CHECK(status_of(done) == "completed");
        REQUIRE_THAT(done->result, Catch::StartsWith("done:p" + std::to_string(i) + "@workers/worker-"));
        CHECK(done->attempts == 1);
        CHECK(producer.get_result(done->id) == done->result);
        CHECK(worker_node.get_status(done->id) == task_status::completed);
    }
    // submit() blocks for a result computed elsewhere.
    CHECK_THAT(producer.submit("echo", "sync"), Catch::StartsWith("done:sync@"));

    CHECK(producer.get_stats().submitted == 21);
    CHECK(producer.get_stats().started == 0);
    REQUIRE(dist_eventually([&] { return worker_node.get_stats().completed == 21; }));
    CHECK(worker_node.get_stats().submitted == 0);
    CHECK(worker_node.get_stats().stale_token_refusals == 0);
    // An unknown id is still not_found through the shared store.
    CHECK_THROWS_AS(producer.wait_for("no-such-task", 10ms), error);
    // Nothing left in the shared queue.
    CHECK(b.tp->size_approx() == 0);
    CHECK(b.tp->leased_count() == 0);
}

/// A coroutine on the producer node awaits tasks that run on another node
/// (task_handle::async_wait_for / async_get read the shared store).
inline void scenario_async_wait_across_nodes(const dist_backend_factory& make) {
    auto b = make();
    coordinator producer{node_options(b, 0, "producer")};
    coordinator worker_node{node_options(b, 2, "workers")};
    worker_node.register_handler("echo", [](task_context& ctx) { return "done:" + ctx.payload(); });
    worker_node.register_handler("bad", [](task_context&) -> std::string { throw non_retryable_error("no"); });
    boost::asio::io_context io;
    bool finished = false;
    std::exception_ptr failure;
    boost::asio::co_spawn(
        io,
        [&]() -> boost::asio::awaitable<void> {
            std::vector<task_handle> hs;
            for (int i = 0; i < 5; ++i) hs.push_back(producer.submit_async("echo", std::to_string(i)).handle);
            for (int i = 0; i < 5; ++i)
                CHECK(co_await hs[static_cast<std::size_t>(i)].async_get() == "done:" + std::to_string(i));
            auto bad = producer.submit_async("bad", "");
            auto r = co_await bad.handle.async_wait_for(10s);
            CHECK(status_of(r) == "failed");
            bool threw = false;
            try {
                (void)co_await producer.async_wait_for("no-such-task", 10ms);
            } catch (const error& e) {
                threw = e.code() == errc::not_found;
            }
            CHECK(threw);
        },
        [&](std::exception_ptr e) {
            failure = e;
            finished = true;
        });
    io.run_for(20s);
    REQUIRE(finished);
    if (failure) std::rethrow_exception(failure);
}

/// One id, one task, across every node sharing the store.
inline void scenario_duplicate_id_across_nodes(const dist_backend_factory& make) {
    auto b = make();
    coordinator a{node_options(b, 1, "a")};
    coordinator c{node_options(b, 1, "c")};
    for (auto* n : {&a, &c}) n->register_handler("t", [](task_context& ctx) { return ctx.payload(); });
    task_options o;
    o.id = "same-id";
    auto first = a.submit_async("t", "first", o);
    REQUIRE(first);
    auto second = c.submit_async("t", "second", o);
    CHECK_FALSE(second);
    CHECK(second.admission.reason == rejection_reason::invalid_request);
    auto done = first.handle.wait_for(10s);
    REQUIRE(done);
    CHECK(done->result == "first");
    // Still refused once finished (the store keeps the id until its TTL).
    CHECK_FALSE(c.submit_async("t", "third", o));
    CHECK_FALSE(a.submit_async("t", "fourth", o));
    CHECK(c.get_result("same-id") == "first");
    CHECK(a.get_stats().rejected + c.get_stats().rejected == 3);
}

/// A node whose worker goes silent stops renewing its lease; once the lease
/// expires another node takes the task over and completes it; the late
/// completion of the first attempt is refused (fencing).
inline void scenario_lease_takeover(const dist_backend_factory& make) {
    auto b = make();
    auto oa = node_options(b, 1, "slow");
    oa.node->lease_duration = 400ms;
    auto ob = node_options(b, 1, "rescuer");
    ob.node->lease_duration = 400ms;
    dist_gate g;
    std::promise<std::string> first_worker;
    std::atomic<int> first_returned{0}, stale_reads{0}, rescuer_runs{0};
    coordinator a{oa};
    dist_gate_guard guard{g};
    a.register_handler("fragile", [&](task_context& ctx) {
        first_worker.set_value(ctx.worker_id());
        g.wait();
        // Reading steering after losing the lease is refused too.
        try {
            (void)ctx.receive();
        } catch (const error& e) {
            if (e.code() == errc::stale_token) ++stale_reads;
        }
        ++first_returned;
        return std::string("late");
    });
    task_options to;
    to.max_retries = 0;
    auto r = a.submit_async("fragile", "x", to);
    REQUIRE(r);
    auto fw = first_worker.get_future();
    REQUIRE(fw.wait_for(10s) == std::future_status::ready);
    a.suspend_heartbeats(fw.get());  // hung: its lease is no longer renewed

    coordinator rescuer{ob};
    rescuer.register_handler("fragile", [&](task_context& ctx) {
        ++rescuer_runs;
        return "rescued@" + ctx.worker_id();
    });

    auto done = r.handle.wait_for(10s);
    REQUIRE(done);
    CHECK(status_of(done) == "completed");
    REQUIRE_THAT(done->result, Catch::StartsWith("rescued@rescuer/"));
    CHECK(done->attempts == 2);
    CHECK(done->worker_losses == 1);
    CHECK(done->retries == 0);
    // The recovering node counts the recovery after its store writes; the
    // rescuer, woken by the recovery, may have finished the task by then.
    CHECK(dist_eventually([&] { return a.get_stats().recovered + rescuer.get_stats().recovered == 1; }));

    // The hung attempt comes back: its steering read and its completion
    // are refused.
    g.open();
    REQUIRE(dist_eventually([&] { return first_returned.load() == 1; }));
    CHECK(stale_reads.load() == 1);
    REQUIRE(dist_eventually([&] { return a.get_stats().stale_token_refusals == 2; }));
    CHECK(a.get_stats().completed == 0);
    // The rescuer counts its completion once the lease is acked, just after
    // the record (which wait_for saw) was written.
    CHECK(dist_eventually([&] { return rescuer.get_stats().completed == 1 && b.tp->leased_count() == 0; }));
    CHECK(rescuer.get_result(r.handle.id()) == "rescued@" + done->worker_id);
    CHECK(b.tp->size_approx() == 0);
    // The counts add up: two runs, one completion (the rescuer's, still in
    // the store after the refused late one), one recovery, one ack, and the
    // late attempt's lease refused by the transport as well.
    CHECK(rescuer_runs.load() == 1);
    CHECK(first_returned.load() == 1);
    CHECK(a.get_stats().completed + rescuer.get_stats().completed == 1);
    CHECK(a.get_stats().failed + rescuer.get_stats().failed == 0);
    CHECK(rescuer.get_stats().stale_token_refusals == 0);
    auto rec = a.get_task(r.handle.id());
    REQUIRE(rec);
    CHECK(status_of(rec) == "completed");
    CHECK(rec->result == done->result);
    CHECK(rec->attempts == 2);
    const auto ts = b.tp->stats();
    CHECK(ts.leases_granted == 2);
    CHECK(ts.recovered == 1);
    CHECK(ts.acked == 1);
    CHECK(ts.stale_refusals >= 1);
    CHECK(ts.dead_lettered == 0);
}

/// Cancellation across nodes: a task waiting in the shared queue, and one
/// running on another node (cancel marker seen at its lease renewal).
inline void scenario_cross_node_cancel(const dist_backend_factory& make) {
    auto b = make();
    coordinator producer{node_options(b, 0, "producer")};
    coordinator worker_node{node_options(b, 1, "worker")};
    std::atomic<int> started{0}, saw_cancel{0};
    worker_node.register_handler("loop", [&](task_context& ctx) {
        ++started;
        const auto until = std::chrono::steady_clock::now() + 8s;
        while (!ctx.cancellation_requested() && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(2ms);
        if (ctx.cancellation_requested()) ++saw_cancel;
        return std::string("stopped");
    });
    auto running = producer.submit_async("loop", "");
    REQUIRE(running);
    REQUIRE(dist_eventually([&] { return started.load() == 1; }));
    // The only worker is busy, so this one waits in the shared queue.
    auto waiting = producer.submit_async("loop", "");
    REQUIRE(waiting);
    CHECK(producer.cancel(waiting.handle.id()));
    auto w = waiting.handle.wait_for(5s);
    REQUIRE(w);
    CHECK(status_of(w) == "cancelled");

    CHECK(producer.cancel(running.handle.id()));  // running on the other node
    auto rdone = running.handle.wait_for(10s);
    REQUIRE(rdone);
    CHECK(status_of(rdone) == "cancelled");
    CHECK(saw_cancel.load() == 1);
    CHECK(started.load() == 1);  // the cancelled waiting task never started
    CHECK_FALSE(producer.cancel(running.handle.id()));  // finished
    try {
        producer.steer(running.handle.id(), {"m"});
        FAIL("steering a finished task must throw");
    } catch (const error& e) {
        CHECK(e.code() == errc::task_finished);
    }
}

/// Steering across nodes: messages sent from two other nodes, before the
/// task starts and while it runs, reach it in order, exactly once; messages
/// not read in one turn are read at the start of the next (on whichever
/// node runs it).
inline void scenario_cross_node_steering(const dist_backend_factory& make) {
    auto b = make();
    coordinator producer{node_options(b, 0, "producer")};
    coordinator other{node_options(b, 0, "other")};
    coordinator worker_node{node_options(b, 1, "worker")};
    std::atomic<int> turns{0};
    std::atomic<bool> ending_turn1{false};
    dist_gate g;
    dist_gate_guard guard{g};
    std::mutex m;
    std::vector<std::string> seen;
    worker_node.register_handler("chat", [&](task_context& ctx) {
        const int turn = ++turns;
        const auto until = std::chrono::steady_clock::now() + 8s;
        while (std::chrono::steady_clock::now() < until) {
            auto msgs = ctx.receive_for(200ms);
            std::lock_guard lk(m);
            for (auto& x : msgs) {
                seen.push_back(x);
                if (x == "next turn" && turn == 1) {
                    // Ends the turn without reading again: what arrives
                    // meanwhile is for turn 2.
                    ending_turn1 = true;
                    g.wait();
                    ctx.continue_later();
                    return std::string{};
                }
                if (x == "done") return std::string("turns=") + std::to_string(turn);
            }
        }
        return std::string("gave up");
    });
    auto r = producer.submit_async("chat", "");
    REQUIRE(r);
    const auto id = r.handle.id();
    producer.steer(id, {"early"});  // waiting or just started: kept either way
    REQUIRE(dist_eventually([&] {
        std::lock_guard lk(m);
        return !seen.empty();
    }));
    other.steer(id, {"a", "b"});
    producer.steer(id, {"c"});
    other.steer(id, {"next turn"});
    REQUIRE(dist_eventually([&] { return ending_turn1.load(); }));
    // Not read by turn 1: waits in the shared mailbox for turn 2.
    producer.steer(id, {"d"});
    other.steer(id, {"done"});
    g.open();
    auto done = r.handle.wait_for(10s);
    REQUIRE(done);
    CHECK(status_of(done) == "completed");
    CHECK(done->result == "turns=2");
    std::lock_guard lk(m);
    CHECK(seen == std::vector<std::string>{"early", "a", "b", "c", "next turn", "d", "done"});
    try {
        other.steer(id, {"too late"});
        FAIL("steering a finished task must throw");
    } catch (const error& e) {
        CHECK(e.code() == errc::task_finished);
    }
    try {
        other.steer("no-such-task", {"x"});
        FAIL("steering an unknown task must throw");
    } catch (const error& e) {
        CHECK(e.code() == errc::not_found);
    }
}

/// A node stopping (abort) hands its running task back; another node runs it.
inline void scenario_stop_hands_back(const dist_backend_factory& make) {
    auto b = make();
    std::atomic<int> runs_a{0};
    auto a = std::make_unique<coordinator>(node_options(b, 1, "leaving"));
    a->register_handler("job", [&](task_context& ctx) {
        ++runs_a;
        while (!ctx.cancellation_requested()) std::this_thread::sleep_for(1ms);
        return std::string("from leaving");
    });
    auto r = a->submit_async("job", "");
    REQUIRE(r);
    const auto id = r.handle.id();
    REQUIRE(dist_eventually([&] { return runs_a.load() == 1; }));
    CHECK_FALSE(a->stop(stop_mode::abort, 1s));  // something had to be handed back
    CHECK(a->get_stats().released == 1);
    a.reset();
    coordinator c{node_options(b, 1, "staying")};
    c.register_handler("job", [](task_context&) { return std::string("from staying"); });
    auto done = c.wait_for(id, 10s);
    REQUIRE(done);
    CHECK(status_of(done) == "completed");
    CHECK(done->result == "from staying");
    CHECK(done->attempts == 2);
}

/// Bulk submission: results in order, each task decided as if alone
/// (duplicates, bad priority, a full queue), rejected ones leave no record,
/// accepted ones all complete on another node.
inline void scenario_bulk_submit(const dist_backend_factory& make, std::size_t capacity) {
    auto b = make();
    coordinator producer{node_options(b, 0, "producer")};
    task_options existing;
    existing.id = "taken";
    REQUIRE(producer.submit_async("work", "first", existing));

    std::vector<task_request> batch;
    for (int i = 0; i < 300; ++i) batch.push_back({"work", "p" + std::to_string(i), {}});
    batch[10].options.id = "taken";       // duplicate of an existing task
    batch[20].options.priority = 99;      // out of range
    batch[30].options.id = "mine-30";     // caller id
    batch[31].options.id = "mine-30";     // duplicate within the batch
    const auto results = producer.submit_many(batch);
    REQUIRE(results.size() == batch.size());
    std::size_t accepted = 0, full = 0;
    for (std::size_t i = 0; i < results.size(); ++i) {
        const auto& r = results[i];
        if (i == 10 || i == 20 || i == 31) {
            CHECK_FALSE(r.accepted());
            CHECK(r.admission.reason == rejection_reason::invalid_request);
            continue;
        }
        if (r.accepted()) {
            ++accepted;
            CHECK(r.handle.valid());
        } else {
            CHECK(r.admission.reason == rejection_reason::queue_full);
            ++full;
        }
    }
    // capacity counts the task submitted first as well.
    CHECK(accepted == std::min<std::size_t>(297, capacity - 1));
    CHECK(full == 297 - accepted);
    CHECK(results[30].admission.id == "mine-30");
    // A rejected duplicate did not overwrite the task it collided with.
    CHECK(producer.get_task("taken")->payload == "first");
    CHECK(producer.get_stats().submitted == accepted + 1);
    CHECK(producer.get_stats().rejected == 3 + full);

    coordinator worker_node{node_options(b, 2, "worker")};
    std::atomic<int> ran{0};
    worker_node.register_handler("work", [&](task_context& ctx) {
        ++ran;
        return ctx.payload();
    });
    for (std::size_t i = 0; i < results.size(); ++i) {
        if (!results[i]) continue;
        auto done = results[i].handle.wait_for(20s);
        REQUIRE(done);
        CHECK(status_of(done) == "completed");
        CHECK(done->result == batch[i].payload);
    }
    REQUIRE(dist_eventually([&] { return producer.get_task("taken") && is_terminal(producer.get_task("taken")->status); }));
    CHECK(ran.load() == static_cast<int>(accepted + 1));
    // Rejected tasks have no record (except the one they collided with).
    CHECK_FALSE(producer.get_task(results[20].admission.id.value_or("none")).has_value());
}

}  // namespace orchcore::test
