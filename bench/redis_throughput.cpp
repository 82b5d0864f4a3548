// Throughput of the Redis transport (and task store) on a private
// redis-server, beside redis-benchmark's LPUSH/RPOP rates on the same server.
//
// A plain program (not Google Benchmark: each phase drains a fixed set of
// N tasks). It starts its own redis-server on a free 127.0.0.1 port (the
// test fixture's approach, tests/redis/redis_server_fixture.hpp), runs
// every phase `--runs` times on fresh queues, and prints one JSON line per
// measurement and then the medians and ratios.
//
//   enqueue   producer: admit_many of N ids in chunks (--chunk), transport only
//   enqueue+store  the same plus redis_task_store::create_many of the N
//             records (pipelined), i.e. what a producer really does
//   process   N ids already waiting; --concurrency worker threads, each
//             leasing --batch ids per round trip and acking them with one
//             ack_many (no-op handlers)
//   e2e       producer (admit_many, chunks) and the workers concurrently;
//             rate = N / (time of the last ack)
//   coordinator  the whole library path, in two processes: a producer
//             process (a coordinator with no workers) bulk-submits the N
//             tasks with coordinator::submit_many (chunks of --chunk-coord),
//             while a worker process (a coordinator with one worker of
//             --slots slots, default --concurrency; its hot path through
//             redis_node_backend unless --no-fastpath) runs them (no-op
//             handler, task records,
//             status changes and results in redis_task_store, leases with
//             fencing); rate = N / (time until the worker process has
//             completed all N)
//   latency   single jobs on an idle worker: a producer process (a
//             coordinator with no workers) submits --latency-n jobs one at
//             a time (each after the previous result and a 5 ms pause, so
//             the worker process's node is idle) and waits for each with
//             task_handle::wait_for; prints p50/p99/max of submit-to-result
//   ceiling   redis-benchmark -P 32 -t lpush,rpop -n 1000000 -q
//
// Usage: orchcore_bench_redis_throughput [--n 100000] [--concurrency 16]
//        [--slots N (coordinator worker slots; default --concurrency)] [--no-fastpath] [--batch 64] [--chunk 5000] [--runs 3] [--bullmq 18000]
//        [--ceiling-n 1000000] [--no-ceiling] [--chunk-coord 1000] [--no-coordinator] [--only-coordinator]
//        [--latency-n 1000] [--no-latency] [--only-latency]
#include <orchcore/coordinator.hpp>
#include <orchcore/redis/redis.hpp>

#include "../tests/redis/redis_server_fixture.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

using namespace orchcore;
using clk = std::chrono::steady_clock;

