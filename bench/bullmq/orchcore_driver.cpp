// The orchcore side of the orchcore vs BullMQ benchmark (bench/bullmq/run.py
// starts it; bench/bullmq/bullmq_driver.mjs is the BullMQ side, with the same
// modes and the same JSON output). It uses the public API as an application
// would: a coordinator over redis_transport + redis_task_store +
// redis_worker_registry built from one redis_client of one URL, with the
// default hot path of that pair (redis_node_backend).
//
//   produce  --n N [--chunk C]     submit_many of N no-op tasks in chunks; prints the rate
//   bulk     --n N [--chunk C]     the same (the bulk-enqueue row; default N = 100,000)
//   work     --slots S --n N       one worker node of S slots; runs until it has completed N
//                                  tasks (N = 0: until nothing completed for --idle-ms after
//                                  the first); prints a "ready" line once it is connected,
//                                  then the time from its first task started to its last
//                                  completed, and its CPU time over that run
//   latency  --n N [--warmup W]    a producer-only node: submit_async, then the handle's
//                                  wait_for, N + W times in sequence; p50/p99 of the last N
//   smoke    [--n N]               a private redis-server (the test fixture), then produce,
//                                  work and latency in one process: the CI check that the
//                                  driver runs (exit 77 when redis-server is not installed)
//
// Common: --url redis://127.0.0.1:PORT/0 --queue NAME --timeout-s S (every
// wait is bounded by it). One JSON object per line on stdout; errors on
// stderr and a non-zero exit code.
#include <orchcore/coordinator.hpp>
#include <orchcore/redis/redis.hpp>

#include "../../tests/redis/redis_server_fixture.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <iostream>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace orchcore;
using steady = std::chrono::steady_clock;

