// Distributed-mode resilience scenarios, written once and run over the
// in-memory backend (tests/unit/node_resilience_test.cpp) and Redis
// (tests/redis/chaos_test.cpp, tests/redis/registry_cleanup_test.cpp):
//
// * a backend that stops answering for a while (a paused redis-server, or
//   calls held by a decorator) while long tasks run: the node's own
//   workers stay alive, its valid leases are not re-run;
// * a backend that fails every call (an outage) while tasks finish: their
//   outcomes are recorded once it is back, while their leases hold;
// * a handler result larger than the store takes: that task alone fails,
//   at once, with the reason; the others of its batch complete;
// * the worker registry: a clean stop removes the node's entries, and the
//   entries of workers that died are removed after the grace period.
#pragma once

#include "unit/distributed_scenarios.hpp"
#include "unit/failure_scenarios.hpp"

#include <orchcore/coordinator.hpp>
#include <orchcore/error.hpp>
#include <orchcore/task_store.hpp>
#include <orchcore/transport.hpp>
#include <orchcore/worker_registry.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace orchcore::test {

using namespace std::chrono_literals;

// ------------------------------------------------------------ held calls

/// While on, every call through the holding decorators waits until it is
/// switched off (as with a paused server: the calls wait, none fails).
struct call_hold {
    std::mutex m;
    std::condition_variable cv;
    bool on = false;
    std::atomic<std::uint64_t> held{0};

    void pass() {
        std::unique_lock lk(m);
        if (!on) return;
        held.fetch_add(1);
        cv.wait(lk, [&] { return !on; });
    }
    void set(bool v) {
        {
            std::lock_guard lk(m);
            on = v;
        }
        cv.notify_all();
    }
};

class holding_transport final : public transport {
public:
    holding_transport(std::shared_ptr<transport> inner, std::shared_ptr<call_hold> h)
        : inner_(std::move(inner)), h_(std::move(h)) {}

    transport_admission admit(const transport_request& r) override { return (h_->pass(), inner_->admit(r)); }
    std::vector<transport_admission> admit_many(std::span<const transport_request> rs) override {
        return (h_->pass(), inner_->admit_many(rs));
    }
    std::vector<transport_lease> lease(std::string_view worker, std::size_t max, std::chrono::milliseconds duration,
                                       time_point now) override {
        return (h_->pass(), inner_->lease(worker, max, duration, now));
    }
    bool ack(const std::string& id, std::uint64_t token) override { return (h_->pass(), inner_->ack(id, token)); }
    std::vector<bool> ack_many(std::span<const lease_ref> refs) override {
        return (h_->pass(), inner_->ack_many(refs));
    }
    bool nack(const std::string& id, std::uint64_t token, std::chrono::milliseconds delay, time_point now) override {
        return (h_->pass(), inner_->nack(id, token, delay, now));
    }
    bool extend(const std::string& id, std::uint64_t token, std::chrono::milliseconds duration,
                time_point now) override {
        return (h_->pass(), inner_->extend(id, token, duration, now));
    }
    bool cancel(const std::string& id) override { return (h_->pass(), inner_->cancel(id)); }
    bool post_messages(const std::string& id, std::span<const std::string> messages) override {
        return (h_->pass(), inner_->post_messages(id, messages));
    }
    std::optional<std::vector<std::string>> take_messages(const std::string& id, std::uint64_t token) override {
        return (h_->pass(), inner_->take_messages(id, token));
    }
    std::vector<transport_lease> recover_expired(time_point now, std::size_t max) override {
        return (h_->pass(), inner_->recover_expired(now, max));
    }
    std::size_t size_approx() override { return (h_->pass(), inner_->size_approx()); }
    std::size_t leased_count() override { return (h_->pass(), inner_->leased_count()); }
    transport_stats stats() override { return (h_->pass(), inner_->stats()); }
    const transport_options& options() const noexcept override { return inner_->options(); }

private:
    std::shared_ptr<transport> inner_;
    std::shared_ptr<call_hold> h_;
};

class holding_task_store final : public task_store {
public:
    holding_task_store(std::shared_ptr<task_store> inner, std::shared_ptr<call_hold> h)
        : inner_(std::move(inner)), h_(std::move(h)) {}