namespace {

struct config {
    std::size_t n = 100'000;
    std::size_t concurrency = 16;
    std::size_t slots = 0;  // coordinator phase: the worker's slots (0: --concurrency)
    bool fastpath = true;   // coordinator phase: the worker node uses redis_node_backend
    std::size_t batch = 64;
    std::size_t chunk = 5'000;
    std::size_t chunk_coord = 1'000;
    bool coordinator_phase = true;
    bool transport_phases = true;
    bool latency_phase = true;
    std::size_t latency_n = 1'000;
    int runs = 3;
    double bullmq = 18'000;
    std::size_t ceiling_n = 1'000'000;
    bool ceiling = true;
};

double seconds_since(clk::time_point t) { return std::chrono::duration<double>(clk::now() - t).count(); }

std::shared_ptr<redis_client> make_client(const test::redis_server& server, std::size_t pool) {
    auto o = server.options("bench");
    o.pool_size = pool;
    o.command_timeout = std::chrono::milliseconds(30'000);
    return std::make_shared<redis_client>(o);
}

transport_options topts() { return {.policy = queue_policy::reject_new, .capacity = 10'000'000}; }

std::vector<transport_request> requests(std::size_t n, const std::string& tag) {
    std::vector<transport_request> rs;
    rs.reserve(n);
    for (std::size_t i = 0; i < n; ++i) rs.push_back({tag + std::to_string(i), priority::normal});
    return rs;
}

task_record make_record(const std::string& id) {
    task_record r;
    r.id = id;
    r.type = "noop";
    r.payload = "{}";
    r.status = task_status::queued;
    r.created_at = std::chrono::system_clock::now();
    return r;
}

void admit_all(redis_transport& t, const std::vector<transport_request>& rs, std::size_t chunk,
               redis_task_store* store) {
    for (std::size_t i = 0; i < rs.size(); i += chunk) {
        const auto part = std::span<const transport_request>(rs).subspan(i, std::min(chunk, rs.size() - i));
        if (store) {
            std::vector<task_record> recs;
            recs.reserve(part.size());
            for (const auto& r : part) recs.push_back(make_record(r.id));
            for (bool ok : store->create_many(recs))
                if (!ok) throw std::runtime_error("store create refused");
        }
        for (const auto& a : t.admit_many(part))
            if (!a.accepted()) throw std::runtime_error("admission refused: " + std::string(a.detail));
    }
}

// Workers drain until `total` acks were made (by all workers together).
void run_workers(const std::shared_ptr<redis_client>& client, const std::string& queue, const config& c,
                 std::size_t total) {
    std::atomic<std::size_t> done{0};
    std::vector<std::thread> ths;
    for (std::size_t w = 0; w < c.concurrency; ++w) {
        ths.emplace_back([&, w] {
            redis_transport t(client, queue, topts());
            const std::string name = "w" + std::to_string(w);
            std::vector<lease_ref> refs;
            while (done.load(std::memory_order_relaxed) < total) {
                auto ls = t.lease(name, c.batch, std::chrono::seconds(60), std::chrono::system_clock::now());
                if (ls.empty()) {
                    std::this_thread::sleep_for(std::chrono::microseconds(200));
                    continue;
                }
                refs.clear();
                for (auto& l : ls) refs.push_back({std::move(l.task_id), l.token});
                for (bool ok : t.ack_many(refs))
                    if (!ok) std::abort();
                done.fetch_add(refs.size(), std::memory_order_relaxed);
            }
        });
    }
    for (auto& th : ths) th.join();
}

// A distributed-mode coordinator on `queue` with `workers` worker slots.
// `fast`: with redis_node_backend (the default for this transport and
// store); else the separate calls (transport_options::combined_node_calls).
coordinator_options node_opts(const test::redis_server& server, const std::string& queue, std::size_t slots,
                              const std::string& name, bool fast = false) {
    auto client = make_client(server, slots + 4);
    coordinator_options o;
    auto to = topts();
    to.combined_node_calls = fast;
    o.store = std::make_shared<redis_task_store>(client, queue);
    o.registry = std::make_shared<redis_worker_registry>(client, queue);
    o.scaling.min_workers = slots > 0 ? 1 : 0;
    o.scaling.max_workers = slots > 0 ? 1 : 0;
    o.worker_template.max_concurrent = slots > 0 ? slots : 1;
    o.node = orchcore::node_options{.transport = std::make_shared<redis_transport>(client, queue, to),
                                    .id = name,
                                    .lease_duration = std::chrono::seconds(60)};
    return o;
}

// Runs `body` in a child process; returns its pid. The child exits with
// body's result (0 = success). Called while this process has no threads.
template <class F>
pid_t spawn(F body) {
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        int rc = 1;
        try {
            rc = body();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "child: %s\n", e.what());
        }
        std::fflush(nullptr);
        ::_exit(rc);
    }
    return pid;
}

