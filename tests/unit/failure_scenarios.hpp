// Failure scenarios of distributed mode, written once and run over
// the in-memory backend (tests/unit/distributed_failure_test.cpp) and Redis
// (tests/redis/failure_test.cpp):
//
// * a storage/transport outage window (decorators that throw
//   error(errc::backend_unavailable) for every call while it lasts);
// * graceful stop that drains, and graceful stop past its deadline that
//   hands the unfinished tasks back to another node;
// * two recoverers racing on the orphans of a node that stopped renewing.
//
// Every scenario checks that the counts add up: each task ends in exactly
// one terminal state, completed exactly once as the store sees it, none lost.
#pragma once

#include "unit/distributed_scenarios.hpp"

#include <orchcore/coordinator.hpp>
#include <orchcore/error.hpp>
#include <orchcore/task_store.hpp>
#include <orchcore/transport.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace orchcore::test {

using namespace std::chrono_literals;

/// The switch shared by the flaky decorators: while on, every call fails.
/// `trip`, if set, turns it on at the first call of that name (which fails).
struct outage {
    std::atomic<bool> on{false};
    std::atomic<const char*> trip{nullptr};
    std::atomic<std::uint64_t> refused{0};

    void check(const char* what) {
        if (const char* t = trip.load(); t != nullptr && std::strcmp(t, what) == 0) {
            trip = nullptr;
            on = true;
        }
        if (on.load()) {
            refused.fetch_add(1);
            throw error(errc::backend_unavailable, std::string("injected outage: ") + what);
        }
    }
};

/// A task_store that forwards to `inner` except while the outage is on,
/// when every call throws error(errc::backend_unavailable) without reaching
/// it. Counts, per id, the updates that moved a record to completed (the
/// store's view of "completed exactly once").
class flaky_task_store final : public task_store {
public:
    flaky_task_store(std::shared_ptr<task_store> inner, std::shared_ptr<outage> o)
        : inner_(std::move(inner)), out_(std::move(o)) {}

    bool create(const task_record& r) override {
        out_->check("store.create");
        return inner_->create(r);
    }
    std::optional<task_record> get(const std::string& id) const override {
        out_->check("store.get");
        return inner_->get(id);
    }
    bool update(const task_record& r, task_status expected) override {
        out_->check("store.update");
        const bool ok = inner_->update(r, expected);
        if (ok && r.status == task_status::completed && expected != task_status::completed) {
            std::lock_guard lk(m_);
            ++completions_[r.id];
        }
        return ok;
    }
    /// As the default (one update() after another, so an outage can start
    /// mid-batch: the batch is not atomic, as over Redis a pipeline cut
    /// short is not), counting the completions a batch wrote before it
    /// failed: their writer saw only the failure.
    std::vector<bool> update_many(std::span<const task_record> rs, std::span<const task_status> expected) override {
        check_batch(rs.size(), expected.size());
        std::vector<bool> out;
        out.reserve(rs.size());
        std::size_t completed = 0;
        try {
            for (std::size_t i = 0; i < rs.size(); ++i) {
                out.push_back(update(rs[i], expected[i]));
                if (out.back() && rs[i].status == task_status::completed && expected[i] != task_status::completed)
                    ++completed;
            }
        } catch (...) {
            unacknowledged_.fetch_add(completed);
            throw;
        }
        return out;
    }
    bool erase(const std::string& id) override {
        out_->check("store.erase");
        return inner_->erase(id);
    }
    std::vector<task_record> list(const task_filter& f) const override {
        out_->check("store.list");
        return inner_->list(f);
    }
    std::vector<std::string> expire(std::chrono::system_clock::time_point now, std::chrono::milliseconds a,
                                    std::chrono::milliseconds b, std::chrono::milliseconds c) override {
        out_->check("store.expire");
        return inner_->expire(now, a, b, c);
    }
    std::size_t size() const override {
        out_->check("store.size");
        return inner_->size();
    }

    std::map<std::string, int> completions() const {
        std::lock_guard lk(m_);
        return completions_;
    }
    /// Completions written by an update_many that then threw.
    std::size_t unacknowledged_completions() const { return unacknowledged_.load(); }

private:
    std::shared_ptr<task_store> inner_;
    std::shared_ptr<outage> out_;
    mutable std::mutex m_;
    std::map<std::string, int> completions_;
    std::atomic<std::size_t> unacknowledged_{0};
};

