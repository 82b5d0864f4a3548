// Shard rounds on the in-process coordinator: a failed shard re-runs the
// whole fan-out as a new round, the aggregator sees exactly one complete
// round, rounds used up fail the parent, cancel stops the current round.
#include <orchcore/coordinator.hpp>
#include <orchcore/workflow/context.hpp>
#include <orchcore/workflow/runner.hpp>

#include <catch2/catch.hpp>

#include "support/sync_helpers.hpp"
#include "support/workflow_probe.hpp"

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace oc = orchcore;
namespace wf = orchcore::workflow;
using namespace std::chrono_literals;

namespace {

const wf::runner_options fast{.poll_interval = 5ms};

// The round of a shard from its task id ("<workflow>/<task>@r<round>" after round 1).
std::uint32_t round_of(const oc::task_context& ctx) {
    const std::string id = ctx.id();
    const auto at = id.rfind("@r");
    return at == std::string::npos ? 1 : static_cast<std::uint32_t>(std::stoul(id.substr(at + 2)));
}

// Shards of type "shard" fail as `fails(index, round)` says (else return
// "r<round>s<index>"); the aggregator "agg" keeps every result list it got.
struct fan_handlers {
    std::mutex m;
    std::vector<std::vector<std::string>> aggregated;
    std::map<std::string, int> attempts;  ///< per shard task id

    template <class Fails>
    void attach(oc::coordinator& c, Fails fails) {
        c.register_handler("shard", [this, fails](oc::task_context& ctx) -> std::string {
            const auto index = *wf::shard_index(ctx);
            const auto round = round_of(ctx);
            {
                std::lock_guard lk(m);
                ++attempts[std::string(ctx.id())];
            }
            if (fails(index, round)) throw std::runtime_error("shard " + std::to_string(index) + " broke");
            return "r" + std::to_string(round) + "s" + std::to_string(index);
        });
        c.register_handler("agg", [this](oc::task_context& ctx) {
            std::lock_guard lk(m);
            aggregated.push_back(wf::shard_results(ctx));
            return std::string("merged");
        });
    }
};

wf::workflow_spec fan_spec(std::uint32_t count, std::uint32_t rounds) {
    wf::workflow_spec spec{.name = "rounds"};
    spec.tasks = {{.name = "fan", .type = "shard", .options = {.retries = 1},
                   .shards = wf::shard_spec{.count = count, .aggregator_type = "agg", .rounds = rounds}},
                  {.name = "after", .type = "op", .depends_on = {"fan"}}};
    return spec;
}

}  // namespace

TEST_CASE("workflow runner: a shard that fails after its retries re-runs the whole fan-out; the aggregator "
          "sees round 2 only",
          "[workflow][runner][rounds]") {
    oc::coordinator c{oc::test::workflow_options()};
    fan_handlers fan;
    fan.attach(c, [](std::uint32_t index, std::uint32_t round) { return round == 1 && index == 3; });
    oc::test::workflow_probe probe;
    probe.attach(c);
    wf::workflow_runner runner(c, fast);
    auto h = runner.submit_workflow(fan_spec(6, 3));
    const auto r = h.get();
    CHECK(r.status == wf::workflow_status::completed);
    {
        std::lock_guard lk(fan.m);
        REQUIRE(fan.aggregated.size() == 1);
        CHECK(fan.aggregated[0] == std::vector<std::string>{"r2s0", "r2s1", "r2s2", "r2s3", "r2s4", "r2s5"});
        CHECK(fan.attempts[wf::task_id(h.id(), "fan#3")] == 2);  // its own retry first
        CHECK(fan.attempts[wf::task_id(h.id(), "fan#3", 2)] == 1);
    }
    CHECK(c.get_status(wf::task_id(h.id(), "fan#3")) == oc::task_status::failed);
    for (std::uint32_t i = 0; i < 6; ++i) {
        const auto name = "fan#" + std::to_string(i);
        INFO(name);
        CHECK(r.task(name).id == h.id() + "/" + name + "@r2");
        CHECK(r.task(name).result == "r2s" + std::to_string(i));
        CHECK(c.get_status(r.task(name).id) == oc::task_status::completed);
    }
    CHECK(r.task("fan").id == wf::task_id(h.id(), "fan"));
    CHECK(r.task("after").state == wf::task_state::completed);
    CHECK(probe.starts_of("after") == 1);
}

TEST_CASE("workflow runner: once shard rounds are used up the parent fails naming the shard and the round, "
          "and nothing downstream runs",
          "[workflow][runner][rounds]") {
    oc::coordinator c{oc::test::workflow_options()};
    fan_handlers fan;
    fan.attach(c, [](std::uint32_t index, std::uint32_t) { return index == 1; });
    oc::test::workflow_probe probe;
    probe.attach(c);
    wf::workflow_runner runner(c, fast);
    auto h = runner.submit_workflow(fan_spec(4, 2));
    CHECK_THROWS_WITH(h.get(), Catch::Contains("task 'fan#1' failed"));
    const auto r = h.wait();
    CHECK(r.status == wf::workflow_status::failed);
    CHECK(r.task("fan").state == wf::task_state::failed);
    CHECK(r.task("fan").reason == "dependency 'fan#1' failed in round 2 of 2");
    CHECK(r.task("fan").cause == "fan#1");
    CHECK(r.task("fan#1").id == wf::task_id(h.id(), "fan#1", 2));
    CHECK(r.task("after").state == wf::task_state::failed);
    CHECK(c.get_status(wf::task_id(h.id(), "fan#1")) == oc::task_status::failed);
    CHECK(c.get_status(wf::task_id(h.id(), "fan#1", 2)) == oc::task_status::failed);
    CHECK_FALSE(c.get_status(wf::task_id(h.id(), "fan#1", 3)));
    CHECK_FALSE(c.get_status(wf::task_id(h.id(), "fan")));  // the aggregator was never submitted
    std::lock_guard lk(fan.m);
    CHECK(fan.aggregated.empty());
    CHECK(probe.starts_of("after") == 0);
}

