// The record of a workflow read after its end on the node that held it
// (from the final state kept there) is the record read from the tasks'
// records by a runner that never held it: completed, failed downstream,
// a fan-out that needed a second round, cancelled, and an id used again.
#include "../../src/workflow/runner_impl.hpp"

#include <orchcore/coordinator.hpp>
#include <orchcore/workflow/context.hpp>
#include <orchcore/workflow/runner.hpp>

#include <catch2/catch.hpp>

#include "support/sync_helpers.hpp"
#include "support/workflow_probe.hpp"

#include <string>
#include <thread>
#include <vector>

namespace oc = orchcore;
namespace wf = orchcore::workflow;
using namespace std::chrono_literals;

namespace {

const wf::runner_options fast{.poll_interval = 5ms};

void check_same(const wf::workflow_record& kept, const wf::workflow_record& read) {
    CHECK(kept.id == read.id);
    CHECK(kept.name == read.name);
    CHECK(kept.status == read.status);
    CHECK(kept.created_at == read.created_at);
    CHECK(kept.finished_at == read.finished_at);
    REQUIRE(kept.tasks.size() == read.tasks.size());
    for (std::size_t i = 0; i < kept.tasks.size(); ++i) {
        const auto& a = kept.tasks[i];
        const auto& b = read.tasks[i];
        INFO("task " << a.name);
        CHECK(a.name == b.name);
        CHECK(a.id == b.id);
        CHECK(a.state == b.state);
        CHECK(a.result == b.result);
        CHECK(a.reason == b.reason);
        CHECK(a.cause == b.cause);
    }
}

// What a runner that never held the workflows reads from the records (it
// takes over the driver's handler: only once the workflows ended).
std::vector<wf::workflow_record> read_by_another_runner(oc::coordinator& c, const std::vector<std::string>& ids) {
    wf::workflow_runner other(c, fast);
    std::vector<wf::workflow_record> out;
    for (const auto& id : ids) {
        auto r = other.handle(id).record();
        REQUIRE(r);
        out.push_back(std::move(*r));
    }
    return out;
}

wf::task_spec op(std::string name, std::vector<std::string> deps = {}, std::string payload = {}) {
    return {.name = std::move(name), .type = "op", .payload = std::move(payload), .depends_on = std::move(deps)};
}

wf::workflow_spec diamond() {
    return {.name = "diamond", .tasks = {op("a"), op("b", {"a"}), op("c", {"a"}), op("d", {"b", "c"})}};
}

// "b" fails; "d" and "e" fail downstream of it, "c" and "f" complete.
wf::workflow_spec failing() {
    return {.name = "failing",
            .tasks = {op("a"), op("b", {"a"}, "fail"), op("c", {"a"}), op("d", {"b"}), op("e", {"d", "c"}),
                      op("f", {"c"})}};
}

// Shard 2 of 4 fails in round 1; round 2 completes.
wf::workflow_spec fan_out() {
    wf::workflow_spec spec{.name = "fan"};
    spec.tasks = {{.name = "fan", .type = "shard",
                   .shards = wf::shard_spec{.count = 4, .aggregator_type = "agg", .rounds = 3}},
                  op("after", {"fan"})};
    return spec;
}

void attach_fan(oc::coordinator& c) {
    c.register_handler("shard", [](oc::task_context& ctx) -> std::string {
        const auto index = *wf::shard_index(ctx);
        const bool round1 = ctx.id().find("@r") == std::string::npos;
        if (round1 && index == 2) throw oc::non_retryable_error("shard 2 broke");
        return (round1 ? "r1s" : "r2s") + std::to_string(index);
    });
    c.register_handler("agg", [](oc::task_context& ctx) {
        std::string all;
        for (const auto& r : wf::shard_results(ctx)) all += r + ",";
        return all;
    });
}

}  // namespace