    bool create(const task_record& r) override { return (h_->pass(), inner_->create(r)); }
    std::optional<task_record> get(const std::string& id) const override { return (h_->pass(), inner_->get(id)); }
    std::vector<std::optional<task_record>> get_many(std::span<const std::string> ids) const override {
        return (h_->pass(), inner_->get_many(ids));
    }
    bool update(const task_record& r, task_status expected) override {
        return (h_->pass(), inner_->update(r, expected));
    }
    std::vector<bool> update_many(std::span<const task_record> rs, std::span<const task_status> expected) override {
        return (h_->pass(), inner_->update_many(rs, expected));
    }
    bool erase(const std::string& id) override { return (h_->pass(), inner_->erase(id)); }
    std::vector<task_record> list(const task_filter& f) const override { return (h_->pass(), inner_->list(f)); }
    std::vector<std::string> expire(std::chrono::system_clock::time_point now, std::chrono::milliseconds a,
                                    std::chrono::milliseconds b, std::chrono::milliseconds c) override {
        return (h_->pass(), inner_->expire(now, a, b, c));
    }
    std::size_t size() const override { return (h_->pass(), inner_->size()); }

private:
    std::shared_ptr<task_store> inner_;
    std::shared_ptr<call_hold> h_;
};

class holding_registry final : public worker_registry {
public:
    holding_registry(std::shared_ptr<worker_registry> inner, std::shared_ptr<call_hold> h)
        : inner_(std::move(inner)), h_(std::move(h)) {}

    void upsert(const worker_record& w) override {
        h_->pass();
        inner_->upsert(w);
    }
    bool heartbeat(const std::string& id, std::chrono::system_clock::time_point at) override {
        return (h_->pass(), inner_->heartbeat(id, at));
    }
    bool set_status(const std::string& id, worker_status s) override {
        return (h_->pass(), inner_->set_status(id, s));
    }
    std::optional<worker_record> get(const std::string& id) const override { return (h_->pass(), inner_->get(id)); }
    std::vector<worker_record> list(const worker_filter& f) const override { return (h_->pass(), inner_->list(f)); }
    std::vector<std::string> reap_stale(std::chrono::system_clock::time_point now,
                                        std::chrono::milliseconds timeout) override {
        return (h_->pass(), inner_->reap_stale(now, timeout));
    }
    bool remove(const std::string& id) override { return (h_->pass(), inner_->remove(id)); }
    std::vector<std::string> purge_silent(std::chrono::system_clock::time_point now,
                                          std::chrono::milliseconds silence) override {
        return (h_->pass(), inner_->purge_silent(now, silence));
    }

private:
    std::shared_ptr<worker_registry> inner_;
    std::shared_ptr<call_hold> h_;
};

/// A backend whose every call can be held, and the switch.
struct held_backend {
    dist_backend b;
    std::shared_ptr<call_hold> hold;
};

inline held_backend holding(const dist_backend& real) {
    auto h = std::make_shared<call_hold>();
    return {{std::make_shared<holding_transport>(real.tp, h), std::make_shared<holding_task_store>(real.store, h),
             std::make_shared<holding_registry>(real.registry, h)},
            h};
}

// ---------------------------------------------------------- backend pause

/// How a scenario stops and restarts the backend's answers.
struct backend_pause {
    std::function<void()> pause, resume;
};

/// A pause of the backend that ends when told, or at the latest when the
/// scope exits (also if a REQUIRE fails: the nodes then stop on a live
/// backend).
class pause_scope {
public:
    explicit pause_scope(const backend_pause& c) : c_(c) {}
    pause_scope(const pause_scope&) = delete;
    pause_scope& operator=(const pause_scope&) = delete;
    ~pause_scope() {
        if (paused_) c_.resume();
    }
    void pause() {
        c_.pause();
        paused_ = true;
    }
    void resume() {
        c_.resume();
        paused_ = false;
    }

private:
    const backend_pause& c_;
    bool paused_ = false;
};

/// Options for a backend pause of ~3 s: longer than worker_timeout (local
/// liveness must not wait for the backend), shorter than a lease.
inline coordinator_options tuned_for_pause(coordinator_options o) {
    o.worker_template.heartbeat_interval = 200ms;
    o.worker_timeout = 1500ms;
    o.node->lease_duration = 10s;
    o.node->lease_renew_interval = 0ms;  // lease_duration / 3
    o.maintenance_interval = 200ms;
    return o;
}

