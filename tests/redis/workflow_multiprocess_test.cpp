// Workflows across processes:
// * the only worker process is SIGKILLed mid-graph; a second worker
//   process, started after, carries the workflow on (its driver's lease
//   expires and is taken over) and every task of the graph completes
//   exactly once;
// * of two worker processes, the one running a shard is SIGKILLed; the
//   shard is re-run by the other and the aggregator gets exactly one result
//   per shard.
#include <orchcore/coordinator.hpp>
#include <orchcore/redis/redis.hpp>
#include <orchcore/workflow/runner.hpp>

#include "redis/process_harness.hpp"
#include "redis/redis_server_fixture.hpp"
#include "support/sync_helpers.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#ifdef ORCHCORE_EXAMPLE_REDIS_WORKFLOW_NODE

namespace oc = orchcore;
namespace wf = orchcore::workflow;
namespace proc = orchcore::test::proc;
using namespace std::chrono_literals;

namespace {

/// A producer node on a fresh queue of the shared test server (no workers:
/// it drives nothing) and the arguments that start a worker process of
/// examples/redis_workflow_node on the same queue, with `task_ms` tasks.
struct producer_setup {
    std::shared_ptr<oc::redis_client> client;
    std::string queue;
    std::filesystem::path dir;
    std::vector<std::string> common;

