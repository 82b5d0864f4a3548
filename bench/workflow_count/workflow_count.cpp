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
#include <orchcore/coordinator.hpp>
#include <orchcore/workflow/runner.hpp>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::size_t kTasks = 10'000;
constexpr std::size_t kDeps = 3;
constexpr std::uint64_t kSeed = 20260101;  // as bench/workflow.cpp

std::string task_name(std::size_t i) {
    std::string name(1, 't');
    name.append(std::to_string(i));
    return name;
}

orchcore::workflow::workflow_spec dag_spec() {
    std::mt19937_64 rng(kSeed);
    orchcore::workflow::workflow_spec s;
    s.name = "bench-dag";
    for (std::size_t i = 0; i < kTasks; ++i) {
        orchcore::workflow::task_spec t;
        t.name = task_name(i);
        t.type = "noop";
        if (i > 0) {
            std::uniform_int_distribution<std::size_t> pick(0, i - 1);
            std::vector<std::size_t> deps;
            while (deps.size() < std::min(i, kDeps)) {
                const auto d = pick(rng);
                if (std::find(deps.begin(), deps.end(), d) == deps.end()) deps.push_back(d);
            }
            for (const auto d : deps) t.depends_on.push_back(task_name(d));
        }
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
    o.completed_ttl = std::chrono::seconds(60);
    return o;
}

}  // namespace

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
