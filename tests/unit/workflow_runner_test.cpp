// The workflow runner on the in-process coordinator: order, dependency
// results, failure propagation, cancellation, fan-out and aggregation,
// events, idempotent submission, co_await.
#include <orchcore/coordinator.hpp>
#include <orchcore/workflow/context.hpp>
#include <orchcore/workflow/runner.hpp>

#include <catch2/catch.hpp>

#include "support/sync_helpers.hpp"
#include "support/workflow_probe.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace oc = orchcore;
namespace wf = orchcore::workflow;
using namespace std::chrono_literals;

namespace {

wf::task_spec op(std::string name, std::string payload = "ok", std::vector<std::string> deps = {}) {
    return {.name = std::move(name), .type = "op", .payload = std::move(payload), .depends_on = std::move(deps)};
}

const wf::runner_options fast{.poll_interval = 5ms};

}  // namespace

TEST_CASE("workflow runner: a diamond runs in dependency order and passes results on", "[workflow][runner]") {
    oc::coordinator c{oc::test::workflow_options()};
    oc::test::workflow_probe probe;
    probe.attach(c);
    std::string seen_by_join;  // written by the handler, read after get()
    bool root_refused = false;
    c.register_handler("join", [&](oc::task_context& ctx) {
        seen_by_join = ctx.payload() + "|" + wf::dependency_result(ctx, "left") + "|" +
                       wf::dependency_result(ctx, "right");
        try {
            (void)wf::dependency_result(ctx, "root");  // not a direct dependency
        } catch (const oc::invalid_argument&) {
            root_refused = true;
        }
        return std::string("joined");
    });
    wf::workflow_runner runner(c, fast);
    wf::workflow_spec spec{.name = "diamond",
                           .tasks = {op("root"), op("left", "slow", {"root"}), op("right", "ok", {"root"}),
                                     {.name = "join", .type = "join", .payload = "${root.result}",
                                      .depends_on = {"left", "right"}}}};
    auto h = runner.submit_workflow(spec);
    const auto rec = h.get();
    CHECK(rec.status == wf::workflow_status::completed);
    CHECK(rec.name == "diamond");
    CHECK(rec.task("join").result == "joined");
    CHECK(rec.task("left").result == "left-done");
    CHECK(rec.task("join").id == h.id() + "/join");
    CHECK(seen_by_join == "root-done|left-done|right-done");
    CHECK(root_refused);
    CHECK(probe.early().empty());
    CHECK(probe.starts() == std::map<std::string, int>{{"left", 1}, {"right", 1}, {"root", 1}});
    CHECK(h.status() == wf::workflow_status::completed);
    REQUIRE(c.get_task(wf::task_id(h.id(), "join")));
}

TEST_CASE("workflow runner: every attempt of a task sees the metadata submitted with it", "[workflow][runner]") {
    // The task's record and each of its attempts share one metadata block:
    // a retry sees what the first attempt saw, and both equal the record.
    auto opts = oc::test::workflow_options();
    opts.default_backoff = {.base = 1ms, .cap = 2ms, .jitter = false};
    oc::coordinator c{opts};
    oc::test::workflow_probe probe;
    probe.attach(c);
    std::mutex m;
    std::vector<std::map<std::string, std::string>> seen;  // per attempt of "join"
    c.register_handler("flaky", [&](oc::task_context& ctx) {
        std::lock_guard lk(m);
        seen.push_back(ctx.metadata());
        if (ctx.attempt() == 1) throw std::runtime_error("first attempt fails");
        return std::string("joined");
    });
    wf::workflow_runner runner(c, fast);
    wf::task_spec join{.name = "join", .type = "flaky", .depends_on = {"left", "right"}};
    join.options.retries = 1;
    wf::workflow_spec spec{.name = "meta", .tasks = {op("left"), op("right"), join}};
    auto h = runner.submit_workflow(spec);
    REQUIRE(h.get().status == wf::workflow_status::completed);
    const auto block = "1;" + std::to_string(h.id().size()) + ":" + h.id() + "4:join0;0;2;4:left9:left-done5:right10:right-done0;";
    const std::map<std::string, std::string> expected{{std::string(wf::meta::block), block}};
    std::lock_guard lk(m);
    REQUIRE(seen.size() == 2);
    CHECK(seen[0] == expected);
    CHECK(seen[1] == expected);
    const auto rec = c.get_task(wf::task_id(h.id(), "join"));
    REQUIRE(rec);
    CHECK(rec->metadata == expected);
    CHECK(rec->attempts == 2);
}

