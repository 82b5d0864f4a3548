// quickstart: the coordinator in five steps.
//
//   1. register handlers (plain, and typed through orchcore::codec)
//   2. submit a task and wait for its result
//   3. submit_async: get a handle now, the result later
//   4. cancel a running task (its handler polls for cancellation)
//   5. print the coordinator's statistics
#include <orchcore/orchcore.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

using namespace std::chrono_literals;

int main() {
    orchcore::coordinator c{{.scaling = {.min_workers = 2, .max_workers = 2}}};

    // 1. Handlers run on worker threads. A handler returns the task's result
    //    (bytes), or throws to fail it (retried up to max_retries).
    c.register_handler("greet", [](orchcore::task_context& ctx) { return "hello, " + ctx.payload(); });
    c.handle<int>("square", [](orchcore::task_context&, int x) { return x * x; });
    c.register_handler("slow", [](orchcore::task_context& ctx) {
        for (int step = 0; step < 200; ++step) {
            ctx.throw_if_cancelled();  // cooperative cancellation
            ctx.report_progress(step / 200.0);
            std::this_thread::sleep_for(10ms);
        }
        return std::string("slow: done");
    });

    // 2. submit: admits the task and blocks until its result is there.
    std::string greeting = c.submit("greet", "world");
    std::printf("submit(\"greet\", \"world\") -> \"%s\"\n", greeting.c_str());

    // 3. submit_async: returns at once with an admission result and a handle.
    auto sq = c.submit_async("square", 12);
    if (!sq) {
        std::printf("square rejected: %s\n", std::string(orchcore::to_string(sq.admission.reason)).c_str());
        return 1;
    }
    std::printf("submit_async(\"square\", 12) -> id %s, waiting...\n", sq.handle.id().c_str());
    std::printf("  result: %d\n", sq.handle.get_as<int>());

    // 4. cancel: a queued task is removed at once; a running one is asked to
    //    stop and becomes cancelled when its handler returns.
    auto slow = c.submit_async("slow", "");
    while (c.get_status(slow.handle.id()) != orchcore::task_status::running) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(50ms);
    std::printf("cancel(%s) while running -> %s\n", slow.handle.id().c_str(),
                c.cancel(slow.handle.id()) ? "requested" : "not found / already finished");
    try {
        slow.handle.get();
        std::printf("  finished anyway\n");
    } catch (const orchcore::cancelled_error& e) {
        auto rec = slow.handle.wait();
        std::printf("  get() threw cancelled_error: %s (progress was %.0f%%)\n", e.what(), rec.progress * 100);
    }

    // 5. Statistics.
    auto s = c.get_stats();
    std::printf("stats: submitted %llu, started %llu, completed %llu, cancelled %llu, failed %llu, workers %zu\n",
                static_cast<unsigned long long>(s.submitted), static_cast<unsigned long long>(s.started),
                static_cast<unsigned long long>(s.completed), static_cast<unsigned long long>(s.cancelled),
                static_cast<unsigned long long>(s.failed), s.workers);

    c.stop();  // graceful: waits for running tasks (the destructor would abort them)
}