/// A transport that forwards to `inner` except while the outage is on.
class flaky_transport final : public transport {
public:
    flaky_transport(std::shared_ptr<transport> inner, std::shared_ptr<outage> o)
        : inner_(std::move(inner)), out_(std::move(o)) {}

    transport_admission admit(const transport_request& r) override {
        out_->check("transport.admit");
        return inner_->admit(r);
    }
    std::vector<transport_admission> admit_many(std::span<const transport_request> rs) override {
        out_->check("transport.admit_many");
        return inner_->admit_many(rs);
    }
    std::vector<transport_lease> lease(std::string_view worker, std::size_t max, std::chrono::milliseconds duration,
                                       time_point now) override {
        out_->check("transport.lease");
        return inner_->lease(worker, max, duration, now);
    }
    bool ack(const std::string& id, std::uint64_t token) override {
        out_->check("transport.ack");
        return inner_->ack(id, token);
    }
    std::vector<bool> ack_many(std::span<const lease_ref> refs) override {
        out_->check("transport.ack_many");
        return inner_->ack_many(refs);
    }
    bool nack(const std::string& id, std::uint64_t token, std::chrono::milliseconds delay, time_point now) override {
        out_->check("transport.nack");
        return inner_->nack(id, token, delay, now);
    }
    bool extend(const std::string& id, std::uint64_t token, std::chrono::milliseconds duration,
                time_point now) override {
        out_->check("transport.extend");
        return inner_->extend(id, token, duration, now);
    }
    bool cancel(const std::string& id) override {
        out_->check("transport.cancel");
        return inner_->cancel(id);
    }
    std::vector<transport_lease> recover_expired(time_point now, std::size_t max) override {
        out_->check("transport.recover_expired");
        return inner_->recover_expired(now, max);
    }
    std::vector<transport_dead_letter> dead_letters(std::size_t limit) override {
        out_->check("transport.dead_letters");
        return inner_->dead_letters(limit);
    }
    bool drop_dead_letter(const std::string& id) override {
        out_->check("transport.drop_dead_letter");
        return inner_->drop_dead_letter(id);
    }
    std::size_t size_approx() override {
        out_->check("transport.size_approx");
        return inner_->size_approx();
    }
    std::size_t leased_count() override {
        out_->check("transport.leased_count");
        return inner_->leased_count();
    }
    transport_stats stats() override {
        out_->check("transport.stats");
        return inner_->stats();
    }
    const transport_options& options() const noexcept override { return inner_->options(); }

private:
    std::shared_ptr<transport> inner_;
    std::shared_ptr<outage> out_;
};

/// Every record of `store` with the given status (limit generous).
inline std::size_t count_status(task_store& store, task_status s) {
    return store.list({.status = s, .limit = 1'000'000}).size();
}

/// Asserts that the queue is empty and nothing is leased (polling: acks of
/// leases whose ack failed arrive after a lease expiry).
inline void check_queue_drained(transport& tp, std::chrono::milliseconds timeout = 20s) {
    CHECK(dist_eventually([&] { return tp.size_approx() == 0 && tp.leased_count() == 0; }, timeout));
    const auto ts = tp.stats();
    CHECK(ts.waiting == 0);
    CHECK(ts.delayed == 0);
    CHECK(ts.leased == 0);
}