TEST_CASE("workflow runner: a task's session reaches its task record and keeps it on one worker",
          "[workflow][runner]") {
    oc::coordinator c{oc::test::workflow_options()};
    c.register_handler("where", [](oc::task_context& ctx) { return ctx.worker_id(); });
    wf::workflow_runner runner(c, fast);
    wf::task_spec first{.name = "first", .type = "where"};
    first.options.session = "chat-7";
    auto second = first;
    second.name = "second";
    second.depends_on = {"first"};
    wf::task_spec loose{.name = "loose", .type = "where"};
    auto h = runner.submit_workflow({.name = "sess", .tasks = {first, second, loose}});
    const auto rec = h.get();
    REQUIRE(rec.status == wf::workflow_status::completed);
    CHECK(rec.task("second").result == rec.task("first").result);
    const auto r1 = c.get_task(wf::task_id(h.id(), "first"));
    const auto r2 = c.get_task(wf::task_id(h.id(), "second"));
    const auto r3 = c.get_task(wf::task_id(h.id(), "loose"));
    REQUIRE(r1);
    REQUIRE(r2);
    REQUIRE(r3);
    CHECK(r1->session == "chat-7");
    CHECK(r2->session == "chat-7");
    CHECK(r3->session.empty());
}

TEST_CASE("workflow runner: a failure fails everything downstream, naming the dependency", "[workflow][runner]") {
    oc::coordinator c{oc::test::workflow_options()};
    oc::test::workflow_probe probe;
    probe.attach(c);
    wf::workflow_runner runner(c, fast);
    wf::workflow_spec spec{.name = "chain",
                           .tasks = {op("a"), op("b", "fail", {"a"}), op("c", "ok", {"b"}), op("d", "ok", {"c"}),
                                     op("side", "ok", {"a"})}};
    auto h = runner.submit_workflow(spec);
    try {
        (void)h.get();
        FAIL("a failed workflow returned");
    } catch (const wf::workflow_failed_error& e) {
        CHECK(std::string(e.what()).find("'b'") != std::string::npos);
        const auto& r = e.record();
        CHECK(r.status == wf::workflow_status::failed);
        CHECK(r.task("b").state == wf::task_state::failed);
        CHECK(r.task("b").reason.find("boom in b") != std::string::npos);
        // Each downstream task names the dependency it failed because of.
        CHECK(r.task("c").state == wf::task_state::failed);
        CHECK(r.task("c").cause == "b");
        CHECK(r.task("c").reason.find("'b'") != std::string::npos);
        CHECK(r.task("d").state == wf::task_state::failed);
        CHECK(r.task("d").cause == "c");
        CHECK(r.task("d").reason.find("'c'") != std::string::npos);
        CHECK(r.task("side").state == wf::task_state::completed);
    }
    CHECK(probe.starts_of("c") == 0);
    CHECK(probe.starts_of("d") == 0);
    CHECK_FALSE(c.get_task(wf::task_id(h.id(), "c")));  // never submitted
}

TEST_CASE("workflow runner: cancel stops running tasks and submits nothing more", "[workflow][runner]") {
    oc::coordinator c{oc::test::workflow_options()};
    oc::test::workflow_probe probe;
    probe.attach(c);
    oc::test::gate_guard g{probe.blocker()};
    wf::workflow_runner runner(c, fast);
    wf::workflow_spec spec{.name = "stuck", .tasks = {op("a"), op("b", "block", {"a"}), op("c", "ok", {"b"})}};
    auto h = runner.submit_workflow(spec);
    REQUIRE(oc::test::eventually([&] { return probe.starts_of("b") == 1; }, 10s));
    CHECK(h.status() == wf::workflow_status::running);
    CHECK(h.cancel());
    CHECK_THROWS_AS(h.get(), oc::cancelled_error);
    const auto r = h.wait();
    CHECK(r.status == wf::workflow_status::cancelled);
    CHECK(r.task("a").state == wf::task_state::completed);
    CHECK(r.task("b").state == wf::task_state::cancelled);
    CHECK(r.task("c").state == wf::task_state::cancelled);
    REQUIRE(oc::test::eventually([&] { return c.get_status(wf::task_id(h.id(), "b")) == oc::task_status::cancelled; }, 10s));
    CHECK(probe.starts_of("c") == 0);
    CHECK_FALSE(h.cancel());  // already ended
}

TEST_CASE("workflow runner: shards run in parallel and the aggregator gets their results in order",
          "[workflow][runner]") {
    oc::coordinator c{oc::test::workflow_options()};
    std::atomic<int> wrong_count{0};
    c.register_handler("square", [&](oc::task_context& ctx) {
        const auto i = *wf::shard_index(ctx);
        if (wf::shard_count(ctx) != 24) ++wrong_count;
        std::this_thread::sleep_for(std::chrono::milliseconds((24 - i) % 4));  // finish out of order
        return std::to_string(i * i);
    });
    c.register_handler("sum", [](oc::task_context& ctx) {
        std::string all;
        for (const auto& r : wf::shard_results(ctx)) all += r + ",";
        return all;
    });
    wf::workflow_runner runner(c, fast);
    wf::workflow_spec spec{.name = "fan",
                           .tasks = {{.name = "squares", .type = "square",
                                      .shards = wf::shard_spec{.count = 24, .aggregator_type = "sum"}}}};
    const auto rec = runner.submit_workflow(spec).get();
    std::string expected;
    for (int i = 0; i < 24; ++i) expected += std::to_string(i * i) + ",";
    CHECK(rec.task("squares").result == expected);
    CHECK(rec.tasks.size() == 25);
    CHECK(wrong_count == 0);
}