TEST_CASE("workflow runner: cancelling a workflow in a later shard round cancels that round",
          "[workflow][runner][rounds]") {
    oc::coordinator c{oc::test::workflow_options()};
    std::atomic<int> round2_started{0};
    c.register_handler("shard", [&](oc::task_context& ctx) -> std::string {
        if (round_of(ctx) == 1) {
            if (*wf::shard_index(ctx) == 0) throw oc::non_retryable_error("broke");
            return "ok";
        }
        ++round2_started;
        while (!ctx.cancellation_requested()) std::this_thread::sleep_for(2ms);
        ctx.throw_if_cancelled();
        return "late";
    });
    c.register_handler("agg", [](oc::task_context&) { return std::string("merged"); });
    oc::test::workflow_probe probe;
    probe.attach(c);
    wf::workflow_runner runner(c, fast);
    auto h = runner.submit_workflow(fan_spec(3, 3));
    REQUIRE(oc::test::eventually([&] { return round2_started == 3; }, 20s));
    CHECK(h.cancel());
    const auto r = h.wait();
    CHECK(r.status == wf::workflow_status::cancelled);
    for (const auto& name : {"fan#0", "fan#1", "fan#2"}) {
        INFO(name);
        CHECK(r.task(name).state == wf::task_state::cancelled);
        CHECK(r.task(name).id == wf::task_id(h.id(), name, 2));
        CHECK(oc::test::eventually(
            [&] { return c.get_status(wf::task_id(h.id(), name, 2)) == oc::task_status::cancelled; }, 10s));
    }
    CHECK_FALSE(c.get_status(wf::task_id(h.id(), "fan#0", 3)));
    CHECK(probe.starts_of("after") == 0);
}

// The runnable tasks go in chunks that grow from 32: with 3 free workers
// and a queue of 40, the first chunk of a fan-out of 200 is admitted and
// the queue fills in the second. The fan-out is not shrunk to what got in.
TEST_CASE("workflow runner: a shard refused admission in a later chunk fails the fan-out; no aggregator runs",
          "[workflow][runner][rounds]") {
    const auto rounds = GENERATE(1u, 2u);
    INFO("rounds " << rounds);
    auto o = oc::test::workflow_options();
    o.queue.capacity = 40;
    oc::coordinator c{o};
    std::atomic<bool> release{false};
    std::atomic<int> aggregated{0};
    c.register_handler("shard", [&](oc::task_context& ctx) -> std::string {
        while (!release && !ctx.cancellation_requested()) std::this_thread::sleep_for(2ms);
        return "ok";
    });
    c.register_handler("agg", [&](oc::task_context&) {
        ++aggregated;
        return std::string("merged");
    });
    // Refused shards of the last round: the fan-out's end is decided.
    std::atomic<int> refused_last{0};
    const std::string last = rounds == 1 ? "" : "@r2";
    auto sub = c.events().subscribe(oc::event_channel::tasks, [&](const oc::event& e) {
        if (e.kind == oc::event_kind::task_rejected && e.task_id.ends_with(last)) ++refused_last;
    });
    oc::test::workflow_probe probe;
    probe.attach(c);
    wf::workflow_runner runner(c, fast);
    auto h = runner.submit_workflow(fan_spec(200, rounds));
    REQUIRE(oc::test::eventually([&] { return refused_last > 0; }, 20s));
    release = true;  // the shards admitted may end now
    CHECK_THROWS(h.get());
    // The workflow's end is its driver's (a shard refused has no record).
    const auto driver = c.get_task(h.id());
    REQUIRE(driver);
    CHECK(driver->status == oc::task_status::failed);
    CHECK_THAT(driver->error, Catch::Contains("failed: not admitted: queue_full"));
    const auto at = driver->error.find("'fan#");
    REQUIRE(at != std::string::npos);
    if (rounds == 1) CHECK(std::stoul(driver->error.substr(at + 5)) >= 32);  // in the second chunk
    CHECK(c.get_status(wf::task_id(h.id(), "fan#0")));          // the first chunk was admitted
    CHECK_FALSE(c.get_status(wf::task_id(h.id(), "fan#199")));  // the last chunks never went
    CHECK_FALSE(c.get_status(wf::task_id(h.id(), "fan")));      // nor the aggregator
    CHECK(aggregated == 0);
    CHECK(probe.starts_of("after") == 0);
    // The record agrees: the workflow failed, and a shard that was never
    // submitted is not left pending.
    const auto r = h.wait();
    CHECK(r.status == wf::workflow_status::failed);
    CHECK(r.task("fan#199").state == wf::task_state::failed);
    CHECK_THAT(r.task("fan#199").reason, Catch::Contains("not admitted: queue_full"));
    CHECK(r.task("fan").state == wf::task_state::failed);
}