/// Every task of `handles` (task i with payload i) completed once: result
/// "done:<i>", one attempt, no worker lost, one run.
template <std::size_t N>
void check_completed_once(std::vector<task_handle>& handles, const std::array<std::atomic<int>, N>& starts) {
    for (std::size_t i = 0; i < N; ++i) {
        const auto done = handles[i].wait_for(30s);
        REQUIRE(done);
        INFO(done->id << ": " << done->error);
        CHECK(status_of(done) == "completed");
        CHECK(done->result == "done:" + std::to_string(i));
        CHECK(done->attempts == 1);
        CHECK(done->worker_losses == 0);
        CHECK(starts[i].load() == 1);  // no duplicate run
    }
}

/// After a pause, node `pa` recorded all `n` completions, and neither it
/// nor its neighbour `pb` declared a worker dead, refused a renewal,
/// recovered a lease or refused a stale token.
inline void check_pause_cost_nothing(coordinator& pa, coordinator& pb, std::size_t n) {
    // The counters follow the store writes: poll.
    CHECK(dist_eventually([&] { return pa.get_stats().completed == n; }));
    const auto sa = pa.get_stats(), sb = pb.get_stats();
    CHECK(sa.workers_died == 0);
    CHECK(sa.lease_renewals_refused == 0);
    CHECK(sa.recovered + sb.recovered == 0);
    CHECK(sa.stale_token_refusals + sb.stale_token_refusals == 0);
}

/// Eight long tasks run on node "pa" (one per worker) while the backend
/// stops answering for ~3 s: longer than worker_timeout and than several
/// heartbeat intervals, shorter than a lease. The workers' own heartbeats
/// go on, so nobody is declared dead; the leases are renewed once the
/// backend answers, so neither "pa" nor its neighbour "pb" (idle workers,
/// recovering expired leases) runs any task twice. Every task completes
/// exactly once, with one attempt, and no completion is refused.
inline void scenario_backend_pause(const dist_backend& b, const backend_pause& ctl) {
    constexpr std::size_t n = 8;
    std::array<std::atomic<int>, n> starts{};
    std::atomic<std::size_t> running{0};
    auto handler = [&](task_context& ctx) {
        starts.at(std::stoul(ctx.payload())).fetch_add(1);
        running.fetch_add(1);
        // ~4 s of cooperative work: stops early if fenced.
        const auto until = std::chrono::steady_clock::now() + 4s;
        while (std::chrono::steady_clock::now() < until && !ctx.cancellation_requested())
            std::this_thread::sleep_for(10ms);
        running.fetch_sub(1);
        return "done:" + ctx.payload();
    };
    coordinator pa{tuned_for_pause(node_options(b, n, "pa"))};
    pa.register_handler("long", handler);
    std::optional<coordinator> pb;  // joins once pa runs every task: it may only take what pa would lose
    pause_scope pause{ctl};

    std::vector<task_handle> handles;
    for (std::size_t i = 0; i < n; ++i) {
        auto r = pa.submit_async("long", std::to_string(i), {.id = "long-" + std::to_string(i)});
        REQUIRE(r);
        handles.push_back(r.handle);
    }
    REQUIRE(dist_eventually([&] { return running.load() == n; }, 20s));
    pb.emplace(tuned_for_pause(node_options(b, 2, "pb")));
    pb->register_handler("long", handler);
    pause.pause();
    std::this_thread::sleep_for(3s);  // the pause is the scenario, not an assertion
    pause.resume();

    check_completed_once(handles, starts);
    check_pause_cost_nothing(pa, *pb, n);
    CHECK(pa.get_stats().requeued_after_worker_death == 0);
    CHECK(pb->get_stats().started == 0);
}