/// Every call to the store and the transport fails for ~2 s while two nodes
/// run 300 tasks; afterwards every task completes exactly once (as the
/// store sees it), none is lost, nothing fails, nothing hangs.
inline void scenario_backend_outage_window(const dist_backend_factory& make) {
    auto real = make();
    auto out = std::make_shared<outage>();
    auto fstore = std::make_shared<flaky_task_store>(real.store, out);
    dist_backend b{std::make_shared<flaky_transport>(real.tp, out), fstore, real.registry};

    constexpr std::size_t n = 300;
    std::atomic<std::size_t> runs{0};
    auto handler = [&](task_context& ctx) {
        ++runs;
        std::this_thread::sleep_for(2ms);
        return "ok:" + ctx.payload();
    };
    auto oa = node_options(b, 2, "fa");
    auto ob = node_options(b, 2, "fb");
    for (auto* o : {&oa, &ob}) {
        o->worker_template.max_concurrent = 2;
        o->node->lease_duration = 1500ms;
        o->node->lease_renew_interval = 100ms;
    }
    coordinator a{oa};
    coordinator c{ob};
    a.register_handler("w", handler);
    c.register_handler("w", handler);
    struct outage_end {  // also if a REQUIRE below fails: the nodes then stop on a working backend
        outage& o;
        ~outage_end() { o.on = false; }
    } end_outage{*out};

    std::vector<std::string> ids;
    for (std::size_t i = 0; i < n; ++i) {
        task_options to;
        to.id = "flaky-" + std::to_string(i);
        auto r = (i % 2 ? a : c).submit_async("w", std::to_string(i), to);
        REQUIRE(r);
        ids.push_back(*to.id);
    }
    // The outage starts mid-run.
    REQUIRE(dist_eventually([&] { return fstore->completions().size() >= 40; }, 60s));
    out->on = true;
    const auto outage_start = std::chrono::steady_clock::now();
    // During the outage a submission fails with the library's error, and
    // queries do not hang.
    try {
        (void)a.submit_async("w", "during", {.id = std::string("during-outage")});
        FAIL("submit_async succeeded during the outage");
    } catch (const error& e) {
        CHECK(e.code() == errc::backend_unavailable);
    }
    CHECK_FALSE(a.wait_for(ids.back(), 50ms).has_value());
    // The outage lasts ~2 s (its length is the scenario, not an assertion).
    while (std::chrono::steady_clock::now() - outage_start < 2s) std::this_thread::sleep_for(10ms);
    out->on = false;
    const auto refused = out->refused.load();

    REQUIRE(dist_eventually([&] { return count_status(*real.store, task_status::completed) == n; }, 90s));
    for (const auto& id : ids) {
        auto r = real.store->get(id);
        REQUIRE(r);
        INFO(id);
        CHECK(r->status == task_status::completed);
        CHECK(r->result == "ok:" + id.substr(6));
    }
    // Exactly once, as the store saw it.
    const auto comp = fstore->completions();
    CHECK(comp.size() == n);
    std::size_t twice = 0;
    for (const auto& [id, k] : comp)
        if (k != 1) ++twice;
    CHECK(twice == 0);
    CHECK(real.store->size() == n);  // the submission during the outage left nothing
    for (auto s : {task_status::pending, task_status::queued, task_status::running, task_status::failed,
                   task_status::cancelled, task_status::timed_out})
        CHECK(count_status(*real.store, s) == 0);
    check_queue_drained(*real.tp);
    // Each node counts a completion it recorded, even if the ack after it
    // failed (the counter follows the store write: poll). Not one whose
    // write reached the store in a batch that then failed (the outage
    // began mid-batch): its node saw a failure, and whoever next holds the
    // task finds it completed and counts nothing. The store saw each
    // completion once (above); the nodes count each other one once.
    const auto unacknowledged = fstore->unacknowledged_completions();
    INFO("completions written by a batch that then failed: " << unacknowledged);
    CHECK(dist_eventually(
        [&] { return a.get_stats().completed + c.get_stats().completed + unacknowledged == n; }));
    const auto sa = a.get_stats(), sc = c.get_stats();
    CHECK(sa.completed + sc.completed + unacknowledged == n);
    CHECK(sa.failed + sc.failed == 0);
    CHECK(sa.backend_errors + sc.backend_errors > 0);  // the outage was felt
    CHECK(refused > 0);
    CHECK(runs.load() >= n);
    CHECK(real.tp->stats().dead_lettered == 0);
    WARN("outage window: " << refused << " calls refused; backend_errors " << sa.backend_errors + sc.backend_errors
                           << "; handler runs " << runs.load() << " for " << n << " tasks; recovered "
                           << sa.recovered + sc.recovered << "; stale refusals "
                           << sa.stale_token_refusals + sc.stale_token_refusals
                           << "; completions written by a failed batch " << unacknowledged);
}

