// Coordinator: worker health and fencing of attempts whose worker was declared dead.
#include "unit/coordinator_test_support.hpp"

// ---------------------------------------------------------------------------
// health and fencing
// ---------------------------------------------------------------------------

// Submits a task of `type` (no retries), waits until its first attempt
// names its worker through `first_worker`, and silences that worker's
// heartbeats. Returns the submission and the silenced worker's id.
std::pair<oc::submit_result, std::string> submit_and_silence(oc::coordinator& c, const std::string& type,
                                                             std::promise<std::string>& first_worker) {
    auto r = c.submit_async(type, "", with_retries(0));
    REQUIRE(r);
    auto fw = first_worker.get_future();
    REQUIRE(fw.wait_for(5s) == std::future_status::ready);
    std::string dead = fw.get();
    c.suspend_heartbeats(dead);
    return {std::move(r), std::move(dead)};
}

TEST_CASE("coordinator: a silent worker is declared dead, its task re-runs elsewhere, the late result is refused",
          "[coordinator][health][fencing]") {
    auto o = fast_options(2, 2);
    o.worker_timeout = 200ms;
    gate g;
    recorder tasks_rec, workers_rec;
    std::promise<std::string> first_worker;
    std::atomic<int> first_returned{0};
    oc::coordinator c{o};
    gate_guard guard{g};
    tasks_rec.attach(c);
    workers_rec.attach(c, oc::event_channel::workers);
    c.register_handler("fragile", [&](oc::task_context& ctx) {
        if (ctx.attempt() == 1) {
            first_worker.set_value(ctx.worker_id());
            g.wait();
            ++first_returned;
            return std::string("first");
        }
        return "second@" + ctx.worker_id();
    });
    CHECK_THROWS_AS(c.suspend_heartbeats("no-such-worker"), oc::error);

    auto silenced = submit_and_silence(c, "fragile", first_worker);
    auto& r = silenced.first;
    const std::string dead = silenced.second;  // a plain variable: lambdas capture it
    const auto id = r.handle.id();

    const auto done = r.handle.wait_for(5s);
    REQUIRE(done);
    CHECK(st(done) == "completed");
    CHECK(done->attempts == 2);
    CHECK(done->worker_losses == 1);
    CHECK(done->retries == 0);  // a lost worker is not the task's failure
    REQUIRE_THAT(done->result, Catch::StartsWith("second@"));
    CHECK(done->result != "second@" + dead);

    CHECK(workers_rec.count_worker(oc::event_kind::worker_dead, dead) == 1);
    CHECK(tasks_rec.count(oc::event_kind::task_requeued, id) == 1);
    auto s = c.get_stats();
    CHECK(s.workers_died == 1);
    CHECK(s.requeued_after_worker_death == 1);
    // Replaced back to min_workers, without the dead one.
    REQUIRE(eventually([&] {
        auto ws = c.get_workers();
        return ws.size() == 2 &&
               std::none_of(ws.begin(), ws.end(), [&](const oc::worker_info& w) { return w.id == dead; });
    }));
    CHECK(c.get_stats().workers == 2);

    // The first attempt comes back: refused, the result stays the second's.
    const auto refusals = c.get_stats().stale_token_refusals;
    g.open();
    REQUIRE(eventually([&] { return first_returned.load() == 1; }));
    REQUIRE(eventually([&] { return c.get_stats().stale_token_refusals >= refusals + 1; }));
    CHECK(c.get_result(id) == done->result);
    CHECK(eventually([&] { return tasks_rec.count(oc::event_kind::stale_token_refused, id) >= 1; }));
    CHECK(tasks_rec.count(oc::event_kind::task_completed, id) == 1);
    CHECK(eventually([&] { return c.get_stats().running == 0; }));
}

TEST_CASE("coordinator: a worker declared dead that comes back is fenced off: heartbeat, progress, steering "
          "read and late failure are each refused and counted",
          "[coordinator][health][fencing]") {
    auto o = fast_options(2, 2);
    o.worker_timeout = 200ms;
    gate g;
    recorder tasks_rec, workers_rec;
    std::promise<std::string> first_worker;
    std::atomic<int> first_returned{0};
    std::atomic<bool> progress_refused{false}, read_refused{false};
    oc::coordinator c{o};
    gate_guard guard{g};
    tasks_rec.attach(c);
    workers_rec.attach(c, oc::event_channel::workers);
    c.register_handler("fragile", [&](oc::task_context& ctx) -> std::string {
        if (ctx.attempt() > 1) return "second";
        first_worker.set_value(ctx.worker_id());
        g.wait();
        // Back after being declared dead: every call of this attempt is refused.
        const auto before = c.get_stats().stale_token_refusals;
        ctx.report_progress(0.5, "late");
        progress_refused = c.get_stats().stale_token_refusals == before + 1;
        try {
            (void)ctx.receive();
        } catch (const oc::error& e) {
            read_refused = e.code() == oc::errc::stale_token;
        }
        ++first_returned;
        throw std::runtime_error("late failure");
    });
    auto silenced = submit_and_silence(c, "fragile", first_worker);
    auto& r = silenced.first;
    const std::string dead = silenced.second;  // a plain variable: lambdas capture it
    const auto id = r.handle.id();
    const auto done = r.handle.wait_for(5s);
    REQUIRE(done);
    REQUIRE(st(done) == "completed");
    REQUIRE(workers_rec.count_worker(oc::event_kind::worker_dead, dead) == 1);

    // The dead worker's heartbeat comes back: refused, counted, announced;
    // the worker stays dead (not listed, not replaced a second time).
    const auto before = c.get_stats().stale_token_refusals;
    c.resume_heartbeats(dead);
    REQUIRE(eventually([&] { return c.get_stats().stale_token_refusals >= before + 1; }));
    CHECK(eventually([&] { return tasks_rec.count_worker(oc::event_kind::stale_token_refused, dead) == 1; }));
    auto ws = c.get_workers();
    CHECK(std::none_of(ws.begin(), ws.end(), [&](const oc::worker_info& w) { return w.id == dead; }));
    CHECK(c.get_stats().workers_died == 1);
    CHECK_THROWS_AS(c.resume_heartbeats("no-such-worker"), oc::error);

    // The first attempt wakes: progress and steering read refused, then its
    // failure is refused too; the task stays completed by attempt 2.
    g.open();
    REQUIRE(eventually([&] { return first_returned.load() == 1; }));
    CHECK(progress_refused.load());
    CHECK(read_refused.load());
    REQUIRE(eventually([&] { return c.get_stats().stale_token_refusals >= before + 4; }));
    CHECK(st(c.get_task(id)) == "completed");
    CHECK(c.get_result(id) == "second");
    CHECK(c.get_stats().failed == 0);
    CHECK(eventually([&] { return tasks_rec.count(oc::event_kind::stale_token_refused, id) == 3; }));
    CHECK(tasks_rec.count(oc::event_kind::task_failed, id) == 0);
    CHECK(tasks_rec.count(oc::event_kind::task_completed, id) == 1);
}

