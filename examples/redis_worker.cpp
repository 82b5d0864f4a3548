// A worker process of a Redis deployment: one coordinator node with workers
// and no producer role. Run as many as you like, on as many machines as you
// like, against the same Redis URL and queue; see docs/redis.md.
//
//   orchcore_redis_worker --url redis://127.0.0.1:6379/0 --queue jobs --workers 2 --concurrency 8
//
// Handles task type "work": sleeps --task-ms, then returns
// "done:<payload>" (idempotent: the result depends on the payload only, and
// the completion itself is recorded once, by the task store's
// compare-and-set). Fault injection for drills and tests: --hang-after N
// makes every handler after the N-th block (printing "hang <id>") until its
// attempt is cancelled, as a hung process would, so that killing the
// process hits tasks mid-run. --poison P makes a task whose payload is
// exactly P kill this process (raise(SIGKILL), as a crashing handler
// would) when it starts: a poison task, which the transport dead-letters
// after --max-lease-expiries lease expiries (0, the default: never; give
// every process of the queue the same value). Runs until SIGTERM / SIGINT
// (graceful stop: running tasks finish for up to --drain-ms, the rest go
// back to the queue) or --max-seconds. Prints its counters as key=value lines when it exits.
#include <orchcore/orchcore.hpp>
#include <orchcore/redis/redis.hpp>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <cstdlib>
#include <functional>
#include <ctime>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

namespace {

struct args {
    std::string url = "redis://127.0.0.1:6379";
    std::string queue = "default";
    std::string node_id{};
    std::size_t workers = 1;
    std::size_t concurrency = 8;
    long task_ms = 0;
    long lease_ms = 5'000;
    long drain_ms = 5'000;
    long max_seconds = 0;  // 0: until a signal
    long hang_after = -1;  // -1: never
    std::string poison{};  // empty: none
    unsigned long max_lease_expiries = 0;
    std::size_t capacity = 100'000;
    std::string policy = "reject-new";
};

void print_usage(std::ostream& os, const char* argv0) {
    os << "usage: " << argv0
       << " --url URL [--queue NAME] [--node-id ID] [--workers N] [--concurrency N] [--task-ms MS]\n"
          "       [--lease-ms MS] [--drain-ms MS] [--max-seconds S] [--capacity N] [--policy P] [--hang-after N]\n"
          "       [--poison PAYLOAD] [--max-lease-expiries N] [--help]\n";
}

[[noreturn]] void usage(const char* argv0, const std::string& why) {
    std::cerr << argv0 << ": " << why << "\n";
    print_usage(std::cerr, argv0);
    std::exit(2);
}

[[noreturn]] void help(const char* argv0) {
    print_usage(std::cout, argv0);
    std::exit(0);
}

args parse(int argc, char** argv) {
    args a;
    using setter = std::function<void(const std::string&)>;
    const std::map<std::string_view, setter> options{
        {"--url", [&a](const std::string& v) { a.url = v; }},
        {"--queue", [&a](const std::string& v) { a.queue = v; }},
        {"--node-id", [&a](const std::string& v) { a.node_id = v; }},
        {"--workers", [&a](const std::string& v) { a.workers = std::stoul(v); }},
        {"--concurrency", [&a](const std::string& v) { a.concurrency = std::stoul(v); }},
        {"--task-ms", [&a](const std::string& v) { a.task_ms = std::stol(v); }},
        {"--lease-ms", [&a](const std::string& v) { a.lease_ms = std::stol(v); }},
        {"--drain-ms", [&a](const std::string& v) { a.drain_ms = std::stol(v); }},
        {"--max-seconds", [&a](const std::string& v) { a.max_seconds = std::stol(v); }},
        {"--hang-after", [&a](const std::string& v) { a.hang_after = std::stol(v); }},
        {"--poison", [&a](const std::string& v) { a.poison = v; }},
        {"--max-lease-expiries", [&a](const std::string& v) { a.max_lease_expiries = std::stoul(v); }},
        {"--capacity", [&a](const std::string& v) { a.capacity = std::stoul(v); }},
        {"--policy", [&a](const std::string& v) { a.policy = v; }},
    };
    for (int i = 1; i < argc; ++i) {
        const std::string_view k = argv[i];
        if (k == "--help" || k == "-h") help(argv[0]);
        const auto option = options.find(k);
        if (option == options.end()) usage(argv[0], "unknown option " + std::string(k));
        if (i + 1 >= argc) usage(argv[0], "missing value for " + std::string(k));
        const std::string v = argv[++i];
        try {
            option->second(v);
        } catch (const std::logic_error&) {
            usage(argv[0], "bad value for " + std::string(k) + ": " + v);
        }
    }
    return a;
}

}  // namespace

