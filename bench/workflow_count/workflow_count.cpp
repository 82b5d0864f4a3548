// Runs the graph of bench/workflow.cpp a given number of times, by the
// workflow runner (`dag`), as independent tracked tasks (`tracked`) or as
// oneTBB's flow graph (`tbb`, bench/workflow_tbb.hpp: the graph made and
// run in each run, as the workflow runner sets up its workflow in each
// run; `tbb-run`: made once, only run), for counting instructions with
// callgrind: the count of N runs minus that of one run, over
// (N - 1) * 10,000 tasks, is the cost per task without the program's
// start, the one-off encoding of a new spec or the making of dag() (the
// coordinator's teardown of the records is counted, for `dag` and
// `tracked`). Every mode runs on 2 threads: the coordinator's 2 workers, or
// a task arena of 2 (the caller and one TBB worker).
//
//   valgrind --tool=callgrind orchcore_workflow_count dag 1
//   valgrind --tool=callgrind orchcore_workflow_count dag 3
//   (and `tracked`, `tbb`, `tbb-run` for the other rows)
#include "../workflow_graph.hpp"
#include "../workflow_tbb.hpp"

#include <orchcore/coordinator.hpp>
#include <orchcore/workflow/runner.hpp>

#include <oneapi/tbb/task_arena.h>

#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

using orchcore_bench::coordinator_opts;
using orchcore_bench::dag_spec;
using orchcore_bench::kTasks;
using orchcore_bench::tbb_flow_dag;
using orchcore_bench::tbb_noop;

namespace {

/// The flow graph in a task arena of 2 threads, made in each run
/// (`rebuild`) or once.
void run_tbb(int runs, bool rebuild) {
    tbb::task_arena arena(2);
    arena.execute([&] {
        std::optional<tbb_flow_dag<tbb_noop>> flow;
        for (int k = 0; k < runs; ++k) {
            if (rebuild || !flow) flow.emplace(tbb_noop{});
            flow->run();
        }
    });
}

}  // namespace

int main(int argc, char** argv) {
    const std::string_view mode = argc > 1 ? argv[1] : "";
    const int runs = argc > 2 ? std::stoi(argv[2]) : 0;
    const bool tbb = mode == "tbb" || mode == "tbb-run";
    if ((mode != "dag" && mode != "tracked" && !tbb) || runs < 1) {
        std::fprintf(stderr, "usage: orchcore_workflow_count dag|tracked|tbb|tbb-run <runs>\n");
        return 2;
    }
    if (tbb) {
        run_tbb(runs, mode == "tbb");
        return 0;
    }
    orchcore::coordinator c{coordinator_opts()};
    c.register_handler("noop", [](orchcore::task_context&) { return std::string{}; });
    if (mode == "dag") {
        orchcore::workflow::workflow_runner runner(c);
        const auto spec = dag_spec();
        for (int k = 0; k < runs; ++k)
            if (runner.submit_workflow(spec).get().tasks.size() != kTasks) return 1;
    } else {
        std::vector<orchcore::task_handle> handles;
        for (int k = 0; k < runs; ++k) {
            handles.clear();
            for (std::size_t i = 0; i < kTasks; ++i) handles.push_back(c.submit_async("noop", std::string{}).handle);
            for (const auto& h : handles) (void)h.get();
        }
    }
    c.stop(orchcore::stop_mode::graceful);
    return 0;
}
