// Workflow scenarios in distributed mode, run on the memory backend
// (workflow_distributed_test.cpp) and on Redis (redis/workflow_redis_test.cpp).
#pragma once

#include <orchcore/coordinator.hpp>
#include <orchcore/workflow/context.hpp>
#include <orchcore/workflow/runner.hpp>

#include "unit/distributed_scenarios.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace orchcore::test {

/// Counts, per task name, how often a handler ran and how often a task
/// ended completed (task.completed events of every node).
struct workflow_tally {
    std::mutex m;
    std::map<std::string, int> runs, completions;

    void attach(coordinator& c, std::vector<event_bus::subscription>& subs) {
        c.register_handler("step", [this](task_context& ctx) {
            {
                std::lock_guard lk(m);
                ++runs[workflow::task_name(ctx)];
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            std::string in;
            for (const auto& d : workflow::dependencies(ctx)) in += workflow::dependency_result(ctx, d) + "+";
            return in + workflow::task_name(ctx);
        });
        subs.push_back(c.events().subscribe(event_channel::tasks, [this](const event& e) {
            const auto slash = e.task_id.find('/');
            if (e.kind != event_kind::task_completed || slash == std::string::npos) return;
            std::lock_guard lk(m);
            ++completions[e.task_id.substr(slash + 1)];
        }));
    }
    int runs_of(const std::string& name) {
        std::lock_guard lk(m);
        return runs[name];
    }
};

/// Stages s0..s7 after a fan-out of 4 shards. The node holding the workflow
/// stops (abort) mid-graph; a second node, started after, carries the
/// workflow on from the records in the shared store: every task completes
/// exactly once and the workflow completes.
inline void scenario_workflow_carried_on(const dist_backend_factory& make) {
    auto b = make();
    workflow_tally tally;
    std::vector<event_bus::subscription> subs;
    workflow::workflow_spec spec{.name = "carried"};
    spec.tasks = {{.name = "fan", .type = "step", .shards = workflow::shard_spec{.count = 4, .aggregator_type = "step"}}};
    for (int i = 0; i < 8; ++i) {
        spec.stages.push_back({.name = "s" + std::to_string(i), .type = "step"});
    }
    spec.stages[0].depends_on = {"fan"};
    const workflow::runner_options ro{.poll_interval = 10ms};

    auto first = std::make_unique<coordinator>(node_options(b, 2, "first"));
    tally.attach(*first, subs);
    auto first_runner = std::make_unique<workflow::workflow_runner>(*first, ro);
    auto h = first_runner->submit_workflow(spec, {.id = "carried-1"});
    REQUIRE(dist_eventually([&] { return tally.runs_of("s2") == 1; }, 30s));
    first->stop(stop_mode::abort, 1s);
    subs.clear();
    first_runner.reset();
    first.reset();

    coordinator second{node_options(b, 2, "second")};
    tally.attach(second, subs);
    workflow::workflow_runner second_runner(second, ro);
    const auto rec = second_runner.handle("carried-1").wait_for(60s);
    REQUIRE(rec);
    CHECK(rec->status == workflow::workflow_status::completed);
    CHECK(rec->task("s7").result.ends_with("+s6+s7"));
    CHECK(rec->task("fan").result == "fan#0+fan#1+fan#2+fan#3+fan");
    std::lock_guard lk(tally.m);
    for (const auto& t : rec->tasks) {
        INFO(t.name);
        CHECK(t.state == workflow::task_state::completed);
        CHECK(tally.completions[t.name] == 1);
        CHECK(tally.runs[t.name] >= 1);
        CHECK(tally.runs[t.name] <= 2);  // once, or again after the stop handed it back
    }
    CHECK(tally.runs["s7"] == 1);
}

/// Shards of type "rshard" fail in round 1 at index 1 (else "r<round>s<index>");
/// "ragg" joins its shards' results with ','.
inline void attach_round_handlers(coordinator& c) {
    c.register_handler("rshard", [](task_context& ctx) -> std::string {
        const std::string id = ctx.id();
        const auto at = id.rfind("@r");
        const auto round = at == std::string::npos ? std::string("1") : id.substr(at + 2);
        const auto index = std::to_string(*workflow::shard_index(ctx));
        if (round == "1" && index == "1") throw non_retryable_error("shard 1 broke");
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        return "r" + round + "s" + index;
    });
    c.register_handler("ragg", [](task_context& ctx) {
        std::string all;
        for (const auto& r : workflow::shard_results(ctx)) all += (all.empty() ? "" : ",") + r;
        return all;
    });
}

/// A fan-out of 4 shards with 3 rounds before stages s0..s3. Shard 1 fails
/// in round 1; the node holding the workflow stops (abort) once round 2 was
/// submitted; a second node rebuilds the workflow from the records, finds
/// round 2 and carries it on: the aggregator gets round 2's results and
/// the record names round 2's shard tasks.
inline void scenario_workflow_rounds_carried_on(const dist_backend_factory& make) {
    auto b = make();
    workflow_tally tally;
    std::vector<event_bus::subscription> subs;
    workflow::workflow_spec spec{.name = "rounds"};
    spec.tasks = {{.name = "fan", .type = "rshard",
                   .shards = workflow::shard_spec{.count = 4, .aggregator_type = "ragg", .rounds = 3}}};
    for (int i = 0; i < 4; ++i) spec.stages.push_back({.name = "s" + std::to_string(i), .type = "step"});
    spec.stages[0].depends_on = {"fan"};
    const workflow::runner_options ro{.poll_interval = 10ms};

    auto first = std::make_unique<coordinator>(node_options(b, 2, "first"));
    tally.attach(*first, subs);
    attach_round_handlers(*first);
    auto first_runner = std::make_unique<workflow::workflow_runner>(*first, ro);
    (void)first_runner->submit_workflow(spec, {.id = "rounds-1"});
    REQUIRE(dist_eventually([&] { return first->get_status(workflow::task_id("rounds-1", "fan#3", 2)).has_value(); },
                            30s));
    first->stop(stop_mode::abort, 1s);
    subs.clear();
    first_runner.reset();
    first.reset();

    coordinator second{node_options(b, 2, "second")};
    tally.attach(second, subs);
    attach_round_handlers(second);
    workflow::workflow_runner second_runner(second, ro);
    const auto rec = second_runner.handle("rounds-1").wait_for(60s);
    REQUIRE(rec);
    CHECK(rec->status == workflow::workflow_status::completed);
    CHECK(rec->task("fan").result == "r2s0,r2s1,r2s2,r2s3");
    for (int i = 0; i < 4; ++i) {
        const auto name = "fan#" + std::to_string(i);
        CHECK(rec->task(name).id == workflow::task_id("rounds-1", name, 2));
    }
    CHECK(second.get_status(workflow::task_id("rounds-1", "fan#1")) == task_status::failed);
    CHECK_FALSE(second.get_status(workflow::task_id("rounds-1", "fan#0", 3)));
    std::lock_guard lk(tally.m);
    for (int i = 0; i < 4; ++i) CHECK(tally.completions["s" + std::to_string(i)] == 1);
    CHECK(tally.runs["s3"] == 1);
}

}  // namespace orchcore::test
