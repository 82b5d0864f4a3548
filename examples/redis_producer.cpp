// A producer process of a Redis deployment: a coordinator node without
// workers that submits tasks into the shared queue; worker processes
// (orchcore_redis_worker) run them. See docs/redis.md.
//
//   orchcore_redis_producer --url redis://127.0.0.1:6379/0 --queue jobs --count 5000 --id-prefix batch7 --wait
//
// Submits --count tasks of type "work" (ids "<id-prefix>-<i>" if given,
// generated otherwise). When the shared queue is full, it waits for the
// retry-after hint and tries again (backpressure), so every task is
// eventually admitted. A submission that fails because Redis cannot be
// reached (restarting, say) is retried with the same id after a pause
// (counted in submit_errors): the library accepts the same submission again
// while the task has not started, and finishes what the failed try began;
// if the retry finds the id taken (the task has started), the first try got
// through. (The coordinator already retries each
// store and transport call of a submission a few times, so this happens only
// when Redis stays unreachable for longer.) With --wait, it then waits (up to --wait-timeout-s)
// for every task to finish, wherever it runs, and counts the outcomes.
// Prints key=value lines; exits 0 when every task completed (or, without
// --wait, was admitted).
#include <orchcore/orchcore.hpp>
#include <orchcore/redis/redis.hpp>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

struct args {
    std::string url = "redis://127.0.0.1:6379";
    std::string queue = "default";
    std::string node_id{};
    std::string id_prefix{};
    std::size_t count = 1000;
    std::size_t payload_bytes = 16;
    int priority = orchcore::priority::normal;
    bool wait = false;
    long wait_timeout_s = 300;
    std::size_t capacity = 100'000;
    std::string policy = "reject-new";
    unsigned long max_lease_expiries = 0;
};

void print_usage(std::ostream& os, const char* argv0) {
    os << "usage: " << argv0
       << " --url URL [--queue NAME] [--count N] [--id-prefix P] [--payload-bytes N] [--priority 0..20]\n"
          "       [--wait] [--wait-timeout-s S] [--node-id ID] [--capacity N] [--policy P]\n"
          "       [--max-lease-expiries N] [--help]\n";
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
        {"--id-prefix", [&a](const std::string& v) { a.id_prefix = v; }},
        {"--count", [&a](const std::string& v) { a.count = std::stoul(v); }},
        {"--payload-bytes", [&a](const std::string& v) { a.payload_bytes = std::stoul(v); }},
        {"--priority", [&a](const std::string& v) { a.priority = std::stoi(v); }},
        {"--wait-timeout-s", [&a](const std::string& v) { a.wait_timeout_s = std::stol(v); }},
        {"--capacity", [&a](const std::string& v) { a.capacity = std::stoul(v); }},
        {"--policy", [&a](const std::string& v) { a.policy = v; }},
        {"--max-lease-expiries", [&a](const std::string& v) { a.max_lease_expiries = std::stoul(v); }},
    };
    for (int i = 1; i < argc; ++i) {
        const std::string_view k = argv[i];
        if (k == "--help" || k == "-h") help(argv[0]);
        if (k == "--wait") {
            a.wait = true;
            continue;
        }
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
    try {
        auto client = std::make_shared<orchcore::redis_client>(orchcore::redis_options::from_url(a.url));
        client->ping();

        orchcore::transport_options to;
        to.policy = orchcore::parse_queue_policy(a.policy);
        to.capacity = a.capacity;
        to.max_lease_expiries = static_cast<std::uint32_t>(a.max_lease_expiries);

        orchcore::coordinator_options o;
        o.store = std::make_shared<orchcore::redis_task_store>(client, a.queue);
        o.registry = std::make_shared<orchcore::redis_worker_registry>(client, a.queue);
        o.policy = to.policy;
        o.node = orchcore::node_options{.transport = std::make_shared<orchcore::redis_transport>(client, a.queue, to),
                                        .id = a.node_id};
        o.scaling.min_workers = 0;  // producer only
        o.scaling.max_workers = 0;
        orchcore::coordinator node{o};

        const auto t0 = std::chrono::steady_clock::now();
        std::vector<std::string> ids;
        ids.reserve(a.count);
        std::uint64_t full_retries = 0, refused = 0, submit_errors = 0;
        const std::string payload(a.payload_bytes, 'x');
        for (std::size_t i = 0; i < a.count; ++i) {
            orchcore::task_options opts;
            if (!a.id_prefix.empty()) opts.id = a.id_prefix + "-" + std::to_string(i);
            opts.priority = a.priority;
            bool errored = false;
            for (;;) {
                orchcore::submit_result r;
                try {
                    r = node.submit_async("work", payload + std::to_string(i), opts);
                } catch (const orchcore::error& e) {
                    if (e.code() != orchcore::errc::backend_unavailable || !opts.id) throw;
                    ++submit_errors;  // Redis unreachable: try again, same id
                    errored = true;
                    std::this_thread::sleep_for(std::chrono::milliseconds(200));
                    continue;
                }
                if (r) {
                    ids.push_back(r.handle.id());
                    break;
                }
                if (r.admission.reason == orchcore::rejection_reason::queue_full) {
                    ++full_retries;  // backpressure: wait as told, then again
                    std::this_thread::sleep_for(r.admission.retry_after);
                    continue;
                }
                if (errored && r.admission.reason == orchcore::rejection_reason::invalid_request) {
                    ids.push_back(*opts.id);  // the failed try got through, and the task has started
                    break;
                }
                ++refused;  // duplicate id (a rerun with the same prefix), closed...
                std::cerr << "refused " << opts.id.value_or("?") << ": " << r.admission.detail << "\n";
                break;
            }
        }
        const double submit_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::cout << "node=" << node.node_id() << "\n"
                  << "submitted=" << ids.size() << "\n"
                  << "refused=" << refused << "\n"
                  << "submit_errors=" << submit_errors << "\n"
                  << "queue_full_retries=" << full_retries << "\n"
                  << "submit_seconds=" << submit_s << "\n"
                  << "submit_rate=" << (submit_s > 0 ? static_cast<double>(ids.size()) / submit_s : 0.0)
                  << std::endl;

        bool all_ok = refused == 0;
        if (a.wait) {
            const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(a.wait_timeout_s);
            std::map<std::string, std::size_t> by_status;
            std::size_t unfinished = 0, reruns = 0;
            for (const auto& id : ids) {
                const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    until - std::chrono::steady_clock::now());
                auto r = node.wait_for(id, std::max(left, std::chrono::milliseconds(1)));
                if (!r) {
                    ++unfinished;
                    continue;
                }
                ++by_status[std::string(orchcore::to_string(r->status))];
                if (r->attempts > 1) ++reruns;
            }
            const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            for (const char* s : {"completed", "failed", "cancelled", "timed_out"})
                std::cout << s << "=" << by_status[s] << "\n";
            std::cout << "unfinished=" << unfinished << "\n"
                      << "rerun=" << reruns << "\n"
                      << "total_seconds=" << total_s << std::endl;
            all_ok = all_ok && by_status["completed"] == ids.size();
        }
        node.stop(orchcore::stop_mode::graceful, std::chrono::seconds(1));
        return all_ok ? 0 : 3;
    } catch (const std::exception& e) {
        std::cerr << "orchcore_redis_producer: " << e.what() << std::endl;
        return 1;
    }
}