/// Tasks finish while the backend stops answering (~3 s: longer than
/// worker_timeout, shorter than a lease), on one worker of four slots:
/// the task slot that ran a finished task may carry out the record change
/// itself (node_engine::submit_op) and so waits for the backend with it.
/// The worker's heartbeats go on meanwhile (nobody is declared dead), the
/// tasks still running through the pause finish and are recorded, and the
/// tasks queued behind lease once the backend answers: every task
/// completes once, each run once, with one attempt, and a neighbour
/// recovering expired leases finds none.
inline void scenario_finish_during_pause(const dist_backend& b, const backend_pause& ctl) {
    constexpr std::size_t held = 4, n = 8;  // 2 end in the pause, 2 after it; 4 wait in the queue
    std::array<std::atomic<int>, n> starts{};
    std::atomic<std::size_t> running{0}, returned{0};
    dist_gate in_pause, after_pause;
    auto tune = [](coordinator_options o) {
        o.worker_template.max_concurrent = held;
        return tuned_for_pause(std::move(o));
    };
    coordinator pa{tune(node_options(b, 1, "fp"))};
    dist_gate_guard open_in{in_pause}, open_after{after_pause};
    pa.register_handler("t", [&](task_context& ctx) {
        const auto i = std::stoul(ctx.payload());
        starts.at(i).fetch_add(1);
        running.fetch_add(1);
        if (i < held) (i % 2 == 0 ? in_pause : after_pause).wait(30s);
        running.fetch_sub(1);
        returned.fetch_add(1);
        return "done:" + ctx.payload();
    });
    std::optional<coordinator> pb;  // recovers expired leases: it may only requeue what pa would lose
    pause_scope pause{ctl};

    std::vector<task_handle> handles;
    for (std::size_t i = 0; i < n; ++i) {
        auto r = pa.submit_async("t", std::to_string(i), {.id = "fp-" + std::to_string(i)});
        REQUIRE(r);
        handles.push_back(r.handle);
        if (i + 1 == held) REQUIRE(dist_eventually([&] { return running.load() == held; }, 20s));
    }
    pb.emplace(tune(node_options(b, 0, "fq")));  // no worker: it only recovers
    pause.pause();
    in_pause.open();
    REQUIRE(dist_eventually([&] { return returned.load() == 2; }));
    std::this_thread::sleep_for(3s);  // the pause is the scenario, not an assertion
    pause.resume();
    after_pause.open();

    check_completed_once(handles, starts);
    check_pause_cost_nothing(pa, *pb, n);
}

/// Four tasks finish while every backend call fails (~1 s, well within
/// their leases): the node records their outcomes once the backend is
/// back, instead of dropping them and letting the leases lapse. Each task
/// completes once, with one attempt, and runs once.
inline void scenario_outage_while_finishing(const dist_backend& real) {
    auto out = std::make_shared<outage>();
    auto fstore = std::make_shared<flaky_task_store>(real.store, out);
    const dist_backend b{std::make_shared<flaky_transport>(real.tp, out), fstore, real.registry};
    constexpr std::size_t n = 4;
    std::array<std::atomic<int>, n> starts{};
    std::atomic<std::size_t> started{0}, returned{0};
    dist_gate g;
    auto o = node_options(b, n, "fin");
    o.node->lease_duration = 8s;
    o.node->lease_renew_interval = 0ms;
    coordinator c{o};
    dist_gate_guard guard{g};
    struct outage_end {  // also if a REQUIRE below fails
        outage& o;
        ~outage_end() { o.on = false; }
    } end_outage{*out};
    c.register_handler("t", [&](task_context& ctx) {
        starts.at(std::stoul(ctx.payload())).fetch_add(1);
        started.fetch_add(1);
        g.wait();
        returned.fetch_add(1);
        return "ok:" + ctx.payload();
    });
    std::vector<std::string> ids;
    for (std::size_t i = 0; i < n; ++i) {
        ids.push_back("fin-" + std::to_string(i));
        REQUIRE(c.submit_async("t", std::to_string(i), {.id = ids.back()}));
    }
    REQUIRE(dist_eventually([&] { return started.load() == n; }, 20s));
    out->on = true;
    g.open();
    REQUIRE(dist_eventually([&] { return returned.load() == n; }));
    REQUIRE(dist_eventually([&] { return c.get_stats().backend_errors >= n; }));  // the writes failed
    std::this_thread::sleep_for(1s);  // the outage goes on (its length is the scenario)
    out->on = false;

    for (std::size_t i = 0; i < n; ++i) {
        std::optional<task_record> done;
        REQUIRE(dist_eventually([&] {
            done = real.store->get(ids[i]);
            return done && is_terminal(done->status);
        }, 20s));
        INFO(ids[i] << ": " << done->error);
        CHECK(status_of(done) == "completed");
        CHECK(done->result == "ok:" + std::to_string(i));
        CHECK(done->attempts == 1);
        CHECK(starts[i].load() == 1);
    }
    for (const auto& [id, k] : fstore->completions()) {
        INFO(id);
        CHECK(k == 1);
    }
    check_queue_drained(*real.tp);
    CHECK(dist_eventually([&] { return c.get_stats().completed == n; }));
    CHECK(c.get_stats().stale_token_refusals == 0);
    CHECK(c.get_stats().recovered == 0);
}

// ------------------------------------------------------- oversized result

/// A store that takes results up to `limit` bytes (as redis_task_store
/// does with max_payload_bytes) and refuses larger ones the same way.
class limited_task_store final : public task_store {
public:
    limited_task_store(std::shared_ptr<task_store> inner, std::size_t limit)
        : inner_(std::move(inner)), limit_(limit) {}

