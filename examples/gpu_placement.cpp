// gpu_placement: resource-aware placement with two kinds of workers.
//
// A CPU worker (8 cores, 16 GB, no GPU) and a GPU worker (16 cores, 64 GB,
// two "a100" GPUs with 40 GB each). Tasks asking for a GPU land on the GPU
// worker; at most two of them run at once there (each holds one GPU until
// its attempt ends), the rest wait without using retries. CPU tasks go to
// the CPU worker first (best fit keeps the GPU machine free), and a
// request no worker could ever hold ("h100") is refused at submission.
//
//   orchcore_gpu_placement [--help]
#include <orchcore/orchcore.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
    if (argc > 1 && std::string_view(argv[1]) == "--help") {
        std::printf("usage: orchcore_gpu_placement\n"
                    "Runs GPU and CPU tasks on a CPU worker and a GPU worker and prints where each ran.\n");
        return 0;
    }
    orchcore::coordinator c{{.scaling = {.min_workers = 0, .max_workers = 2}}};
    c.add_worker({.id = "cpu-1", .max_concurrent = 4, .resources = {.cpu_millis = 8000, .memory_mb = 16000}});
    c.add_worker({.id = "gpu-1",
                  .max_concurrent = 4,
                  .resources = {.cpu_millis = 16000,
                                .memory_mb = 64000,
                                .gpus = {{"a100", 40000}, {"a100", 40000}}}});

    std::atomic<int> gpus_busy{0}, most{0};
    c.register_handler("train", [&](orchcore::task_context& ctx) {
        const int now = ++gpus_busy;
        for (int seen = most.load(); now > seen && !most.compare_exchange_weak(seen, now);) {}
        std::this_thread::sleep_for(20ms);
        --gpus_busy;
        return ctx.worker_id();
    });
    c.register_handler("prep", [](orchcore::task_context& ctx) { return ctx.worker_id(); });

    orchcore::task_options gpu{.resources = {.cpu_millis = 2000, .memory_mb = 8000, .gpu = {1, "a100", 30000}}};
    orchcore::task_options cpu{.resources = {.cpu_millis = 1000, .memory_mb = 1000}};
    std::vector<orchcore::task_handle> trains, preps;
    for (int i = 0; i < 6; ++i) trains.push_back(c.submit_async("train", "", gpu).handle);
    for (int i = 0; i < 3; ++i) preps.push_back(c.submit_async("prep", "", cpu).handle);

    std::map<std::string, int> where;
    for (auto& h : trains) ++where["train on " + h.get()];
    for (auto& h : preps) ++where["prep on " + h.get()];
    for (const auto& [what, n] : where) std::printf("%-16s x%d\n", what.c_str(), n);
    std::printf("GPU tasks at once: at most %d (2 GPUs)\n", most.load());

    try {
        c.submit_async("train", "", {.resources = {.gpu = {1, "h100", 0}}});
    } catch (const orchcore::unplaceable_error& e) {
        std::printf("refused: %s\n", e.what());
    }
    c.stop();
    return most.load() <= 2 ? 0 : 1;
}