TEST_CASE("workflow final state: the record after the end is the one the task records give (completed, failed, "
          "a fan-out's second round)",
          "[workflow][runner][final_state]") {
    oc::coordinator c{oc::test::workflow_options()};
    oc::test::workflow_probe probe;
    probe.attach(c);
    attach_fan(c);
    std::vector<std::string> ids;
    std::vector<wf::workflow_record> kept;
    {
        wf::workflow_runner runner(c, fast);
        auto done = runner.submit_workflow(diamond());
        auto failed = runner.submit_workflow(failing());
        auto fan = runner.submit_workflow(fan_out());
        kept.push_back(done.get());
        CHECK_THROWS_AS(failed.get(), wf::workflow_failed_error);
        kept.push_back(failed.wait());
        kept.push_back(fan.get());
        ids = {done.id(), failed.id(), fan.id()};
        // Read again: the same answer.
        for (std::size_t k = 0; k < ids.size(); ++k) check_same(kept[k], *runner.handle(ids[k]).record());
    }
    CHECK(kept[0].status == wf::workflow_status::completed);
    CHECK(kept[0].task("d").result == "d-done");
    CHECK(kept[1].status == wf::workflow_status::failed);
    CHECK(kept[1].task("b").reason == "boom in b");
    CHECK(kept[1].task("d").cause == "b");
    CHECK(kept[1].task("e").cause == "d");
    CHECK(kept[1].task("f").state == wf::task_state::completed);
    CHECK(kept[2].status == wf::workflow_status::completed);
    CHECK(kept[2].task("fan#2").id == wf::task_id(ids[2], "fan#2", 2));
    CHECK(kept[2].task("fan").result == "r2s0,r2s1,r2s2,r2s3,");
    const auto read = read_by_another_runner(c, ids);
    for (std::size_t k = 0; k < ids.size(); ++k) {
        INFO("workflow " << kept[k].name);
        check_same(kept[k], read[k]);
    }
}

TEST_CASE("workflow final state: a cancelled workflow reads as the task records give it",
          "[workflow][runner][final_state]") {
    oc::coordinator c{oc::test::workflow_options()};
    oc::test::workflow_probe probe;
    probe.attach(c);
    wf::workflow_runner runner(c, fast);
    auto h = runner.submit_workflow({.name = "held", .tasks = {op("a"), op("b", {"a"}, "block"), op("c", {"b"})}});
    REQUIRE(oc::test::eventually([&] { return probe.starts_of("b") == 1; }, 10s));
    REQUIRE(h.cancel());
    CHECK_THROWS_AS(h.get(), oc::cancelled_error);
    const auto kept = h.wait();
    CHECK(kept.status == wf::workflow_status::cancelled);
    CHECK(kept.task("a").state == wf::task_state::completed);
    CHECK(kept.task("c").state == wf::task_state::cancelled);
    check_same(kept, read_by_another_runner(c, {h.id()})[0]);
}

TEST_CASE("workflow final state: a workflow id used again after its record expired reads as the new workflow",
          "[workflow][runner][final_state]") {
    auto opts = oc::test::workflow_options();
    opts.completed_ttl = 200ms;
    opts.failed_ttl = 200ms;
    oc::coordinator c{opts};
    oc::test::workflow_probe probe;
    probe.attach(c);
    wf::workflow_runner runner(c, fast);
    const wf::workflow_submit_options again{.id = "again"};
    auto first = runner.submit_workflow(diamond(), again);
    CHECK(first.get().status == wf::workflow_status::completed);
    REQUIRE(oc::test::eventually([&] { return !c.get_status("again") && !c.get_status("again/d"); }, 10s));
    CHECK_FALSE(runner.handle("again").record());  // not the state kept of a workflow whose record is gone
    auto second = runner.submit_workflow(failing(), again);
    CHECK_THROWS_AS(second.get(), wf::workflow_failed_error);
    const auto kept = second.wait();
    CHECK(kept.name == "failing");
    CHECK(kept.task("b").state == wf::task_state::failed);
    check_same(kept, read_by_another_runner(c, {"again"})[0]);
}

