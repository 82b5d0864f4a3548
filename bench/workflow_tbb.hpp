// The graph of bench/workflow_graph.hpp as a oneTBB flow graph, the peer of
// the workflow benchmarks (bench/workflow.cpp and bench/workflow_count/):
// one continue_node<continue_msg> per task, an edge from each of its
// dependencies, the tasks without dependencies triggered with try_put.
//
// A flow graph runs in the task arena current when it is made (its own
// threads plus the caller's): make and run it inside arena.execute.
#pragma once

#include "workflow_graph.hpp"

#include <oneapi/tbb/flow_graph.h>

#include <atomic>
#include <cstddef>
#include <deque>
#include <vector>

namespace orchcore_bench {

/// What a task of the flow graph does: nothing.
struct tbb_noop {
    tbb::flow::continue_msg operator()(const tbb::flow::continue_msg&) const { return {}; }
};

/// dag() as a flow graph whose nodes run `Body`. A continue_node fires once
/// it has had a message from each predecessor and then counts again from
/// zero, so one graph can be run any number of times.
template <class Body>
class tbb_flow_dag {
public:
    explicit tbb_flow_dag(Body body) {
        const auto& deps = dag();
        for (std::size_t i = 0; i < kTasks; ++i) {
            nodes_.emplace_back(graph_, body);
            for (const auto d : deps[i]) tbb::flow::make_edge(nodes_[d], nodes_[i]);
            if (deps[i].empty()) sources_.push_back(i);
        }
    }
    tbb_flow_dag(const tbb_flow_dag&) = delete;
    tbb_flow_dag& operator=(const tbb_flow_dag&) = delete;

    /// Runs every task once; returns when all have run.
    void run() {
        for (const auto s : sources_) nodes_[s].try_put(tbb::flow::continue_msg{});
        graph_.wait_for_all();
    }

private:
    tbb::flow::graph graph_;  // declared first: the nodes go before it
    std::deque<tbb::flow::continue_node<tbb::flow::continue_msg>> nodes_;  // never moved
    std::vector<std::size_t> sources_;
};

/// Whether the flow graph runs every task exactly once per run (two runs of
/// a graph whose tasks count themselves). Call inside the arena.
inline bool tbb_flow_runs_every_task() {
    std::atomic<std::size_t> ran{0};
    tbb_flow_dag flow([&ran](const tbb::flow::continue_msg&) {
        ran.fetch_add(1, std::memory_order_relaxed);
        return tbb::flow::continue_msg{};
    });
    flow.run();
    const bool once = ran.load() == kTasks;
    flow.run();
    return once && ran.load() == 2 * kTasks;
}

}  // namespace orchcore_bench
