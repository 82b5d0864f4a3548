// A fan-out workflow on Redis beside the same number of independent tasks,
// on one private redis-server (started on a free 127.0.0.1 port, the test
// fixture's approach) with two worker processes.
//
// A plain program (each phase runs a fixed amount of work). Before any
// thread exists it forks two worker processes: each a distributed-mode
// coordinator with one worker of --slots slots, a workflow_runner (so
// either may drive a workflow) and no-op handlers. The parent is the
// producer: a coordinator with no workers, and a runner to submit with.
// Each run, on a fresh queue:
//
//   tasks     --n independent no-op tasks: submit_many (chunks of 1000),
//             then wait_for on every handle; seconds until the last ended
//   fanout    one workflow: a task sharded --n ways (no-op shards, a no-op
//             aggregator); submit_workflow, then get(); seconds until the
//             workflow completed (driver start, the shards, the aggregator,
//             the driver's end)
//
// and prints one JSON line per measurement, then the medians and the
// fanout/tasks ratio.
//
// Usage: orchcore_bench_redis_workflow [--n 1000] [--slots 4] [--runs 5]
// (arguments starting with --benchmark_ are ignored, for ./build.sh bench).
#include <orchcore/coordinator.hpp>
#include <orchcore/redis/redis.hpp>
#include <orchcore/workflow/runner.hpp>

#include "../tests/redis/redis_server_fixture.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace {

using namespace orchcore;
namespace wf = orchcore::workflow;
using clk = std::chrono::steady_clock;

struct config {
    std::size_t n = 1000;
    std::size_t slots = 4;
    int runs = 5;
};

std::shared_ptr<redis_client> make_client(const test::redis_server& server, std::size_t pool) {
    auto o = server.options("wfbench");
    o.pool_size = pool;
    o.command_timeout = std::chrono::milliseconds(30'000);
    return std::make_shared<redis_client>(o);
}

coordinator_options node_opts(const test::redis_server& server, const std::string& queue, std::size_t slots,
                              const std::string& name) {
    auto client = make_client(server, slots + 4);
    coordinator_options o;
    o.store = std::make_shared<redis_task_store>(client, queue);
    o.registry = std::make_shared<redis_worker_registry>(client, queue);
    o.scaling.min_workers = o.scaling.max_workers = slots > 0 ? 1 : 0;
    o.worker_template.max_concurrent = slots > 0 ? slots : 1;
    o.node = orchcore::node_options{
        .transport = std::make_shared<redis_transport>(
            client, queue, transport_options{.policy = queue_policy::reject_new, .capacity = 1'000'000}),
        .id = name,
        .lease_duration = std::chrono::seconds(60)};
    return o;
}

/// A worker process: serves every run's queue until killed.
[[noreturn]] void worker_process(const test::redis_server& server, const config& c, int index) {
    int rc = 0;
    try {
        std::vector<std::unique_ptr<coordinator>> nodes;
        std::vector<std::unique_ptr<wf::workflow_runner>> runners;
        for (int run = 1; run <= c.runs; ++run) {
            nodes.push_back(std::make_unique<coordinator>(
                node_opts(server, "wfq" + std::to_string(run), c.slots, "w" + std::to_string(index))));
            nodes.back()->register_handler("noop", [](task_context&) { return std::string{}; });
            runners.push_back(std::make_unique<wf::workflow_runner>(*nodes.back()));
        }
        for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "worker %d: %s\n", index, e.what());
        rc = 1;
    }
    std::fflush(nullptr);
    ::_exit(rc);
}

double seconds_since(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }

double run_tasks(coordinator& node, std::size_t n) {
    const auto t0 = clk::now();
    std::vector<task_handle> handles;
    for (std::size_t i = 0; i < n;) {
        std::vector<task_request> chunk;
        for (std::size_t k = 0; k < 1000 && i < n; ++k, ++i) chunk.push_back({"noop", std::string{}, {}});
        for (auto& r : node.submit_many(std::move(chunk))) {
            if (!r) throw std::runtime_error("refused: " + std::string(r.admission.detail));
            handles.push_back(std::move(r.handle));
        }
    }
    for (const auto& h : handles)
        if (!h.wait_for(std::chrono::minutes(2))) throw std::runtime_error("a task did not end within 2 minutes");
    return seconds_since(t0);
}

double ms_between(std::chrono::system_clock::time_point a, std::optional<std::chrono::system_clock::time_point> b) {
    return b ? std::chrono::duration<double, std::milli>(*b - a).count() : -1.0;
}

