// The workflow runner's overhead per task, in one process.
//
// One graph (bench/workflow_graph.hpp), made once with a fixed seed:
// kTasks no-op tasks, task i depending on min(i, 3) distinct tasks drawn
// uniformly from the tasks before it (a random DAG, about 3 dependencies
// each). Every row runs on two executing threads and reports ns_per_task
// (wall time of one iteration / kTasks):
//
//   BM_WorkflowDag    orchcore::workflow::workflow_runner on a coordinator
//                     with 2 workers (max_concurrent 1): submit_workflow,
//                     then handle.get() until the workflow completed. Each
//                     iteration sets up its workflow (the state of every
//                     task, a request per task) and tears it down; the
//                     spec is made once and its expanded graph is cached
//                     after the first iteration.
//   BM_TrackedTasks   the same coordinator running kTasks independent
//                     tracked tasks of the same handler: submit_async each,
//                     keep the handle, then get() on each. The floor a
//                     workflow task is measured against (no dependencies).
//   BM_TaskflowDag    tf::Taskflow with the same graph on tf::Executor(2),
//                     when CMake is pointed at Taskflow's headers
//                     (ORCHCORE_TASKFLOW_INCLUDE_DIR, bench/CMakeLists.txt);
//                     otherwise the row says so and is skipped.
//   BM_TbbFlowDag     oneTBB's flow graph with the same graph
//                     (bench/workflow_tbb.hpp: one continue_node per task,
//                     doing nothing, an edge from each dependency, the
//                     sources triggered with try_put, then wait_for_all),
//                     in a tbb::task_arena of 2 threads (the caller and one
//                     TBB worker). Each iteration makes the flow graph,
//                     runs it and destroys it, as the workflow row sets up
//                     and tears down its workflow in each iteration.
//   BM_TbbFlowDagRunOnly  the same flow graph made once, before the timed
//                     iterations, each of which only runs it: how much of
//                     BM_TbbFlowDag is making the graph.
//
// Each row also reports cpu_ns_per_task: the CPU time of the whole process
// (every thread: CLOCK_PROCESS_CPUTIME_ID) of the iteration / kTasks, the
// firmer figure on a loaded machine, where wall time measures the
// scheduler more than the code; and switches_per_task: the context
// switches of the process (getrusage, voluntary and involuntary) of the
// iteration / kTasks.
//
// After the rows, the program prints workflow/tracked, workflow/Taskflow
// and workflow/TBB flow graph (both TBB rows) ratios of the per-task
// times, of the CPU and of the context switches per task (the best
// iteration of each row over all its repetitions; each figure on its own).
#include <orchcore/coordinator.hpp>
#include "workflow_graph.hpp"
#include "workflow_tbb.hpp"

#include <orchcore/workflow/runner.hpp>

#include <benchmark/benchmark.h>
#include <oneapi/tbb/task_arena.h>

#ifdef ORCHCORE_BENCH_HAVE_TASKFLOW
#include <taskflow/taskflow.hpp>
#endif

#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace {

using orchcore_bench::coordinator_opts;
using orchcore_bench::dag;
using orchcore_bench::dag_spec;
using orchcore_bench::kTasks;
using orchcore_bench::tbb_flow_dag;
using orchcore_bench::tbb_noop;
using steady = std::chrono::steady_clock;

/// The best per-task wall and CPU time of each row, for the ratios
/// printed at the end.
struct per_task {
    double wall = 0, cpu = 0, switches = 0;
};
struct best_times {
    per_task workflow{}, tracked{}, taskflow{}, tbb_flow{}, tbb_flow_run_only{};
} best;

double per_task_ns(steady::duration d) {
    return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()) / kTasks;
}

/// CPU time of every thread of the process.
double process_cpu_ns() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

/// Context switches of the process so far.
double process_switches() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_nvcsw + u.ru_nivcsw);
}

/// Times one iteration, keeping the best wall and CPU time and the fewest
/// context switches per task.
class iteration_timer {
public:
    explicit iteration_timer(per_task& best_so_far) : best_(best_so_far) {}
    ~iteration_timer() {
        best_.wall = std::min(best_.wall, per_task_ns(steady::now() - wall0_));
        best_.cpu = std::min(best_.cpu, (process_cpu_ns() - cpu0_) / kTasks);
        best_.switches = std::min(best_.switches, (process_switches() - switches0_) / kTasks);
    }
    iteration_timer(const iteration_timer&) = delete;
    iteration_timer& operator=(const iteration_timer&) = delete;

private:
    per_task& best_;
    steady::time_point wall0_ = steady::now();
    double cpu0_ = process_cpu_ns();
    double switches0_ = process_switches();
};

per_task unset() {
    constexpr auto none = std::numeric_limits<double>::max();
    return {none, none, none};
}

/// Reports the row's best iteration and keeps, in `slot`, the best over
/// every repetition of the row (zero before the first).
void record(benchmark::State& state, per_task& slot, per_task best_row) {
    if (slot.wall <= 0) slot = best_row;
    slot = {std::min(slot.wall, best_row.wall), std::min(slot.cpu, best_row.cpu),
            std::min(slot.switches, best_row.switches)};
    state.counters["ns_per_task"] = best_row.wall;
    state.counters["cpu_ns_per_task"] = best_row.cpu;
    state.counters["switches_per_task"] = best_row.switches;
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kTasks));
}

