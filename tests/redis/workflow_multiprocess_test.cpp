// A workflow across processes: the only worker process is SIGKILLed
// mid-graph; a second worker process, started after, carries the workflow
// on (its driver's lease expires and is taken over) and every task of the
// graph completes exactly once.
#include <orchcore/coordinator.hpp>
#include <orchcore/redis/redis.hpp>
#include <orchcore/workflow/runner.hpp>

#include "redis/process_harness.hpp"
#include "redis/redis_server_fixture.hpp"
#include "support/sync_helpers.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#ifdef ORCHCORE_EXAMPLE_REDIS_WORKFLOW_NODE

namespace oc = orchcore;
namespace wf = orchcore::workflow;
namespace proc = orchcore::test::proc;
using namespace std::chrono_literals;

TEST_CASE("redis/workflow: a worker process SIGKILLed mid-graph; another process completes the workflow",
          "[redis][workflow][multiprocess][failure]") {
    auto& server = orchcore::test::shared_redis_server();
    auto client = server.client("wfkill");
    const std::string queue = "wfkill-" + std::to_string(::getpid());
    const auto dir = std::filesystem::temp_directory_path() / ("orchcore-wfkill-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const std::string url = server.url() + "?prefix=" + client->options().prefix;
    const std::vector<std::string> common{"--url", url, "--queue", queue, "--workers", "1",
                                          "--concurrency", "4", "--task-ms", "60", "--lease-ms", "1000",
                                          "--max-seconds", "90"};

    oc::coordinator_options o;
    o.transport = std::make_shared<oc::redis_transport>(client, queue);
    o.store = std::make_shared<oc::redis_task_store>(client, queue);
    o.registry = std::make_shared<oc::redis_worker_registry>(client, queue);
    o.policy = o.transport->options().policy;
    o.node_id = "producer";
    o.scaling.min_workers = o.scaling.max_workers = 0;
    oc::coordinator producer{o};
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

#endif
