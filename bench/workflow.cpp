// The workflow runner's overhead per task, in one process.
//
// One graph, made once with a fixed seed: kTasks no-op tasks, task i
// depending on min(i, 3) distinct tasks drawn uniformly from the tasks
// before it (a random DAG, about 3 dependencies each). Every row runs on
// two executing threads and reports ns_per_task (wall time of one
// iteration / kTasks):
//
//   BM_WorkflowDag    orchcore::workflow::workflow_runner on a coordinator
//                     with 2 workers (max_concurrent 1): submit_workflow,
//                     then handle.get() until the workflow completed.
//   BM_TrackedTasks   the same coordinator running kTasks independent
//                     tracked tasks of the same handler: submit_async each,
//                     keep the handle, then get() on each. The floor a
//                     workflow task is measured against (no dependencies).
//   BM_TaskflowDag    tf::Taskflow with the same graph on tf::Executor(2),
//                     when CMake is pointed at Taskflow's headers
//                     (ORCHCORE_TASKFLOW_INCLUDE_DIR, bench/CMakeLists.txt);
//                     otherwise the row says so and is skipped.
//
// After the rows, the program prints workflow/tracked (and workflow/
// Taskflow) ratios of the per-task times (the best iteration of each).
#include <orchcore/coordinator.hpp>
#include <orchcore/workflow/runner.hpp>

#include <benchmark/benchmark.h>

#ifdef ORCHCORE_BENCH_HAVE_TASKFLOW
#include <taskflow/taskflow.hpp>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr std::size_t kTasks = 10'000;
constexpr std::size_t kDeps = 3;
constexpr std::uint64_t kSeed = 20260101;

using steady = std::chrono::steady_clock;

/// deps[i]: the tasks task i depends on (all before it).
std::vector<std::vector<std::size_t>> random_dag() {
    std::mt19937_64 rng(kSeed);
    std::vector<std::vector<std::size_t>> deps(kTasks);
    for (std::size_t i = 1; i < kTasks; ++i) {
        std::uniform_int_distribution<std::size_t> pick(0, i - 1);
        while (deps[i].size() < std::min(i, kDeps)) {
            const auto d = pick(rng);
            if (std::find(deps[i].begin(), deps[i].end(), d) == deps[i].end()) deps[i].push_back(d);
        }
    }
    return deps;
}

const std::vector<std::vector<std::size_t>>& dag() {
    static const auto d = random_dag();
    return d;
}

orchcore::workflow::workflow_spec dag_spec() {
    orchcore::workflow::workflow_spec s;
    s.name = "bench-dag";
    s.tasks.reserve(kTasks);
    for (std::size_t i = 0; i < kTasks; ++i) {
        orchcore::workflow::task_spec t;
        t.name = "t" + std::to_string(i);
        t.type = "noop";
        for (const auto d : dag()[i]) t.depends_on.push_back("t" + std::to_string(d));
        s.tasks.push_back(std::move(t));
    }
    return s;
}

orchcore::coordinator_options coordinator_opts() {
    orchcore::coordinator_options o;
    o.queue.capacity = 2 * kTasks;
    o.worker_template.max_concurrent = 1;
    o.scaling.min_workers = 2;
    o.scaling.max_workers = 2;
    // Records stay readable while the runner applies them.
    o.completed_ttl = std::chrono::seconds(60);
    return o;
}

/// The best per-task time of each row, for the ratios printed at the end.
struct best_times {
    double workflow = 0, tracked = 0, taskflow = 0;
} best;

double per_task_ns(steady::duration d) {
    return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()) / kTasks;
}

void record(benchmark::State& state, double& slot, double best_ns) {
    slot = best_ns;
    state.counters["ns_per_task"] = best_ns;
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kTasks));
}

void BM_WorkflowDag(benchmark::State& state) {
    orchcore::coordinator c{coordinator_opts()};
    c.register_handler("noop", [](orchcore::task_context&) { return std::string{}; });
    orchcore::workflow::workflow_runner runner(c);
    const auto spec = dag_spec();
    double best_ns = std::numeric_limits<double>::max();
    for (auto _ : state) {
        const auto t0 = steady::now();
        const auto rec = runner.submit_workflow(spec).get();
        best_ns = std::min(best_ns, per_task_ns(steady::now() - t0));
        if (rec.tasks.size() != kTasks) state.SkipWithError("the workflow did not run every task");
    }
    record(state, best.workflow, best_ns);
    c.stop(orchcore::stop_mode::graceful);
}

void BM_TrackedTasks(benchmark::State& state) {
    orchcore::coordinator c{coordinator_opts()};
    c.register_handler("noop", [](orchcore::task_context&) { return std::string{}; });
    std::vector<orchcore::task_handle> handles;
    handles.reserve(kTasks);
    double best_ns = std::numeric_limits<double>::max();
    for (auto _ : state) {
        const auto t0 = steady::now();
        handles.clear();
        for (std::size_t i = 0; i < kTasks; ++i) handles.push_back(c.submit_async("noop", std::string{}).handle);
        for (const auto& h : handles) benchmark::DoNotOptimize(h.get());
        best_ns = std::min(best_ns, per_task_ns(steady::now() - t0));
    }
    record(state, best.tracked, best_ns);
    c.stop(orchcore::stop_mode::graceful);
}

void BM_TaskflowDag(benchmark::State& state) {
#ifdef ORCHCORE_BENCH_HAVE_TASKFLOW
    tf::Executor executor(2);
    double best_ns = std::numeric_limits<double>::max();
    for (auto _ : state) {
        const auto t0 = steady::now();
        tf::Taskflow flow;
        std::vector<tf::Task> tasks;
        tasks.reserve(kTasks);
        for (std::size_t i = 0; i < kTasks; ++i) tasks.push_back(flow.emplace([] {}));
        for (std::size_t i = 0; i < kTasks; ++i)
            for (const auto d : dag()[i]) tasks[d].precede(tasks[i]);
        executor.run(flow).wait();
        best_ns = std::min(best_ns, per_task_ns(steady::now() - t0));
    }
    record(state, best.taskflow, best_ns);
#else
    state.SkipWithError(
        "Taskflow not configured: set ORCHCORE_TASKFLOW_INCLUDE_DIR to the directory holding "
        "taskflow/taskflow.hpp (bench/CMakeLists.txt)");
    for (auto _ : state) {
    }
#endif
}

BENCHMARK(BM_WorkflowDag)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_TrackedTasks)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_TaskflowDag)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    if (best.workflow > 0 && best.tracked > 0) {
        std::printf("workflow task / tracked task: %.2fx (%.0f ns vs %.0f ns per task; target <= 1.5x)\n",
                    best.workflow / best.tracked, best.workflow, best.tracked);
    }
    if (best.workflow > 0 && best.taskflow > 0) {
        std::printf("workflow task / Taskflow task: %.2fx (%.0f ns vs %.0f ns per task)\n",
                    best.workflow / best.taskflow, best.workflow, best.taskflow);
    }
    return 0;
}