    producer_setup(const std::string& name, const std::string& task_ms, const std::string& max_seconds) {
        auto& server = orchcore::test::shared_redis_server();
        client = server.client(name);
        queue = name + "-" + std::to_string(::getpid());
        dir = std::filesystem::temp_directory_path() / ("orchcore-" + name + "-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir);
        const std::string url = server.url() + "?prefix=" + client->options().prefix;
        common = {"--url", url, "--queue", queue, "--workers", "1", "--concurrency", "4",
                  "--task-ms", task_ms, "--lease-ms", "1000", "--max-seconds", max_seconds};
    }

    oc::coordinator_options options() const {
        oc::coordinator_options o;
        const auto tp = std::make_shared<oc::redis_transport>(client, queue);
        o.store = std::make_shared<oc::redis_task_store>(client, queue);
        o.registry = std::make_shared<oc::redis_worker_registry>(client, queue);
        o.policy = tp->options().policy;
        o.node = oc::node_options{.transport = tp, .id = "producer"};
        o.scaling.min_workers = o.scaling.max_workers = 0;
        return o;
    }
};

}  // namespace

TEST_CASE("redis/workflow: a worker process SIGKILLed mid-graph; another process completes the workflow",
          "[redis][workflow][multiprocess][failure]") {
    const producer_setup setup("wfkill", "60", "90");
    const auto& dir = setup.dir;
    const auto& common = setup.common;
    oc::coordinator producer{setup.options()};
    wf::workflow_runner runner(producer);  // drives nothing: it has no workers

    wf::workflow_spec spec{.name = "killed"};
    spec.tasks = {{.name = "fan", .type = "step", .shards = wf::shard_spec{.count = 6, .aggregator_type = "step"}}};
    for (int i = 0; i < 6; ++i) spec.stages.push_back({.name = "s" + std::to_string(i), .type = "step"});
    spec.stages[0].depends_on = {"fan"};

    auto first = proc::spawn(ORCHCORE_EXAMPLE_REDIS_WORKFLOW_NODE, proc::args_with(common, {"--node-id", "first"}), dir / "first.out");
    auto h = runner.submit_workflow(spec, {.id = "killed-1"});
    REQUIRE(orchcore::test::eventually([&] {
        const auto r = producer.get_task(wf::task_id(h.id(), "s1"));
        return r && r->status == oc::task_status::completed;
    }, 60s, 5ms));
    proc::kill_and_reap(first, SIGKILL);
    CHECK(h.status() == wf::workflow_status::running);

    auto second = proc::spawn(ORCHCORE_EXAMPLE_REDIS_WORKFLOW_NODE, proc::args_with(common, {"--node-id", "second"}), dir / "second.out");
    const auto rec = h.wait_for(60s);
    proc::kill_and_reap(second, SIGTERM);
    INFO(proc::file_text(dir / "second.out.err"));
    REQUIRE(rec);
    CHECK(rec->status == wf::workflow_status::completed);
    CHECK(rec->task("s5").result == "fan#0+fan#1+fan#2+fan#3+fan#4+fan#5+fan+s0+s1+s2+s3+s4+s5");
    for (const auto& t : rec->tasks) {
        INFO(t.name);
        const auto r = producer.get_task(t.id);
        REQUIRE(r);
        CHECK(r->status == oc::task_status::completed);  // completed once: the store's compare-and-set
    }
    const auto driver = producer.get_task("killed-1");
    REQUIRE(driver);
    CHECK(driver->status == oc::task_status::completed);
    std::filesystem::remove_all(dir);
}

namespace {

/// A shard of `fan` (of `count`) running on a worker of node `node`, if any.
std::optional<std::string> shard_running_on(oc::coordinator& c, const std::string& wf_id, std::uint32_t count,
                                            const std::string& node) {
    for (std::uint32_t i = 0; i < count; ++i) {
        const auto r = c.get_task(wf::task_id(wf_id, wf::shard_name("fan", i)));
        if (r && r->status == oc::task_status::running && r->worker_id.starts_with(node + "/")) return r->id;
    }
    return std::nullopt;
}

}  // namespace

TEST_CASE("redis/workflow: the worker process of a shard is SIGKILLed; the shard is re-run, one result per shard",
          "[redis][workflow][multiprocess][failure]") {
    // Shards long enough to be killed while running; 8 slots for 6 shards.
    const producer_setup setup("wfshard", "1500", "120");
    const auto& dir = setup.dir;
    const auto& common = setup.common;
    oc::coordinator producer{setup.options()};
    wf::workflow_runner runner(producer);

    constexpr std::uint32_t shards = 6;
    wf::workflow_spec spec{.name = "shard-killed"};
    spec.tasks = {{.name = "fan", .type = "step", .shards = wf::shard_spec{.count = shards, .aggregator_type = "step"}}};

    auto victim = proc::spawn(ORCHCORE_EXAMPLE_REDIS_WORKFLOW_NODE, proc::args_with(common, {"--node-id", "victim"}), dir / "victim.out");
    auto survivor = proc::spawn(ORCHCORE_EXAMPLE_REDIS_WORKFLOW_NODE, proc::args_with(common, {"--node-id", "survivor"}), dir / "survivor.out");
    auto h = runner.submit_workflow(spec, {.id = "shard-killed-1"});
    std::optional<std::string> killed_shard;
    REQUIRE(orchcore::test::eventually([&] {
        killed_shard = shard_running_on(producer, h.id(), shards, "victim");
        return killed_shard.has_value();
    }, 60s, 2ms));
    proc::kill_and_reap(victim, SIGKILL);

    const auto rec = h.wait_for(90s);
    proc::kill_and_reap(survivor, SIGTERM);
    INFO(proc::file_text(dir / "survivor.out.err"));
    REQUIRE(rec);
    CHECK(rec->status == wf::workflow_status::completed);
    // The aggregator joins its shards' results in shard order, then its name.
    std::string expected;
    for (std::uint32_t i = 0; i < shards; ++i) expected += wf::shard_name("fan", i) + "+";
    CHECK(rec->task("fan").result == expected + "fan");
    const auto re_run = producer.get_task(*killed_shard);
    REQUIRE(re_run);
    CHECK(re_run->status == oc::task_status::completed);
    CHECK(re_run->worker_losses >= 1);
    CHECK(re_run->worker_id.starts_with("survivor/"));
    std::filesystem::remove_all(dir);
}

#endif