TEST_CASE("coordinator: a worker that dies holding an already fenced attempt leaves a healthy re-run alone",
          "[coordinator][health][fencing]") {
    // Attempt 1 ignores its turn timeout on worker A (fenced, slot still held);
    // attempt 2 runs on worker B. A is then declared dead: only A's own
    // attempts may be affected, so attempt 2 must carry on undisturbed.
    auto o = fast_options(2, 2);
    o.worker_template.heartbeat_interval = 10ms;
    o.worker_timeout = 150ms;
    gate first, second;
    recorder workers_rec;
    std::promise<std::string> a_id, b_id;
    std::atomic<int> returned{0};
    oc::coordinator c{o};
    gate_guard guard1{first};
    gate_guard guard2{second};
    workers_rec.attach(c, oc::event_channel::workers);
    c.register_handler("t", [&](oc::task_context& ctx) {
        if (ctx.attempt() == 1) {
            a_id.set_value(ctx.worker_id());
            first.wait();
            ++returned;
            return std::string("first");
        }
        if (ctx.attempt() == 2) b_id.set_value(ctx.worker_id());
        second.wait();
        return "attempt " + std::to_string(ctx.attempt());
    });
    oc::task_options to;
    to.turn_timeout = 600ms;
    to.max_retries = 1;
    auto r = c.submit_async("t", "", to);
    REQUIRE(r);
    const auto id = r.handle.id();
    auto fa = a_id.get_future();
    auto fb = b_id.get_future();
    REQUIRE(fa.wait_for(5s) == std::future_status::ready);
    REQUIRE(fb.wait_for(5s) == std::future_status::ready);
    const auto a = fa.get();
    const auto b = fb.get();
    REQUIRE(a != b);
    c.suspend_heartbeats(a);
    REQUIRE(eventually([&] { return workers_rec.count_worker(oc::event_kind::worker_dead, a) == 1; }, 3s));

    auto mid = c.get_task(id);
    REQUIRE(mid);
    CHECK(st(mid) == "running");
    CHECK(mid->attempts == 2);
    CHECK(mid->worker_losses == 0);
    CHECK(mid->worker_id == b);

    second.open();
    const auto done = r.handle.wait_for(3s);
    REQUIRE(done);
    CHECK(st(done) == "completed");
    CHECK(done->result == "attempt 2");
    CHECK(done->attempts == 2);
    CHECK(done->worker_losses == 0);
    first.open();
    REQUIRE(eventually([&] { return returned.load() == 1; }));
    CHECK(eventually([&] { return c.get_stats().running == 0; }));
}

TEST_CASE("coordinator: a worker declared dead while its fenced attempt is stuck does not leak a running slot",
          "[coordinator][health][fencing]") {
    auto o = fast_options(2, 2);
    o.worker_template.heartbeat_interval = 10ms;
    o.worker_timeout = 150ms;
    gate g;
    recorder workers_rec;
    std::promise<std::string> wid;
    std::atomic<int> returned{0};
    oc::coordinator c{o};
    gate_guard guard{g};
    workers_rec.attach(c, oc::event_channel::workers);
    c.register_handler("stuck", [&](oc::task_context& ctx) {
        wid.set_value(ctx.worker_id());
        g.wait();
        ++returned;
        return std::string("late");
    });
    oc::task_options to;
    to.turn_timeout = 50ms;
    to.max_retries = 0;
    auto r = c.submit_async("stuck", "", to);
    REQUIRE(r);
    auto fw = wid.get_future();
    REQUIRE(fw.wait_for(5s) == std::future_status::ready);
    const auto w = fw.get();
    REQUIRE(st(r.handle.wait_for(3s)) == "timed_out");
    c.suspend_heartbeats(w);
    REQUIRE(eventually([&] { return workers_rec.count_worker(oc::event_kind::worker_dead, w) == 1; }, 3s));
    g.open();
    REQUIRE(eventually([&] { return returned.load() == 1; }));
    CHECK(eventually([&] { return c.get_stats().running == 0; }, 2s));
    // Nothing is running or waiting, so a graceful stop returns at once.
    const auto t0 = steady::now();
    CHECK(c.stop(oc::stop_mode::graceful, 5s));
    CHECK(steady::now() - t0 < 2s);
}