void BM_WorkflowDag(benchmark::State& state) {
    orchcore::coordinator c{coordinator_opts()};
    c.register_handler("noop", [](orchcore::task_context&) { return std::string{}; });
    orchcore::workflow::workflow_runner runner(c);
    const auto spec = dag_spec();
    auto best_row = unset();
    for (auto _ : state) {
        std::size_t ran = 0;
        {
            iteration_timer timer(best_row);
            ran = runner.submit_workflow(spec).get().tasks.size();
        }
        if (ran != kTasks) state.SkipWithError("the workflow did not run every task");
    }
    record(state, best.workflow, best_row);
    c.stop(orchcore::stop_mode::graceful);
}

void BM_TrackedTasks(benchmark::State& state) {
    orchcore::coordinator c{coordinator_opts()};
    c.register_handler("noop", [](orchcore::task_context&) { return std::string{}; });
    std::vector<orchcore::task_handle> handles;
    handles.reserve(kTasks);
    auto best_row = unset();
    for (auto _ : state) {
        iteration_timer timer(best_row);
        handles.clear();
        for (std::size_t i = 0; i < kTasks; ++i) handles.push_back(c.submit_async("noop", std::string{}).handle);
        for (const auto& h : handles) benchmark::DoNotOptimize(h.get());
    }
    record(state, best.tracked, best_row);
    c.stop(orchcore::stop_mode::graceful);
}

void BM_TaskflowDag(benchmark::State& state) {
#ifdef ORCHCORE_BENCH_HAVE_TASKFLOW
    tf::Executor executor(2);
    auto best_row = unset();
    for (auto _ : state) {
        iteration_timer timer(best_row);
        tf::Taskflow flow;
        std::vector<tf::Task> tasks;
        tasks.reserve(kTasks);
        for (std::size_t i = 0; i < kTasks; ++i) tasks.push_back(flow.emplace([] {}));
        for (std::size_t i = 0; i < kTasks; ++i)
            for (const auto d : dag()[i]) tasks[d].precede(tasks[i]);
        executor.run(flow).wait();
    }
    record(state, best.taskflow, best_row);
#else
    state.SkipWithError(
        "Taskflow not configured: set ORCHCORE_TASKFLOW_INCLUDE_DIR to the directory holding "
        "taskflow/taskflow.hpp (bench/CMakeLists.txt)");
    for (auto _ : state) {
    }
#endif
}

/// The flow graph's threads: the caller and one worker, as the
/// coordinator's 2 workers.
constexpr int kTbbThreads = 2;

/// Whether the flow graph runs every task once per run; skips the row if not.
bool tbb_flow_checked(benchmark::State& state, tbb::task_arena& arena) {
    bool ok = false;
    arena.execute([&] { ok = orchcore_bench::tbb_flow_runs_every_task(); });
    if (!ok) state.SkipWithError("the flow graph did not run every task once");
    return ok;
}

void BM_TbbFlowDag(benchmark::State& state) {
    tbb::task_arena arena(kTbbThreads);
    if (!tbb_flow_checked(state, arena)) return;
    auto best_row = unset();
    for (auto _ : state) {
        iteration_timer timer(best_row);
        arena.execute([] {
            tbb_flow_dag flow{tbb_noop{}};
            flow.run();
        });
    }
    record(state, best.tbb_flow, best_row);
}

void BM_TbbFlowDagRunOnly(benchmark::State& state) {
    tbb::task_arena arena(kTbbThreads);
    if (!tbb_flow_checked(state, arena)) return;
    std::optional<tbb_flow_dag<tbb_noop>> flow;
    arena.execute([&] { flow.emplace(tbb_noop{}); });
    auto best_row = unset();
    for (auto _ : state) {
        iteration_timer timer(best_row);
        arena.execute([&] { flow->run(); });
    }
    record(state, best.tbb_flow_run_only, best_row);
    arena.execute([&] { flow.reset(); });
}

BENCHMARK(BM_WorkflowDag)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_TrackedTasks)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_TaskflowDag)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_TbbFlowDag)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_TbbFlowDagRunOnly)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    const auto ratio = [](const char* what, per_task a, per_task b, const char* note) {
        if (a.wall <= 0 || b.wall <= 0) return;
        std::printf("%s: %.2fx wall (%.0f ns vs %.0f ns per task), %.2fx CPU (%.0f ns vs %.0f ns per task), "
                    "%.3f vs %.3f context switches per task%s\n",
                    what, a.wall / b.wall, a.wall, b.wall, a.cpu / b.cpu, a.cpu, b.cpu, a.switches, b.switches, note);
    };
    ratio("workflow task / tracked task", best.workflow, best.tracked, "; target <= 1.5x");
    ratio("workflow task / Taskflow task", best.workflow, best.taskflow, "");
    ratio("workflow task / TBB flow graph task", best.workflow, best.tbb_flow, "; graph built in each iteration");
    ratio("workflow task / TBB flow graph task", best.workflow, best.tbb_flow_run_only, "; graph built once, run only");
    return 0;
}