    bool create(const task_record& r) override { return (check(r), inner_->create(r)); }
    std::optional<task_record> get(const std::string& id) const override { return inner_->get(id); }
    bool update(const task_record& r, task_status expected) override {
        return (check(r), inner_->update(r, expected));
    }
    std::vector<bool> update_many(std::span<const task_record> rs, std::span<const task_status> expected) override {
        for (const auto& r : rs) check(r);  // the whole batch is refused, as a Redis pipeline's checks do
        return inner_->update_many(rs, expected);
    }
    bool erase(const std::string& id) override { return inner_->erase(id); }
    std::vector<task_record> list(const task_filter& f) const override { return inner_->list(f); }
    std::vector<std::string> expire(std::chrono::system_clock::time_point now, std::chrono::milliseconds a,
                                    std::chrono::milliseconds b, std::chrono::milliseconds c) override {
        return inner_->expire(now, a, b, c);
    }
    std::size_t size() const override { return inner_->size(); }
    std::size_t max_value_bytes() const noexcept override { return limit_; }

private:
    void check(const task_record& r) const {
        if (r.result.size() > limit_)
            throw invalid_argument("result", std::to_string(r.result.size()) + " bytes",
                                   "exceeds max_payload_bytes = " + std::to_string(limit_));
    }
    std::shared_ptr<task_store> inner_;
    std::size_t limit_;
};

/// The reason a result of `size` bytes is refused with.
inline std::string oversized_reason(std::size_t size, std::size_t limit) {
    return "result of " + std::to_string(size) + " bytes exceeds max_payload_bytes = " + std::to_string(limit);
}

/// Six tasks finish together (one completion batch, as far as timing
/// allows); one returns a result one byte over the store's limit. That one
/// ends failed with the reason, after one attempt and no retry; the other
/// five complete, each run once. `limit`: the store's max_value_bytes().
inline void scenario_oversized_result(const dist_backend& b, std::size_t limit) {
    REQUIRE(b.store->max_value_bytes() == limit);
    constexpr std::size_t n = 6;
    std::array<std::atomic<int>, n> starts{};
    std::atomic<std::size_t> started{0};
    dist_gate g;
    auto o = node_options(b, n, "big");
    coordinator c{o};
    dist_gate_guard guard{g};
    c.register_handler("t", [&](task_context& ctx) {
        const auto i = std::stoul(ctx.payload());
        starts.at(i).fetch_add(1);
        started.fetch_add(1);
        g.wait();
        return i == 3 ? std::string(limit + 1, 'x') : "small:" + ctx.payload();
    });
    std::vector<task_request> reqs;
    for (std::size_t i = 0; i < n; ++i)
        reqs.push_back({"t", std::to_string(i), {.id = "big-" + std::to_string(i), .max_retries = 3}});
    auto rs = c.submit_many(std::move(reqs));
    for (const auto& r : rs) REQUIRE(r);
    REQUIRE(dist_eventually([&] { return started.load() == n; }, 20s));
    g.open();

    for (std::size_t i = 0; i < n; ++i) {
        const auto done = rs[i].handle.wait_for(15s);
        REQUIRE(done);
        INFO(done->id << ": " << done->error);
        CHECK(done->attempts == 1);
        CHECK(done->retries == 0);
        if (i == 3) {
            CHECK(status_of(done) == "failed");
            CHECK(done->error == oversized_reason(limit + 1, limit));
            CHECK(done->result.empty());
        } else {
            CHECK(status_of(done) == "completed");
            CHECK(done->result == "small:" + std::to_string(i));
        }
    }
    for (std::size_t i = 0; i < n; ++i) CHECK(starts[i].load() == 1);
    CHECK(dist_eventually([&] { return c.get_stats().completed == n - 1 && c.get_stats().failed == 1; }));
    const auto s = c.get_stats();
    CHECK(s.failed == 1);
    CHECK(s.completed == n - 1);
    CHECK(s.retried == 0);
}

// --------------------------------------------------------------- registry

inline bool registry_has(worker_registry& r, const std::string& id) { return r.get(id).has_value(); }