/// Where the fan-out's time went, from the records (ms since the driver's
/// record was created): the driver's first start, the first shard's start,
/// the last shard's end, the aggregator's start and end, the driver's end.
void print_phases(coordinator& node, const std::string& id, std::size_t n) {
    std::vector<std::string> ids;
    for (std::size_t i = 0; i < n; ++i) ids.push_back(wf::task_id(id, wf::shard_name("fan", static_cast<std::uint32_t>(i))));
    ids.push_back(wf::task_id(id, "fan"));
    ids.push_back(id);
    const auto recs = node.get_tasks(ids);
    const auto& driver = *recs.back();
    const auto& agg = *recs[n];
    auto first_start = std::chrono::system_clock::time_point::max();
    auto last_end = std::chrono::system_clock::time_point::min();
    for (std::size_t i = 0; i < n; ++i) {
        first_start = std::min(first_start, recs[i]->started_at.value_or(first_start));
        last_end = std::max(last_end, recs[i]->finished_at.value_or(last_end));
    }
    const auto t0 = driver.created_at;
    std::printf("{\"phases_ms\":{\"driver_start\":%.1f,\"first_shard_start\":%.1f,\"last_shard_end\":%.1f,"
                "\"aggregator_start\":%.1f,\"aggregator_end\":%.1f,\"driver_end\":%.1f}}\n",
                ms_between(t0, driver.started_at), ms_between(t0, first_start), ms_between(t0, last_end),
                ms_between(t0, agg.started_at), ms_between(t0, agg.finished_at), ms_between(t0, driver.finished_at));
}

double run_fanout(coordinator& node, wf::workflow_runner& runner, std::size_t n) {
    wf::workflow_spec spec{.name = "fanout"};
    spec.tasks = {{.name = "fan",
                   .type = "noop",
                   .shards = wf::shard_spec{.count = static_cast<std::uint32_t>(n), .aggregator_type = "noop"}}};
    const auto t0 = clk::now();
    auto h = runner.submit_workflow(spec);
    const auto rec = h.get();
    const double s = seconds_since(t0);
    if (rec.tasks.size() != n + 1) throw std::runtime_error("the workflow did not run every shard");
    print_phases(node, h.id(), n);
    return s;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

config parse(int argc, char** argv) {
    config c;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a.starts_with("--benchmark_")) continue;
        if (i + 1 >= argc) throw std::runtime_error("missing value for " + a);
        const auto v = std::stoul(argv[++i]);
        if (a == "--n" && v > 0 && v <= 1024) c.n = v;
        else if (a == "--slots" && v > 0) c.slots = v;
        else if (a == "--runs" && v > 0) c.runs = static_cast<int>(v);
        else throw std::runtime_error("bad argument " + a + " (--n 1..1024, --slots >= 1, --runs >= 1)");
    }
    return c;
}

}  // namespace

int main(int argc, char** argv) try {
    const auto c = parse(argc, argv);
    test::redis_server server;
    std::printf("{\"server_port\":%d,\"n\":%zu,\"slots\":%zu,\"runs\":%d}\n", server.port(), c.n, c.slots, c.runs);
    std::fflush(nullptr);
    std::vector<pid_t> workers;
    for (int i = 0; i < 2; ++i) {
        const pid_t pid = ::fork();
        if (pid < 0) throw std::runtime_error("fork failed");
        if (pid == 0) worker_process(server, c, i);
        workers.push_back(pid);
    }
    std::vector<double> tasks, fanout;
    for (int run = 1; run <= c.runs; ++run) {
        coordinator producer{node_opts(server, "wfq" + std::to_string(run), 0, "producer")};
        wf::workflow_runner runner(producer);
        tasks.push_back(run_tasks(producer, c.n));
        fanout.push_back(run_fanout(producer, runner, c.n));
        std::printf("{\"run\":%d,\"tasks_s\":%.4f,\"fanout_s\":%.4f}\n", run, tasks.back(), fanout.back());
        std::fflush(nullptr);
    }
    for (const auto pid : workers) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
    }
    const double t = median(tasks), f = median(fanout);
    std::printf("{\"median_tasks_s\":%.4f,\"median_fanout_s\":%.4f,\"ratio\":%.2f}\n", t, f, f / t);
    std::printf("fan-out of %zu shards / %zu independent tasks: %.2fx (target <= 1.5x)\n", c.n, c.n, f / t);
    return 0;
} catch (const std::exception& e) {
    std::cerr << "orchcore_bench_redis_workflow: " << e.what() << "\n";
    return 1;
}