TEST_CASE("workflow runner: one failed shard fails the aggregator, which never runs", "[workflow][runner]") {
    oc::coordinator c{oc::test::workflow_options()};
    std::atomic<int> aggregated{0};
    c.register_handler("shard", [](oc::task_context& ctx) -> std::string {
        if (*wf::shard_index(ctx) == 5) throw oc::non_retryable_error("shard 5 broke");
        return "x";
    });
    c.register_handler("agg", [&](oc::task_context&) {
        ++aggregated;
        return std::string("partial");
    });
    wf::workflow_runner runner(c, fast);
    wf::workflow_spec spec{.name = "fan",
                           .tasks = {{.name = "work", .type = "shard",
                                      .shards = wf::shard_spec{.count = 12, .aggregator_type = "agg"}}}};
    auto h = runner.submit_workflow(spec);
    CHECK_THROWS_AS(h.get(), wf::workflow_failed_error);
    const auto r = h.wait();
    CHECK(r.status == wf::workflow_status::failed);
    CHECK(r.task("work#5").state == wf::task_state::failed);
    CHECK(r.task("work").state == wf::task_state::failed);
    CHECK(r.task("work").cause == "work#5");
    CHECK(aggregated == 0);
}

TEST_CASE("workflow runner: workflow events, idempotent submission with an id, co_await", "[workflow][runner]") {
    oc::coordinator c{oc::test::workflow_options()};
    std::mutex m;
    std::vector<std::pair<oc::event_kind, std::string>> seen;
    auto sub = c.events().subscribe(oc::event_channel::tasks, [&](const oc::event& e) {
        if (oc::to_string(e.kind).starts_with("workflow.")) {
            std::lock_guard lk(m);
            seen.emplace_back(e.kind, e.task_id);
        }
    });
    oc::test::workflow_probe probe;
    probe.attach(c);
    wf::workflow_runner runner(c, fast);
    wf::workflow_spec spec{.name = "twice", .tasks = {op("a"), op("b", "ok", {"a"})}};
    auto h1 = runner.submit_workflow(spec, {.id = "nightly-7"});
    auto h2 = runner.submit_workflow(spec, {.id = "nightly-7"});
    CHECK(h1.id() == "nightly-7");
    CHECK(h2.id() == "nightly-7");
    boost::asio::io_context io;
    auto fut = boost::asio::co_spawn(io, h2.async_get(), boost::asio::use_future);
    io.run();
    CHECK(fut.get().status == wf::workflow_status::completed);
    CHECK(probe.starts_of("a") == 1);
    CHECK(probe.starts_of("b") == 1);
    REQUIRE(oc::test::eventually([&] {
        std::lock_guard lk(m);
        return seen.size() >= 2;
    }));
    std::lock_guard lk(m);
    CHECK(seen[0] == std::pair{oc::event_kind::workflow_submitted, std::string("nightly-7")});
    CHECK(seen[1] == std::pair{oc::event_kind::workflow_completed, std::string("nightly-7")});
    CHECK_THROWS_AS(runner.submit_workflow(spec, {.id = "a/b"}), oc::invalid_argument);
    CHECK_THROWS_AS(runner.handle("no-such-workflow").wait(), oc::error);
}

// In local mode the thread told that a task ended advances the workflow
// itself: on one worker that is the worker that ran the task.
TEST_CASE("workflow runner: on one worker, workflows run to their end side by side and the runner stops mid-graph",
          "[workflow][runner]") {
    auto o = oc::test::workflow_options();
    o.scaling.min_workers = 1;
    o.scaling.max_workers = 1;
    o.worker_template.max_concurrent = 1;
    o.queue.capacity = 1024;
    oc::coordinator c{o};
    std::atomic<int> ran{0};
    c.register_handler("count", [&](oc::task_context& ctx) {
        ++ran;
        std::string deps;
        for (const auto& d : wf::dependencies(ctx)) deps += wf::dependency_result(ctx, d);
        return std::to_string(deps.size() + 1);
    });
    wf::workflow_spec spec{.name = "layers"};
    for (int i = 0; i < 60; ++i) {
        wf::task_spec t{.name = "t" + std::to_string(i), .type = "count"};
        if (i >= 10) t.depends_on = {"t" + std::to_string(i - 10), "t" + std::to_string(i - 10 + (i % 10 == 9 ? -9 : 1))};
        spec.tasks.push_back(std::move(t));
    }
    {
        wf::workflow_runner runner(c, fast);
        auto a = runner.submit_workflow(spec);
        auto b = runner.submit_workflow(spec);
        CHECK(a.get().status == wf::workflow_status::completed);
        CHECK(b.get().status == wf::workflow_status::completed);
        CHECK(ran.load() == 120);
        // Stopped while a workflow's tasks are ending (and advancing it): nothing hangs.
        (void)runner.submit_workflow(spec);
        REQUIRE(oc::test::eventually([&] { return ran.load() > 125; }, 10s));
    }
    c.stop(oc::stop_mode::graceful);
}
