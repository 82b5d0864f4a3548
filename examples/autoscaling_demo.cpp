// autoscaling_demo: the coordinator grows and shrinks its worker pool with
// the queue depth.
//
// Scaling rules (autoscale_options): every 100ms the control thread samples
// the queue depth; 2 consecutive samples above 4 add a worker, 3 consecutive
// samples below 1 (an empty queue) remove one, always within [1, 4], and
// nothing changes for 300ms after a change (cooldown). Two bursts of 30ms
// tasks arrive; a monitor prints the worker count, queue depth and running
// tasks every 150ms, and scale events are printed live from the workers
// channel of the event bus. The scaling history is printed at the end.
#include <orchcore/orchcore.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

using namespace std::chrono_literals;

namespace {

const auto t_start = std::chrono::steady_clock::now();
const auto t_start_wall = std::chrono::system_clock::now();  // scale_record::at is wall-clock time

long long ms_since_start() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t_start).count();
}

orchcore::coordinator_options options() {
    orchcore::coordinator_options o;
    o.queue.capacity = 256;
    o.autoscale = true;
    o.autoscale_interval = 100ms;
    o.scaling.min_workers = 1;
    o.scaling.max_workers = 4;
    o.scaling.scale_up_depth = 4;
    o.scaling.scale_down_depth = 1;
    o.scaling.up_after = 2;
    o.scaling.down_after = 3;
    o.scaling.cooldown = 300ms;
    return o;
}

void print_status(orchcore::coordinator& c, const char* phase) {
    auto s = c.get_stats();
    std::printf("[%5lld ms] %-10s workers %zu  queued %3zu  running %zu  completed %3llu\n", ms_since_start(), phase,
                s.workers, s.queued, s.running, static_cast<unsigned long long>(s.completed));
}

void submit_burst(orchcore::coordinator& c, int n) {
    int admitted = 0;
    for (int i = 0; i < n; ++i) admitted += c.post("work", "") ? 1 : 0;
    std::printf("[%5lld ms] burst: %d of %d tasks admitted\n", ms_since_start(), admitted, n);
}

}  // namespace

int main() {
    orchcore::coordinator c{options()};
    c.register_handler("work", [](orchcore::task_context&) {
        std::this_thread::sleep_for(30ms);
        return std::string{};
    });

    auto sub = c.events().subscribe(orchcore::event_channel::workers, [](const orchcore::event& e) {
        if (e.kind == orchcore::event_kind::scaled)
            std::printf("[%5lld ms] ** scaled %zu -> %zu (%s)\n", ms_since_start(), e.from, e.to, e.detail.c_str());
        else
            std::printf("[%5lld ms]    %s %s%s%s\n", ms_since_start(), std::string(orchcore::to_string(e.kind)).c_str(),
                        e.worker_id.c_str(), e.detail.empty() ? "" : ": ", e.detail.c_str());
    });

    // Phase 1: one large burst (80 x 30ms = 2.4s of work for one worker).
    submit_burst(c, 80);
    auto idle_for = [&](const char* phase, std::chrono::milliseconds at_least, std::size_t until_workers) {
        const auto t0 = std::chrono::steady_clock::now();
        for (;;) {
            print_status(c, phase);
            auto s = c.get_stats();
            const bool waited = std::chrono::steady_clock::now() - t0 >= at_least;
            if (waited && s.queued == 0 && s.running == 0 && s.workers <= until_workers) return;
            if (std::chrono::steady_clock::now() - t0 > 5s) return;  // safety: never hang the demo
            std::this_thread::sleep_for(150ms);
        }
    };
    idle_for("burst 1", 0ms, 1);

    // Phase 2: a steadier stream: 5 waves of 15 tasks, 250ms apart.
    for (int wave = 0; wave < 5; ++wave) {
        submit_burst(c, 15);
        print_status(c, "stream");
        std::this_thread::sleep_for(125ms);
        print_status(c, "stream");
        std::this_thread::sleep_for(125ms);
    }
    idle_for("drain", 0ms, 1);

    sub.reset();
    auto s = c.get_stats();
    std::printf("\nscaling history (%zu changes):\n", s.scaling_history.size());
    for (const auto& r : s.scaling_history) {
        const auto at = std::chrono::duration_cast<std::chrono::milliseconds>(r.at - t_start_wall).count();
        std::printf("  [%5lld ms] %zu -> %zu  %s\n", static_cast<long long>(at), r.from, r.to, r.reason.c_str());
    }
    std::printf("completed %llu tasks\n", static_cast<unsigned long long>(s.completed));
    c.stop();
}