/// A submission fails half-way: its record is written, then every call
/// fails (the admission into the queue, the removal of the record after
/// it), so the caller sees backend_unavailable and the record is left
/// behind, in no queue. The same submission again, with the backend back,
/// is accepted and finishes what the first began: the task runs, once. A
/// different submission with that id is still refused.
inline void scenario_resubmit_after_half_done_submission(const dist_backend_factory& make) {
    auto real = make();
    auto out = std::make_shared<outage>();
    auto fstore = std::make_shared<flaky_task_store>(real.store, out);
    dist_backend b{std::make_shared<flaky_transport>(real.tp, out), fstore, real.registry};
    coordinator producer{node_options(b, 0, "producer")};
    task_options to;
    to.id = "half-done";
    out->trip = "transport.admit_many";
    try {
        (void)producer.submit_async("w", "p", to);
        FAIL("submit_async succeeded with the admission failing");
    } catch (const error& e) {
        CHECK(e.code() == errc::backend_unavailable);
    }
    out->on = false;
    const auto left = real.store->get("half-done");
    REQUIRE(left);
    CHECK(left->status == task_status::queued);
    CHECK(real.tp->size_approx() == 0);

    auto other = producer.submit_async("w", "another payload", to);
    CHECK_FALSE(other);
    CHECK(other.admission.reason == rejection_reason::invalid_request);
    auto again = producer.submit_async("w", "p", to);
    REQUIRE(again);
    CHECK(again.handle.id() == "half-done");
    CHECK(real.tp->size_approx() == 1);
    // Once more while it waits: the same task, still in the queue once.
    REQUIRE(producer.submit_async("w", "p", to));
    CHECK(real.tp->size_approx() == 1);

    std::atomic<int> runs{0};
    coordinator worker{node_options(b, 1, "worker")};
    worker.register_handler("w", [&](task_context& ctx) {
        ++runs;
        return "ok:" + ctx.payload();
    });
    const auto r = again.handle.wait_for(20s);
    REQUIRE(r);
    CHECK(r->status == task_status::completed);
    CHECK(r->result == "ok:p");
    CHECK(r->attempts == 1);
    CHECK(runs.load() == 1);
    // (The decorator counts once the write returns: poll.)
    CHECK(dist_eventually([&] { return fstore->completions() == std::map<std::string, int>{{"half-done", 1}}; }));
    // Done: the same submission is now refused, as any duplicate id.
    CHECK_FALSE(producer.submit_async("w", "p", to));
    check_queue_drained(*real.tp);
    CHECK(runs.load() == 1);
}

/// stop(graceful) with running tasks that finish before the deadline: they
/// complete on the stopping node; nothing is handed back.
inline void scenario_graceful_stop_drains(const dist_backend_factory& make) {
    auto b = make();
    constexpr std::size_t n = 8;
    auto oa = node_options(b, 2, "draining");
    oa.worker_template.max_concurrent = 4;  // 8 slots: all n run at once
    // Declared before the nodes: the handlers use them until joined.
    dist_gate g;
    std::atomic<std::size_t> started{0}, other_runs{0};
    coordinator a{oa};
    dist_gate_guard guard{g};
    a.register_handler("job", [&](task_context& ctx) {
        ++started;
        g.wait(20s);
        return "drained:" + ctx.payload();
    });
    std::vector<std::string> ids;
    for (std::size_t i = 0; i < n; ++i) {
        auto r = a.submit_async("job", std::to_string(i));
        REQUIRE(r);
        ids.push_back(r.handle.id());
    }
    REQUIRE(dist_eventually([&] { return started.load() == n; }, 20s));
    // Another node is up and could take anything handed back.
    coordinator other{node_options(b, 1, "other")};
    other.register_handler("job", [&](task_context&) {
        ++other_runs;
        return std::string("other");
    });
    // The handlers finish 300 ms into the stop, well before its deadline.
    std::thread opener([&] {
        std::this_thread::sleep_for(300ms);
        g.open();
    });
    const bool clean = a.stop(stop_mode::graceful, 30s);
    opener.join();
    CHECK(clean);
    const auto sa = a.get_stats();
    CHECK(sa.completed == n);
    CHECK(sa.released == 0);
    CHECK(sa.stale_token_refusals == 0);
    CHECK(sa.failed == 0);
    for (const auto& id : ids) {
        auto r = b.store->get(id);
        REQUIRE(r);
        CHECK(r->status == task_status::completed);
        CHECK(r->result == "drained:" + r->payload);
        CHECK(r->attempts == 1);
        CHECK(r->worker_losses == 0);
    }
    CHECK(count_status(*b.store, task_status::completed) == n);
    CHECK(other_runs.load() == 0);
    CHECK(other.get_stats().completed == 0);
    check_queue_drained(*b.tp);
    CHECK(b.tp->stats().acked == n);
    CHECK(b.tp->stats().recovered == 0);
}