bool wait_ok(pid_t pid) {
    int st = 0;
    return ::waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

// The coordinator phase: producer and worker processes; returns seconds.
double coordinator_e2e(const test::redis_server& server, const std::string& queue, const config& c) {
    const auto start = clk::now();
    const pid_t worker = spawn([&] {
        coordinator node{node_opts(server, queue, c.slots, "bench-worker", c.fastpath)};
        node.register_handler("noop", [](task_context&) { return std::string{}; });
        const auto give_up = clk::now() + std::chrono::minutes(5);
        while (node.get_stats().completed < c.n) {
            if (clk::now() > give_up) return 2;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        node.stop(stop_mode::graceful, std::chrono::milliseconds(1000));
        return 0;
    });
    const pid_t producer = spawn([&] {
        coordinator node{node_opts(server, queue, 0, "bench-producer")};
        for (std::size_t i = 0; i < c.n; i += c.chunk_coord) {
            std::vector<task_request> batch;
            for (std::size_t k = i; k < std::min(c.n, i + c.chunk_coord); ++k) batch.push_back({"noop", "{}", {}});
            for (const auto& r : node.submit_many(std::move(batch)))
                if (!r) throw std::runtime_error("refused: " + std::string(r.admission.detail));
        }
        return 0;
    });
    const bool producer_ok = wait_ok(producer);  // both reaped, whatever the first says
    const bool worker_ok = wait_ok(worker);
    const bool ok = producer_ok && worker_ok;
    if (!ok) throw std::runtime_error("coordinator phase: a child process failed");
    return seconds_since(start);
}

// Submit-to-result latency of single jobs on an idle worker node (two
// processes); the producer prints the percentiles.
void latency_phase(const test::redis_server& server, const std::string& queue, const config& c) {
    const std::size_t total = c.latency_n + 10;  // 10 warm-up jobs, not counted
    const pid_t worker = spawn([&] {
        coordinator node{node_opts(server, queue, 1, "lat-worker")};
        node.register_handler("noop", [](task_context&) { return std::string{}; });
        const auto give_up = clk::now() + std::chrono::minutes(5);
        while (node.get_stats().completed < total) {
            if (clk::now() > give_up) return 2;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        node.stop(stop_mode::graceful, std::chrono::milliseconds(1000));
        return 0;
    });
    const pid_t producer = spawn([&] {
        coordinator node{node_opts(server, queue, 0, "lat-producer")};
        std::vector<double> ms;
        for (std::size_t i = 0; i < total; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            const auto start = clk::now();
            auto r = node.submit_async("noop", "{}");
            if (!r) throw std::runtime_error("refused: " + std::string(r.admission.detail));
            if (!r.handle.wait_for(std::chrono::seconds(30))) throw std::runtime_error("no result within 30 s");
            if (i >= 10) ms.push_back(std::chrono::duration<double, std::milli>(clk::now() - start).count());
        }
        std::sort(ms.begin(), ms.end());
        auto pct = [&](double p) { return ms[std::min(ms.size() - 1, static_cast<std::size_t>(p * ms.size()))]; };
        std::printf("{\"phase\":\"latency\",\"n\":%zu,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
                    ms.size(), pct(0.50), pct(0.99), ms.back());
        return 0;
    });
    const bool producer_ok = wait_ok(producer);
    const bool worker_ok = wait_ok(worker);
    if (!(producer_ok && worker_ok)) throw std::runtime_error("latency phase: a child process failed");
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

// Server-side time per command since the last CONFIG RESETSTAT
// (INFO commandstats): where the server spent its time. Commands run by a
// script are counted both on their own and inside evalsha, so the total
// counts top-level commands only (evalsha and the client's own commands).
struct server_time {
    double total_usec = 0;
    double calls = 0;    // every command, those run by scripts included
    double scripts = 0;  // evalsha calls
    std::string detail;  // "evalsha:calls/usec_per_call,..."
};

server_time server_stats(redis_client& c) {
    server_time out;
    const auto r = c.command({"INFO", "commandstats"});
    std::istringstream in(r.str);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("cmdstat_", 0) != 0) continue;
        const auto colon = line.find(':');
        const std::string name = line.substr(8, colon - 8);
        if (name == "info" || name == "config") continue;
        auto field = [&](const char* key) {
            const auto p = line.find(std::string(key) + "=");
            return p == std::string::npos ? 0.0 : std::atof(line.c_str() + p + std::strlen(key) + 1);
        };
        static const char* top_level[] = {"evalsha", "ping", "select", "script|load", "flushdb"};
        for (const char* t : top_level)
            if (name == t) out.total_usec += field("usec");
        out.calls += field("calls");
        if (name == "evalsha") out.scripts += field("calls");
        if (!out.detail.empty()) out.detail += ",";
        char buf[160];
        std::snprintf(buf, sizeof buf, "%s:%.0f calls x %.1fus", name.c_str(), field("calls"), field("usec_per_call"));
        out.detail += buf;
    }
    return out;
}

std::shared_ptr<redis_client> g_admin;

// INFO stats total_reads_processed: read events on client connections,
// i.e. requests (a pipeline is one) the server answered: round trips.
double reads_processed() {
    const auto r = g_admin->command({"INFO", "stats"});
    const auto p = r.str.find("total_reads_processed:");
    return p == std::string::npos ? 0.0 : std::atof(r.str.c_str() + p + std::strlen("total_reads_processed:"));
}

double g_reads_at_reset = 0;

void reset_server_stats() {
    g_admin->command({"CONFIG", "RESETSTAT"});
    g_reads_at_reset = reads_processed();
}

void print(const std::string& phase, int run, double secs, std::size_t n) {
    const auto st = server_stats(*g_admin);
    const double reads = reads_processed() - g_reads_at_reset;
    const double per = static_cast<double>(n);
    std::printf("{\"phase\":\"%s\",\"run\":%d,\"n\":%zu,\"seconds\":%.3f,\"rate\":%.0f,"
                "\"server_busy\":%.2f,\"server_us_per_task\":%.2f,\"commands_per_task\":%.2f,"
                "\"scripts_per_task\":%.2f,\"round_trips_per_task\":%.3f,\"server\":\"%s\"}\n",
                phase.c_str(), run, n, secs, per / secs, st.total_usec / (secs * 1e6), st.total_usec / per,
                st.calls / per, st.scripts / per, reads / per, st.detail.c_str());
    std::fflush(stdout);
}

std::map<std::string, double> redis_benchmark(int port, std::size_t n) {
    const std::string cmd = "redis-benchmark -h 127.0.0.1 -p " + std::to_string(port) +
                            " -P 32 -t lpush,rpop -n " + std::to_string(n) + " -q 2>&1";
    std::map<std::string, double> out;
    FILE* f = ::popen(cmd.c_str(), "r");
    if (!f) return out;
    std::string all;
    char buf[4096];
    while (std::size_t k = std::fread(buf, 1, sizeof buf, f)) all.append(buf, k);
    ::pclose(f);
    // -q prints "LPUSH: 1234567.89 requests per second, p50=..." (with
    // carriage-return progress lines before it).
    std::replace(all.begin(), all.end(), '\r', '\n');
    std::istringstream in(all);
    std::string line;
    while (std::getline(in, line)) {
        for (const char* name : {"LPUSH", "RPOP"}) {
            const std::string p = std::string(name) + ": ";
            if (line.rfind(p, 0) == 0 && line.find("requests per second") != std::string::npos)
                out[name] = std::atof(line.c_str() + p.size());
        }
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    config c;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::cerr << a << " needs a value\n";
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--n") c.n = std::stoul(next());
        else if (a == "--concurrency") c.concurrency = std::stoul(next());
        else if (a == "--slots") c.slots = std::stoul(next());
        else if (a == "--no-fastpath") c.fastpath = false;
        else if (a == "--batch") c.batch = std::stoul(next());
        else if (a == "--chunk") c.chunk = std::stoul(next());
        else if (a == "--chunk-coord") c.chunk_coord = std::stoul(next());
        else if (a == "--no-coordinator") c.coordinator_phase = false;
        else if (a == "--only-coordinator") c.transport_phases = c.latency_phase = false;
        else if (a == "--latency-n") c.latency_n = std::stoul(next());
        else if (a == "--no-latency") c.latency_phase = false;
        else if (a == "--only-latency") c.transport_phases = c.coordinator_phase = c.ceiling = false;
        else if (a == "--runs") c.runs = std::stoi(next());
        else if (a == "--bullmq") c.bullmq = std::stod(next());
        else if (a == "--ceiling-n") c.ceiling_n = std::stoul(next());
        else if (a == "--no-ceiling") c.ceiling = false;
        else {
            std::cerr << "unknown argument " << a << "\n";
            return 2;
        }
    }
    if (c.slots == 0) c.slots = c.concurrency;
    test::redis_server server;
    std::printf("{\"server_port\":%d,\"n\":%zu,\"concurrency\":%zu,\"slots\":%zu,\"fastpath\":%s,\"batch\":%zu,"
                "\"chunk\":%zu,\"runs\":%d,\"hw_threads\":%u}\n",
                server.port(), c.n, c.concurrency, c.slots, c.fastpath ? "true" : "false", c.batch, c.chunk, c.runs,
                std::thread::hardware_concurrency());
    auto client = make_client(server, c.concurrency + 2);
    g_admin = make_client(server, 1);

    std::map<std::string, std::vector<double>> rates;
    for (int run = 1; run <= c.runs && (c.transport_phases || c.coordinator_phase); ++run) {
        const std::string q = "q" + std::to_string(run);
        const auto rs = requests(c.n, "r" + std::to_string(run) + "-");
        if (c.transport_phases) {
        {  // (a) enqueue, transport only
            reset_server_stats();
            redis_transport t(client, q, topts());
            const auto start = clk::now();
            admit_all(t, rs, c.chunk, nullptr);
            const double s = seconds_since(start);
            print("enqueue", run, s, c.n);
            rates["enqueue"].push_back(c.n / s);
        }
        {  // (b) process the N waiting ids
            reset_server_stats();
            const auto start = clk::now();
            run_workers(client, q, c, c.n);
            const double s = seconds_since(start);
            print("process", run, s, c.n);
            rates["process"].push_back(c.n / s);
            redis_transport t(client, q, topts());
            if (t.size_approx() != 0 || t.leased_count() != 0) throw std::runtime_error("not drained");
        }
        {  // (a') enqueue with the task records
            reset_server_stats();
            const std::string q2 = q + "s";
            redis_transport t(client, q2, topts());
            redis_task_store store(client, q2);
            const auto start = clk::now();
            admit_all(t, rs, c.chunk, &store);
            const double s = seconds_since(start);
            print("enqueue+store", run, s, c.n);
            rates["enqueue+store"].push_back(c.n / s);
            client->command({"FLUSHDB"});
        }
        {  // (c) end-to-end: producer and workers together
            reset_server_stats();
            const std::string q3 = q + "e";
            const auto start = clk::now();
            std::thread producer([&] {
                redis_transport t(client, q3, topts());
                admit_all(t, rs, std::min<std::size_t>(c.chunk, 1000), nullptr);
            });
            run_workers(client, q3, c, c.n);
            producer.join();
            const double s = seconds_since(start);
            print("e2e", run, s, c.n);
            rates["e2e"].push_back(c.n / s);
        }
        }
        if (c.coordinator_phase) {  // (d) the coordinator path, two processes
            reset_server_stats();
            const double s = coordinator_e2e(server, q + "c", c);
            print("coordinator", run, s, c.n);
            rates["coordinator"].push_back(c.n / s);
        }
        client->command({"FLUSHDB"});
    }

    if (c.latency_phase) latency_phase(server, "lat", c);  // once: 1,000 samples are its own statistics

    std::map<std::string, double> ceiling;
    if (c.ceiling) ceiling = redis_benchmark(server.port(), c.ceiling_n);
    const double ceil_push = ceiling.count("LPUSH") ? ceiling["LPUSH"] : 0;
    const double ceil_pop = ceiling.count("RPOP") ? ceiling["RPOP"] : 0;
    std::printf("{\"ceiling\":\"redis-benchmark -P 32\",\"lpush\":%.0f,\"rpop\":%.0f}\n", ceil_push, ceil_pop);
    for (const auto& [phase, v] : rates) {
        const double m = median(v);
        // enqueue phases compare with LPUSH, the others with RPOP.
        const double ceil = phase.rfind("enqueue", 0) == 0 ? ceil_push : ceil_pop;
        std::printf("{\"phase\":\"%s\",\"median_rate\":%.0f,\"runs\":[", phase.c_str(), m);
        for (std::size_t i = 0; i < v.size(); ++i) std::printf("%s%.0f", i ? "," : "", v[i]);
        std::printf("],\"vs_ceiling\":%.3f,\"vs_bullmq\":%.2f}\n", ceil > 0 ? m / ceil : 0.0, m / c.bullmq);
    }
    if (!c.transport_phases) return 0;
    const double p = median(rates["process"]);
    std::printf("{\"target\":\"process >= 5x BullMQ\",\"process_rate\":%.0f,\"target_rate\":%.0f,\"met\":%s}\n", p,
                5 * c.bullmq, p >= 5 * c.bullmq ? "true" : "false");
    return 0;
}