namespace {

struct args {
    std::string mode;
    std::string url = "redis://127.0.0.1:6379/0";
    std::string queue = "bench";
    std::size_t n = 0;  // 0: the mode's default
    std::size_t slots = 16;
    std::size_t chunk = 1'000;
    std::size_t warmup = 20;
    long idle_ms = 2'000;
    long timeout_s = 300;
};

double seconds_between(steady::time_point a, steady::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

double unix_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

double cpu_seconds() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
    return s(u.ru_utime) + s(u.ru_stime);
}

// The same small payload as the BullMQ side's job data.
std::string payload(std::size_t i) { return R"({"i":)" + std::to_string(i) + R"(,"s":"0123456789abcdef"})"; }

// A node of the queue: `slots` > 0 makes it a worker node with one worker of
// that many slots, 0 a producer-only node. The queue's capacity is raised
// above the default 1024 waiting tasks (BullMQ queues are unbounded).
coordinator_options node_options(const args& a, std::size_t slots) {
    auto ro = redis_options::from_url(a.url);
    ro.pool_size = std::max(ro.pool_size, slots + 4);
    ro.command_timeout = std::chrono::seconds(30);
    auto client = std::make_shared<redis_client>(ro);
    coordinator_options o;
    o.store = std::make_shared<redis_task_store>(client, a.queue);
    o.registry = std::make_shared<redis_worker_registry>(client, a.queue);
    o.node = orchcore::node_options{
        .transport = std::make_shared<redis_transport>(client, a.queue, transport_options{.capacity = 10'000'000})};
    o.scaling.min_workers = slots > 0 ? 1 : 0;
    o.scaling.max_workers = slots > 0 ? 1 : 0;
    o.worker_template.max_concurrent = std::max<std::size_t>(slots, 1);
    return o;
}

void produce(const args& a) {
    const double cpu0 = cpu_seconds();
    coordinator node{node_options(a, 0)};
    const auto start = steady::now();
    for (std::size_t i = 0; i < a.n; i += a.chunk) {
        std::vector<task_request> batch;
        for (std::size_t k = i; k < std::min(a.n, i + a.chunk); ++k) batch.push_back({"noop", payload(k), {}});
        for (const auto& r : node.submit_many(std::move(batch)))
            if (!r) throw std::runtime_error("submit_many refused a task: " + std::string(r.admission.detail));
    }
    const double s = seconds_between(start, steady::now());
    node.stop(stop_mode::graceful, std::chrono::seconds(5));
    std::printf("{\"impl\":\"orchcore\",\"mode\":\"%s\",\"n\":%zu,\"seconds\":%.4f,\"rate\":%.1f,\"cpu_s\":%.4f}\n",
                a.mode.c_str(), a.n, s, static_cast<double>(a.n) / s, cpu_seconds() - cpu0);
}

struct first_start {
    std::atomic<bool> seen{false};
    std::atomic<steady::rep> at{0};
    std::atomic<double> unix_at{0};
    std::atomic<std::uint64_t> handled{0};  // handler calls
    std::uint64_t target = 0;               // the handler call that wakes wait_handled (0: none)
    std::mutex m;
    std::condition_variable cv;
    void mark() {
        if (handled.fetch_add(1, std::memory_order_relaxed) + 1 == target) {
            std::lock_guard lk(m);
            cv.notify_all();
        }
        if (seen.exchange(true)) return;
        at.store(steady::now().time_since_epoch().count());
        unix_at.store(unix_now());
    }
    steady::time_point when() const { return steady::time_point(steady::duration(at.load())); }
    // Until the handler has run `target` times or `until` passes.
    void wait_handled(steady::time_point until) {
        std::unique_lock lk(m);
        cv.wait_until(lk, until, [&] { return handled.load(std::memory_order_relaxed) >= target; });
    }
};

// Polls the node's counters until the work is done; returns the time of the
// last completion seen. Throws when --timeout-s passes first. With --n, the
// node's stats (which read the shared queue's depth from Redis: a round trip)
// are polled only once the handler has run N times (the handler's Nth call
// wakes this thread: no polling meanwhile, so the process makes no
// context switches of its own beyond the node's): the BullMQ driver counts
// 'completed' events, which cost no Redis call.
steady::time_point wait_done(coordinator& node, const args& a, first_start& first) {
    const auto give_up = steady::now() + std::chrono::seconds(a.timeout_s);
    if (a.n > 0) first.wait_handled(give_up);
    std::uint64_t seen = 0;
    auto last = steady::now();
    for (;;) {
        const auto now = steady::now();
        const bool all_handled = a.n > 0 && first.handled.load(std::memory_order_relaxed) >= a.n;
        const auto done = a.n > 0 && !all_handled ? seen : node.get_stats().completed;
        if (done != seen) seen = done, last = now;
        if (a.n > 0 && done >= a.n) return now;
        if (a.n == 0 && first.seen.load() && now - last > std::chrono::milliseconds(a.idle_ms)) return last;
        if (now > give_up)
            throw std::runtime_error("work: timed out after " + std::to_string(a.timeout_s) + " s with " +
                                     std::to_string(done) + " tasks completed (" +
                                     std::to_string(first.handled.load()) + " handler calls)");
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

void work(const args& a) {
    const double cpu0 = cpu_seconds();
    first_start first;
    first.target = a.n;
    coordinator node{node_options(a, a.slots)};
    node.register_handler("noop", [&first](task_context&) {
        first.mark();
        return std::string{};
    });
    std::printf("{\"impl\":\"orchcore\",\"mode\":\"work\",\"ready\":true}\n");
    std::fflush(stdout);
    const auto end = wait_done(node, a, first);
    const double cpu = cpu_seconds() - cpu0;
    const double end_unix = unix_now() - seconds_between(end, steady::now());
    const auto completed = node.get_stats().completed;
    node.stop(stop_mode::graceful, std::chrono::seconds(10));
    const double s = seconds_between(first.when(), end);
    std::printf("{\"impl\":\"orchcore\",\"mode\":\"work\",\"slots\":%zu,\"completed\":%llu,\"seconds\":%.4f,"
                "\"rate\":%.1f,\"first_start_unix\":%.6f,\"last_done_unix\":%.6f,\"cpu_s\":%.4f}\n",
                a.slots, static_cast<unsigned long long>(completed), s, static_cast<double>(completed) / s,
                first.unix_at.load(), end_unix, cpu);
}

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

void latency(const args& a) {
    coordinator node{node_options(a, 0)};
    std::vector<double> ms;
    for (std::size_t i = 0; i < a.warmup + a.n; ++i) {
        const auto t0 = steady::now();
        auto r = node.submit_async("noop", payload(i));
        if (!r) throw std::runtime_error("submit refused: " + std::string(r.admission.detail));
        const auto rec = r.handle.wait_for(std::chrono::seconds(a.timeout_s));
        if (!rec || rec->status != task_status::completed)
            throw std::runtime_error("latency: task " + r.handle.id() + " did not complete in time");
        if (i >= a.warmup) ms.push_back(seconds_between(t0, steady::now()) * 1e3);
    }
    node.stop(stop_mode::graceful, std::chrono::seconds(5));
    double mean = 0;
    for (double x : ms) mean += x / static_cast<double>(ms.size());
    std::printf("{\"impl\":\"orchcore\",\"mode\":\"latency\",\"n\":%zu,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
                "\"mean_ms\":%.3f,\"max_ms\":%.3f}\n",
                ms.size(), percentile(ms, 0.5), percentile(ms, 0.99), mean, percentile(ms, 1.0));
}

// Every mode once against a private server: worker node on a thread,
// producer and latency nodes on this one.
int smoke(args a) {
    std::unique_ptr<test::redis_server> server;
    try {
        (void)test::find_redis_server();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "smoke: skipped: %s\n", e.what());
        return 77;
    }
    server = std::make_unique<test::redis_server>();
    a.url = server->url() + "/0";
    a.queue = "smoke";
    a.timeout_s = std::min(a.timeout_s, 120L);
    a.warmup = 2;
    const std::size_t jobs = a.n;
    args w = a;
    w.mode = "work";
    w.n = jobs + 10 + a.warmup;
    std::exception_ptr worker_error;
    std::thread worker([&] {
        try {
            work(w);
        } catch (...) {
            worker_error = std::current_exception();
        }
    });
    args p = a;
    p.mode = "produce";
    args l = a;
    l.mode = "latency";
    l.n = 10;
    std::exception_ptr error;
    try {
        produce(p);
        latency(l);
    } catch (...) {
        error = std::current_exception();
    }
    worker.join();
    if (error) std::rethrow_exception(error);
    if (worker_error) std::rethrow_exception(worker_error);
    return 0;
}

[[noreturn]] void usage(const std::string& why) {
    std::cerr << "orchcore_bullmq_driver: " << why
              << "\nusage: orchcore_bullmq_driver produce|bulk|work|latency|smoke [--url URL] [--queue NAME]"
                 " [--n N] [--slots S] [--chunk C] [--warmup W] [--idle-ms MS] [--timeout-s S]\n";
    std::exit(2);
}

std::size_t positive(const std::string& flag, const std::string& v, bool zero_ok) {
    std::size_t used = 0;
    unsigned long long x = 0;
    try {
        x = std::stoull(v, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used != v.size() || v.empty() || v[0] == '-' || (x == 0 && !zero_ok))
        usage(flag + " needs a " + (zero_ok ? "non-negative" : "positive") + " integer, got '" + v + "'");
    return static_cast<std::size_t>(x);
}

args parse(int argc, char** argv) {
    if (argc < 2) usage("no mode given");
    args a;
    a.mode = argv[1];
    for (int i = 2; i < argc; ++i) {
        const std::string f = argv[i];
        if (i + 1 >= argc) usage(f + " needs a value");
        const std::string v = argv[++i];
        if (f == "--url") a.url = v;
        else if (f == "--queue") a.queue = v;
        else if (f == "--n") a.n = positive(f, v, true);
        else if (f == "--slots") a.slots = positive(f, v, false);
        else if (f == "--chunk") a.chunk = positive(f, v, false);
        else if (f == "--warmup") a.warmup = positive(f, v, true);
        else if (f == "--idle-ms") a.idle_ms = static_cast<long>(positive(f, v, false));
        else if (f == "--timeout-s") a.timeout_s = static_cast<long>(positive(f, v, false));
        else usage("unknown option " + f);
    }
    if (a.n == 0 && a.mode != "work") {
        if (a.mode == "bulk") a.n = 100'000;
        else if (a.mode == "latency") a.n = 500;
        else if (a.mode == "smoke") a.n = 2'000;
        else a.n = 20'000;
    }
    return a;
}

}  // namespace

int main(int argc, char** argv) {
    const args a = parse(argc, argv);
    try {
        if (a.mode == "produce" || a.mode == "bulk") produce(a);
        else if (a.mode == "work") work(a);
        else if (a.mode == "latency") latency(a);
        else if (a.mode == "smoke") return smoke(a);
        else usage("unknown mode " + a.mode);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "orchcore_bullmq_driver %s: %s\n", a.mode.c_str(), e.what());
        return 1;
    }
    return 0;
}
