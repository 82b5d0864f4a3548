// Placement decision cost: one task placed (and started) among 1,000
// registered workers with resources, while 0, 1,000 or 10,000 tasks wait
// for a GPU no worker has free. The decision looks at the workers, not at
// the waiting tasks: the time per decision must stay flat across the rows.
//
// The GPU workers run on an io_context nobody runs, so a GPU task once
// started holds its GPU for good; the CPU workers run on one thread. Each
// iteration submits one CPU task and waits for its result.
//
//   cmake --preset release && cmake --build build/release --target orchcore_bench_placement &&
//   build/release/bench/orchcore_bench_placement
#include <orchcore/orchcore.hpp>

#include <benchmark/benchmark.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <string>
#include <thread>

namespace {

void placement_decision(benchmark::State& state) {
    const auto waiting = static_cast<int>(state.range(0));
    boost::asio::io_context never_run, cpu_ctx;
    auto guard = boost::asio::make_work_guard(cpu_ctx);
    std::thread cpu_thread([&] { cpu_ctx.run(); });
    orchcore::coordinator_options o;
    o.scaling = {.min_workers = 0, .max_workers = 2000};
    o.placement_wait = std::chrono::hours(24);
    o.queue.capacity = 100'000;
    o.worker_timeout = std::chrono::hours(1);
    o.worker_template.heartbeat_interval = std::chrono::minutes(1);
    orchcore::coordinator c{o};
    for (int i = 0; i < 1000; ++i) {
        orchcore::worker_options w;
        w.id = "w" + std::to_string(i);
        w.max_concurrent = 4;
        w.heartbeat_interval = std::chrono::minutes(1);
        w.resources = {.cpu_millis = 16000, .memory_mb = 64000, .gpus = {{"a100", 40000}}};
        w.executor = never_run.get_executor();
        if (i % 2 == 0) {
            w.resources.gpus.clear();
            w.executor = cpu_ctx.get_executor();
        }
        c.add_worker(w);
    }
    c.register_handler("t", [](orchcore::task_context&) { return std::string(); });
    // Every GPU held by a task that never ends, then `waiting` more GPU tasks.
    orchcore::task_options gpu{.resources = {.gpu = {1, "a100", 0}}};
    for (int i = 0; i < 500 + waiting; ++i) (void)c.submit_async("t", "", gpu);
    orchcore::task_options cpu{.resources = {.cpu_millis = 1000, .memory_mb = 1000}};
    for (auto _ : state) {
        benchmark::DoNotOptimize(c.submit("t", "", cpu));
    }
    state.counters["waiting"] = waiting;
    c.stop(orchcore::stop_mode::abort, std::chrono::milliseconds(1));
    guard.reset();
    cpu_ctx.stop();
    cpu_thread.join();
}

}  // namespace

BENCHMARK(placement_decision)->Arg(0)->Arg(1000)->Arg(5000)->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