TEST_CASE("workflow final state: rebuilds_the_same takes finished states whose ends no order decides",
          "[workflow][final_state]") {
    const auto t = std::chrono::system_clock::now();
    auto graph = std::make_shared<const wf::workflow_graph>(wf::expand(failing()));
    wf::workflow_state s(graph);
    CHECK_FALSE(wf::rebuilds_the_same(s));  // not finished
    s.start("a", t);
    s.complete("a", "A", t);
    s.start("b", t);
    s.start("c", t);
    s.fail("b", "broke", t);
    s.complete("c", "C", t);
    s.start("f", t);
    auto two = s;
    s.complete("f", "F", t);
    CHECK(wf::rebuilds_the_same(s));  // one failure: its downstream is the same whatever the order
    two.fail("f", "broke too", t);
    CHECK_FALSE(wf::rebuilds_the_same(two));  // two failures: a rebuild orders them by their records' times

    wf::workflow_state cancelled(graph);
    cancelled.cancel("workflow cancelled", t);
    CHECK_FALSE(wf::rebuilds_the_same(cancelled));
}

TEST_CASE("workflow final state: once a record the rebuild needs has expired, the record is read from the "
          "records",
          "[workflow][runner][final_state]") {
    auto opts = oc::test::workflow_options();
    opts.failed_ttl = 200ms;  // the round-1 shard that failed goes first
    oc::coordinator c{opts};
    oc::test::workflow_probe probe;
    probe.attach(c);
    attach_fan(c);
    wf::workflow_runner runner(c, fast);
    auto h = runner.submit_workflow(fan_out());
    const auto kept = h.get();
    CHECK(kept.status == wf::workflow_status::completed);
    REQUIRE(oc::test::eventually([&] { return !c.get_status(wf::task_id(h.id(), "fan#2")); }, 10s));
    const auto now = runner.handle(h.id()).record();
    REQUIRE(now);
    check_same(*now, read_by_another_runner(c, {h.id()})[0]);
}

TEST_CASE("workflow final state: final_states is bounded in count and bytes", "[workflow][final_state]") {
    const auto t = std::chrono::system_clock::now();
    auto graph = std::make_shared<const wf::workflow_graph>(wf::expand(diamond()));
    const auto state = std::make_shared<const wf::final_state>(wf::final_state{wf::workflow_state(graph), t});
    wf::final_states f;
    f.put("w", state);
    CHECK(f.find("w") == state);
    const auto other = std::make_shared<const wf::final_state>(wf::final_state{wf::workflow_state(graph), t});
    f.erase("w", other.get());  // not that one: kept
    CHECK(f.find("w") == state);
    f.erase("w", state.get());
    CHECK(f.find("w") == nullptr);
    for (std::size_t i = 0; i < wf::final_states::capacity + 3; ++i) f.put("w" + std::to_string(i), state);
    CHECK(f.entries().size() == wf::final_states::capacity);
    CHECK(f.find("w0") == nullptr);  // the oldest went first
    CHECK(f.find("w" + std::to_string(wf::final_states::capacity + 2)) == state);
    f.erase("w5", nullptr);
    CHECK(f.find("w5") == nullptr);

    // A state whose results pass the byte bound is not kept; big ones push out older ones.
    wf::workflow_state big(graph);
    big.start("a", t);
    big.complete("a", std::string(wf::final_states::max_bytes / 2, 'x'), t);
    const auto big_state = std::make_shared<const wf::final_state>(wf::final_state{big, t});
    wf::final_states g;
    g.put("small", state);
    g.put("big1", big_state);
    g.put("big2", big_state);
    CHECK(g.find("small") == nullptr);
    CHECK(g.find("big1") == nullptr);
    CHECK(g.find("big2") == big_state);
    big.start("b", t);
    big.complete("b", std::string(wf::final_states::max_bytes, 'y'), t);
    g.put("huge", std::make_shared<const wf::final_state>(wf::final_state{std::move(big), t}));
    CHECK(g.find("huge") == nullptr);
}
