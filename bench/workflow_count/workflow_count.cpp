// Runs the graph of bench/workflow.cpp (or the tracked-task row) a given
// number of times, for counting instructions with callgrind: the count of
// N runs minus that of one run, over (N - 1) * 10,000 tasks, is the cost
// per task without the program's start, the one-off encoding of a new spec
// or the building of the graph (the coordinator's teardown of the records
// is counted, for both rows).
//
//   valgrind --tool=callgrind orchcore_workflow_count dag 1
//   valgrind --tool=callgrind orchcore_workflow_count dag 3
//   (and `tracked` for the tracked-task row)
#include "../workflow_graph.hpp"

#include <orchcore/coordinator.hpp>
#include <orchcore/workflow/runner.hpp>

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

using orchcore_bench::coordinator_opts;
using orchcore_bench::dag_spec;
using orchcore_bench::kTasks;

int main(int argc, char** argv) {
    const std::string_view mode = argc > 1 ? argv[1] : "";
    const int runs = argc > 2 ? std::stoi(argv[2]) : 0;
    if ((mode != "dag" && mode != "tracked") || runs < 1) {
        std::fprintf(stderr, "usage: orchcore_workflow_count dag|tracked <runs>\n");
        return 2;
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
