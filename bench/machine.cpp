// What moving work between two threads costs on this machine, the floor
// under every cross-thread row in the other benchmarks (bench/README.md,
// "Machine"). Results differ between machines by an order of magnitude
// (a paravirtualised VM whose two vCPUs sit on different cores pays far
// more than two hyperthreads of one core), so ratios from different
// machines are only comparable with these beside them.
//
//   BM_CacheLineRoundTrip  two threads hand one cache line back and forth
//                          (a spinning flag): time per round trip, i.e. two
//                          transfers of a line between the cores
//   BM_WakeRoundTrip       two threads hand a turn back and forth through a
//                          mutex and condition variable, each sleeping until
//                          woken: time per round trip (two sleeps, two wakes,
//                          in the kernel)
//   BM_SteadyClockNow      one steady_clock::now()
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace {

// Runs `once(trips)` per iteration, which makes `trips` round trips and
// returns the seconds they took, and reports the mean time of one round
// trip as `counter` (seconds times `scale`).
template <class Once>
void round_trips(benchmark::State& state, const char* counter, double scale, Once once) {
    const auto trips = static_cast<int>(state.range(0));
    double total = 0;  // seconds timed
    for (auto _ : state) {
        const double took = once(trips);
        total += took;
        state.SetIterationTime(took);
    }
    state.SetItemsProcessed(state.iterations() * trips);
    state.counters[counter] = total * scale / static_cast<double>(state.iterations() * trips);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void BM_CacheLineRoundTrip(benchmark::State& state) {
    round_trips(state, "ns_per_round_trip", 1e9, [](int trips) {
        alignas(64) std::atomic<int> flag{0};
        std::thread peer([&] {
            for (int i = 0; i < trips; ++i) {
                while (flag.load(std::memory_order_acquire) != 1) {
                }
                flag.store(0, std::memory_order_release);
            }
        });
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < trips; ++i) {
            flag.store(1, std::memory_order_release);
            while (flag.load(std::memory_order_acquire) != 0) {
            }
        }
        const double took = seconds_since(t0);
        peer.join();
        return took;
    });
}
BENCHMARK(BM_CacheLineRoundTrip)->Arg(100'000)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_WakeRoundTrip(benchmark::State& state) {
    round_trips(state, "us_per_round_trip", 1e6, [](int trips) {
        std::mutex m;
        std::condition_variable cv;
        int turn = 0;
        std::thread peer([&] {
            for (int i = 0; i < trips; ++i) {
                std::unique_lock lk(m);
                cv.wait(lk, [&] { return turn == 1; });
                turn = 0;
                cv.notify_one();
            }
        });
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < trips; ++i) {
            std::unique_lock lk(m);
            turn = 1;
            cv.notify_one();
            cv.wait(lk, [&] { return turn == 0; });
        }
        const double took = seconds_since(t0);
        peer.join();
        return took;
    });
}
BENCHMARK(BM_WakeRoundTrip)->Arg(10'000)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_SteadyClockNow(benchmark::State& state) {
    for (auto _ : state) benchmark::DoNotOptimize(std::chrono::steady_clock::now());
}
BENCHMARK(BM_SteadyClockNow);

}  // namespace