int main(int argc, char** argv) {
    const args a = parse(argc, argv);

    // Signals are taken synchronously by this thread (sigtimedwait); every
    // thread started from here inherits the blocked mask.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

    try {
        auto ro = orchcore::redis_options::from_url(a.url);
        auto client = std::make_shared<orchcore::redis_client>(ro);
        client->ping();  // fail early with a clear message

        orchcore::transport_options to;
        to.policy = orchcore::parse_queue_policy(a.policy);
        to.capacity = a.capacity;
        to.max_lease_expiries = static_cast<std::uint32_t>(a.max_lease_expiries);

        orchcore::coordinator_options o;
        o.store = std::make_shared<orchcore::redis_task_store>(client, a.queue);
        o.registry = std::make_shared<orchcore::redis_worker_registry>(client, a.queue);
        o.policy = to.policy;
        o.node = orchcore::node_options{.transport = std::make_shared<orchcore::redis_transport>(client, a.queue, to),
                                        .id = a.node_id,
                                        .lease_duration = std::chrono::milliseconds(a.lease_ms)};
        o.worker_template.max_concurrent = a.concurrency;
        o.scaling.min_workers = a.workers;
        o.scaling.max_workers = a.workers;

        orchcore::coordinator node{o};
        const long task_ms = a.task_ms, hang_after = a.hang_after;
        const std::string poison = a.poison;
        auto handled = std::make_shared<std::atomic<long>>(0);
        auto out_mutex = std::make_shared<std::mutex>();
        node.register_handler("work", [task_ms, hang_after, poison, handled, out_mutex](orchcore::task_context& ctx) {
            if (!poison.empty() && ctx.payload() == poison) {
                {
                    std::lock_guard lk(*out_mutex);
                    std::cout << "poison " << ctx.id() << std::endl;
                }
                ::raise(SIGKILL);  // the whole process dies, holding the task's lease
            }
            if (hang_after >= 0 && handled->fetch_add(1) >= hang_after) {
                {
                    std::lock_guard lk(*out_mutex);
                    std::cout << "hang " << ctx.id() << std::endl;
                }
                while (!ctx.cancellation_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
                ctx.throw_if_cancelled();
            }
            if (task_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(task_ms));
            return "done:" + ctx.payload();
        });
        std::cout << "ready node=" << node.node_id() << std::endl;

        const auto started = std::chrono::steady_clock::now();
        for (;;) {
            timespec ts{0, 100'000'000};
            const int sig = sigtimedwait(&sigs, nullptr, &ts);
            if (sig == SIGTERM || sig == SIGINT) break;
            if (a.max_seconds > 0 && std::chrono::steady_clock::now() - started >= std::chrono::seconds(a.max_seconds))
                break;
        }
        const bool clean = node.stop(orchcore::stop_mode::graceful, std::chrono::milliseconds(a.drain_ms));
        const auto s = node.get_stats();
        std::cout << "node=" << node.node_id() << "\n"
                  << "clean_stop=" << (clean ? 1 : 0) << "\n"
                  << "leased=" << s.leased << "\n"
                  << "started=" << s.started << "\n"
                  << "completed=" << s.completed << "\n"
                  << "failed=" << s.failed << "\n"
                  << "retried=" << s.retried << "\n"
                  << "released=" << s.released << "\n"
                  << "recovered=" << s.recovered << "\n"
                  << "dead_lettered=" << s.dead_lettered << "\n"
                  << "requeued_after_worker_death=" << s.requeued_after_worker_death << "\n"
                  << "stale_token_refusals=" << s.stale_token_refusals << "\n"
                  << "backend_errors=" << s.backend_errors << std::endl;
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "orchcore_redis_worker: " << e.what() << std::endl;
        return 1;
    }
}
