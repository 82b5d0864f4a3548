// The graph and coordinator of the workflow benchmarks (bench/workflow.cpp
// and bench/workflow_count/): kTasks no-op tasks made once with a fixed
// seed, task i depending on min(i, kDeps) distinct tasks drawn uniformly
// from the tasks before it (a random DAG, about 3 dependencies each), run
// by a coordinator with 2 workers of one slot each.
#pragma once

#include <orchcore/coordinator.hpp>
#include <orchcore/workflow/spec.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace orchcore_bench {

inline constexpr std::size_t kTasks = 10'000;
inline constexpr std::size_t kDeps = 3;
inline constexpr std::uint64_t kSeed = 20260101;

/// deps[i]: the tasks task i depends on (all before it).
inline std::vector<std::vector<std::size_t>> random_dag() {
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

inline const std::vector<std::vector<std::size_t>>& dag() {
    static const auto d = random_dag();
    return d;
}

/// "t<i>" (built by append: g++ 12 reports a false -Wrestrict on
/// "t" + std::to_string(i) at -O3).
inline std::string task_name(std::size_t i) {
    std::string name(1, 't');
    name.append(std::to_string(i));
    return name;
}

/// The graph as a workflow spec: task i is task_name(i), of type "noop".
inline orchcore::workflow::workflow_spec dag_spec() {
    orchcore::workflow::workflow_spec s;
    s.name = "bench-dag";
    s.tasks.reserve(kTasks);
    for (std::size_t i = 0; i < kTasks; ++i) {
        orchcore::workflow::task_spec t;
        t.name = task_name(i);
        t.type = "noop";
        for (const auto d : dag()[i]) t.depends_on.push_back(task_name(d));
        s.tasks.push_back(std::move(t));
    }
    return s;
}

inline orchcore::coordinator_options coordinator_opts() {
    orchcore::coordinator_options o;
    o.queue.capacity = 2 * kTasks;
    o.worker_template.max_concurrent = 1;
    o.scaling.min_workers = 2;
    o.scaling.max_workers = 2;
    // Records stay readable while the runner applies them.
    o.completed_ttl = std::chrono::seconds(60);
    return o;
}

}  // namespace orchcore_bench