/// stop(graceful) whose deadline passes with tasks still running: they are
/// handed back (not cancelled, not failed), another node completes each once,
/// and the stopped node's late returns are refused.
inline void scenario_graceful_stop_hands_back(const dist_backend_factory& make) {
    auto b = make();
    constexpr std::size_t n = 4;
    auto oa = node_options(b, 1, "leaving");
    oa.worker_template.max_concurrent = n;
    std::atomic<std::size_t> started{0}, fenced{0}, rescued{0};  // before the nodes (used by handlers)
    auto a = std::make_unique<coordinator>(oa);
    a->register_handler("long", [&](task_context& ctx) {
        ++started;
        // Outlasts the stop deadline; returns once its attempt is fenced
        // (the handback signals cancellation), or after 20 s.
        const auto until = std::chrono::steady_clock::now() + 20s;
        while (!ctx.cancellation_requested() && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(2ms);
        if (ctx.cancellation_requested()) ++fenced;
        return std::string("late");
    });
    coordinator producer{node_options(b, 0, "producer")};
    std::vector<std::string> ids;
    for (std::size_t i = 0; i < n; ++i) {
        auto r = producer.submit_async("long", std::to_string(i));
        REQUIRE(r);
        ids.push_back(r.handle.id());
    }
    REQUIRE(dist_eventually([&] { return started.load() == n; }, 20s));
    // The node that takes over (it finds nothing to do until the handback).
    coordinator rescuer{node_options(b, 2, "rescuer")};
    rescuer.register_handler("long", [&](task_context& ctx) {
        ++rescued;
        return "rescued:" + ctx.payload();
    });
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(a->stop(stop_mode::graceful, 300ms));  // something had to be handed back
    const auto stop_took = std::chrono::steady_clock::now() - t0;
    CHECK(stop_took >= 300ms);
    CHECK(stop_took < 15s);
    const auto sa = a->get_stats();
    CHECK(sa.released == n);
    CHECK(sa.completed == 0);
    CHECK(sa.cancelled == 0);
    CHECK(sa.failed == 0);
    // The late returns of the handed-back attempts are refused.
    CHECK(dist_eventually([&] { return a->get_stats().stale_token_refusals == n; }));
    CHECK(fenced.load() == n);

    for (const auto& id : ids) {
        auto r = producer.wait_for(id, 20s);
        REQUIRE(r);
        INFO(id);
        CHECK(status_of(r) == "completed");
        CHECK(r->result == "rescued:" + r->payload);
        CHECK(r->attempts == 2);
        CHECK(r->retries == 0);
        CHECK(r->worker_losses == 0);  // handed back, not lost
    }
    CHECK(rescued.load() == n);
    CHECK(dist_eventually([&] { return rescuer.get_stats().completed == n; }));
    CHECK(a->get_stats().completed == 0);
    CHECK(count_status(*b.store, task_status::completed) == n);
    CHECK(b.store->size() == n);
    check_queue_drained(*b.tp);
    const auto ts = b.tp->stats();
    CHECK(ts.acked == n);
    CHECK(ts.recovered == 0);
    CHECK(ts.leases_granted == 2 * n);
    a.reset();
}

/// A node stops renewing its leases without stopping (its workers' heartbeats
/// are suspended, one by one: hung or partitioned) while holding 16 running
/// tasks. Two
/// other nodes run lease recovery on the same orphans: each orphan is put
/// back exactly once (transport and nodes agree), completes exactly once on
/// a recovering node, and the hung node's late returns are refused.
inline void scenario_racing_recoverers(const dist_backend_factory& make) {
    auto b = make();
    constexpr std::size_t n = 16;
    // One slot per worker, so that suspending the workers' heartbeats one
    // by one, 40 ms apart, staggers the orphans' lease deadlines: the
    // recoverers meet them over many recovery rounds, not in one batch.
    auto od = node_options(b, n, "doomed");
    od.worker_template.max_concurrent = 1;
    od.node->lease_duration = 1500ms;  // its own recovery runs every 375 ms
    od.node->lease_renew_interval = 100ms;
    od.worker_timeout = 120s;  // it never declares its own workers dead
    dist_gate g;  // before the nodes (used by handlers)
    std::atomic<std::size_t> started{0}, returned{0}, reruns{0};
    coordinator d{od};
    dist_gate_guard guard{g};
    d.register_handler("orphan", [&](task_context&) {
        ++started;
        g.wait(30s);
        ++returned;
        return std::string("late");
    });
    std::vector<std::string> ids;
    for (std::size_t i = 0; i < n; ++i) {
        auto r = d.submit_async("orphan", std::to_string(i));
        REQUIRE(r);
        ids.push_back(r.handle.id());
    }
    REQUIRE(dist_eventually([&] { return started.load() == n; }, 20s));
    for (const auto& w : d.get_workers()) {
        d.suspend_heartbeats(w.id);
        std::this_thread::sleep_for(40ms);  // staggering (not an assertion)
    }

    // Two recoverers, recovering every 50 ms (lease_duration / 4).
    auto o1 = node_options(b, 2, "r1");
    auto o2 = node_options(b, 2, "r2");
    for (auto* o : {&o1, &o2}) {
        o->node->lease_duration = 200ms;
        o->node->lease_renew_interval = 40ms;
        o->worker_template.max_concurrent = 4;
    }
    auto rerun = [&](task_context& ctx) {
        ++reruns;
        return "rerun:" + ctx.payload() + "@" + ctx.worker_id();
    };
    coordinator r1{o1};
    coordinator r2{o2};
    r1.register_handler("orphan", rerun);
    r2.register_handler("orphan", rerun);

    for (const auto& id : ids) {
        auto r = r1.wait_for(id, 30s);
        REQUIRE(r);
        INFO(id);
        CHECK(status_of(r) == "completed");
        CHECK_THAT(r->result, Catch::StartsWith("rerun:" + r->payload + "@r"));
        CHECK(r->attempts == 2);
        CHECK(r->worker_losses == 1);
    }
    CHECK(reruns.load() == n);
    // Node counters follow the store writes: poll.
    CHECK(dist_eventually([&] { return r1.get_stats().completed + r2.get_stats().completed == n; }));
    CHECK(dist_eventually([&] {
        return r1.get_stats().recovered + r2.get_stats().recovered + d.get_stats().recovered == n;
    }));
    const auto s1 = r1.get_stats(), s2 = r2.get_stats();
    CHECK(s1.completed + s2.completed == n);
    // Each orphan put back exactly once, whoever won each race.
    auto ts = b.tp->stats();
    CHECK(ts.recovered == n);
    CHECK(s1.recovered + s2.recovered + d.get_stats().recovered == n);
    CHECK(ts.dead_lettered == 0);
    WARN("racing recoverers: r1 recovered " << s1.recovered << ", r2 " << s2.recovered << ", the hung node itself "
                                            << d.get_stats().recovered);

    // The hung attempts return: every late completion is refused.
    g.open();
    REQUIRE(dist_eventually([&] { return returned.load() == n; }));
    REQUIRE(dist_eventually([&] { return d.get_stats().stale_token_refusals == n; }));
    CHECK(d.get_stats().completed == 0);
    for (const auto& id : ids) CHECK_THAT(b.store->get(id)->result, Catch::StartsWith("rerun:"));
    CHECK(count_status(*b.store, task_status::completed) == n);
    check_queue_drained(*b.tp);
    ts = b.tp->stats();
    CHECK(ts.acked == n);
    CHECK(ts.recovered == n);
    CHECK(ts.leases_granted == 2 * n);
}

}  // namespace orchcore::test