/// After a clean stop, the registry keeps no entry of the node's workers
/// (nor of one it scaled down); another node's entries stay.
inline void scenario_registry_clean_stop(const dist_backend& b) {
    auto o = node_options(b, 2, "clean");
    o.scaling.min_workers = 1;
    o.scaling.max_workers = 3;
    auto other = std::make_unique<coordinator>(node_options(b, 1, "stays"));
    std::vector<std::string> ids;
    {
        coordinator c{o};
        REQUIRE(c.scale(3) == 3);
        for (const auto& w : c.get_workers()) ids.push_back(w.id);
        REQUIRE(ids.size() == 3);
        REQUIRE(dist_eventually([&] {
            return std::all_of(ids.begin(), ids.end(), [&](const auto& id) { return registry_has(*b.registry, id); });
        }));
        REQUIRE(c.scale(2) == 2);  // one leaves at once (idle): its entry goes
        CHECK(dist_eventually([&] {
            return std::count_if(ids.begin(), ids.end(),
                                 [&](const auto& id) { return registry_has(*b.registry, id); }) == 2;
        }));
        CHECK(c.stop(stop_mode::graceful, 5s));
    }
    for (const auto& id : ids) {
        INFO(id);
        CHECK_FALSE(registry_has(*b.registry, id));
    }
    const auto others = other->get_workers();
    REQUIRE(others.size() == 1);
    CHECK(dist_eventually([&] { return registry_has(*b.registry, others[0].id); }));
    other->stop(stop_mode::graceful, 5s);
    CHECK_FALSE(registry_has(*b.registry, others[0].id));
}

/// A worker that stops heartbeating is declared dead (entry: error); a
/// crashed process's worker (an entry nobody heartbeats any more) is
/// reaped by any node. Both entries are removed once silent for
/// worker_timeout + worker_entry_grace; live workers' entries stay.
inline void scenario_registry_dead_entries(const dist_backend& b) {
    auto tune = [](coordinator_options o) {
        o.worker_timeout = 1000ms;
        o.worker_entry_grace = 500ms;
        o.maintenance_interval = 50ms;
        return o;
    };
    // The crashed process: an entry last heard from now, never again.
    const auto now = std::chrono::system_clock::now();
    b.registry->upsert({.id = "crashed/worker-1", .status = worker_status::busy, .host = "crashed",
                        .registered_at = now, .last_heartbeat = now});
    coordinator a{tune(node_options(b, 1, "ra"))};
    coordinator w{tune(node_options(b, 1, "rw"))};
    const auto hung = w.get_workers().at(0).id;
    REQUIRE(dist_eventually([&] { return registry_has(*b.registry, hung); }));
    w.suspend_heartbeats(hung);
    // Declared dead by its node (and replaced), then removed after the grace.
    REQUIRE(dist_eventually([&] { return w.get_stats().workers_died == 1; }));
    CHECK(dist_eventually([&] { return !registry_has(*b.registry, hung); }));
    CHECK(dist_eventually([&] { return !registry_has(*b.registry, "crashed/worker-1"); }));
    // The live workers (rw's replacement included) stay registered.
    std::vector<std::string> live;
    for (auto* c : {&a, &w})
        for (const auto& wi : c->get_workers()) live.push_back(wi.id);
    REQUIRE(live.size() == 2);
    for (const auto& id : live) {  // the maintenance that removed the dead ones ran while these lived
        INFO(id);
        CHECK(registry_has(*b.registry, id));
    }
    CHECK(a.get_stats().workers_died == 0);
}

/// worker_registry::purge_silent: removes entries (any status) silent for
/// longer than the given time, each once; leaves the others.
inline void scenario_registry_purge(worker_registry& reg) {
    using std::chrono::system_clock;
    const auto t0 = system_clock::now();
    reg.upsert({.id = "old-idle", .registered_at = t0 - 10s, .last_heartbeat = t0 - 10s});
    reg.upsert({.id = "old-dead", .status = worker_status::error, .registered_at = t0 - 10s,
                .last_heartbeat = t0 - 10s});
    reg.upsert({.id = "fresh", .registered_at = t0, .last_heartbeat = t0 - 1s});
    CHECK(reg.purge_silent(t0, std::chrono::milliseconds::max()).empty());  // no overflow: nobody is that old
    auto gone = reg.purge_silent(t0, 5s);
    std::sort(gone.begin(), gone.end());
    CHECK(gone == std::vector<std::string>{"old-dead", "old-idle"});
    CHECK(reg.purge_silent(t0, 5s).empty());  // once
    CHECK(registry_has(reg, "fresh"));
    CHECK_FALSE(registry_has(reg, "old-idle"));
    CHECK(reg.list({}).size() == 1);
}

}  // namespace orchcore::test
