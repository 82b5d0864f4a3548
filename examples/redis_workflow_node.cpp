// A node of a Redis deployment that runs workflows: a coordinator with
// workers, a workflow runner (which drives workflows and carries on those
// whose node died) and the handler of task type "step". Run several against
// the same Redis URL and queue; with --submit, this process also submits one
// workflow (a fan-out of --shards shards, then --stages stages), waits for
// it and prints how it ended.
//
//   orchcore_redis_workflow_node --url redis://127.0.0.1:6379/0 --queue flows --workers 2
//   orchcore_redis_workflow_node --url redis://127.0.0.1:6379/0 --queue flows --workers 0 --submit
//
// "step" sleeps --task-ms, then returns its dependencies' results and its
// own name joined with '+'. Runs until SIGTERM / SIGINT or --max-seconds.
#include <orchcore/orchcore.hpp>
#include <orchcore/redis/redis.hpp>
#include <orchcore/workflow/context.hpp>
#include <orchcore/workflow/runner.hpp>

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

namespace wf = orchcore::workflow;

namespace {

struct args {
    std::string url = "redis://127.0.0.1:6379";
    std::string queue = "flows";
    std::string node_id{};
    std::size_t workers = 1;
    std::size_t concurrency = 4;
    long task_ms = 10;
    long lease_ms = 5'000;
    long max_seconds = 0;
    bool submit = false;
    std::uint32_t shards = 8;
    int stages = 4;
};

void print_usage(std::ostream& os) {
    os << "usage: orchcore_redis_workflow_node --url URL [--queue NAME] [--node-id ID] [--workers N]\n"
          "       [--concurrency N] [--task-ms MS] [--lease-ms MS] [--max-seconds S]\n"
          "       [--submit] [--shards N] [--stages N] [--help]\n";
}

[[noreturn]] void usage(const std::string& why) {
    std::cerr << why << "\n";
    print_usage(std::cerr);
    std::exit(2);
}

args parse(int argc, char** argv) {
    args a;
    for (int i = 1; i < argc; ++i) {
        const std::string_view k = argv[i];
        if (k == "--help" || k == "-h") {
            print_usage(std::cout);
            std::exit(0);
        }
        if (k == "--submit") {
            a.submit = true;
            continue;
        }
        static constexpr std::string_view valued[] = {"--url", "--queue", "--node-id", "--workers", "--concurrency",
                                                      "--task-ms", "--lease-ms", "--max-seconds", "--shards", "--stages"};
        if (std::find(std::begin(valued), std::end(valued), k) == std::end(valued)) usage("unknown option " + std::string(k));
        if (i + 1 >= argc) usage("missing value for " + std::string(k));
        const std::string v = argv[++i];
        try {
            if (k == "--url") a.url = v;
            else if (k == "--queue") a.queue = v;
            else if (k == "--node-id") a.node_id = v;
            else if (k == "--workers") a.workers = std::stoul(v);
            else if (k == "--concurrency") a.concurrency = std::stoul(v);
            else if (k == "--task-ms") a.task_ms = std::stol(v);
            else if (k == "--lease-ms") a.lease_ms = std::stol(v);
            else if (k == "--max-seconds") a.max_seconds = std::stol(v);
            else if (k == "--shards") a.shards = static_cast<std::uint32_t>(std::stoul(v));
            else a.stages = std::stoi(v);
        } catch (const std::logic_error&) {
            usage("bad value for " + std::string(k) + ": " + v);
        }
    }
    return a;
}

orchcore::coordinator_options node_options(const args& a) {
    auto client = std::make_shared<orchcore::redis_client>(orchcore::redis_options::from_url(a.url));
    client->ping();  // fail early with a clear message
    orchcore::coordinator_options o;
    const auto tp = std::make_shared<orchcore::redis_transport>(client, a.queue);
    o.store = std::make_shared<orchcore::redis_task_store>(client, a.queue);
    o.registry = std::make_shared<orchcore::redis_worker_registry>(client, a.queue);
    o.policy = tp->options().policy;
    o.node = orchcore::node_options{
        .transport = tp, .id = a.node_id, .lease_duration = std::chrono::milliseconds(a.lease_ms)};
    o.worker_template.max_concurrent = a.concurrency;
    o.scaling.min_workers = o.scaling.max_workers = a.workers;
    return o;
}

wf::workflow_spec demo_spec(const args& a) {
    wf::workflow_spec spec{.name = "redis-demo"};
    spec.tasks = {{.name = "fan", .type = "step", .shards = wf::shard_spec{.count = a.shards, .aggregator_type = "step"}}};
    for (int i = 0; i < a.stages; ++i) spec.stages.push_back({.name = "s" + std::to_string(i), .type = "step"});
    if (!spec.stages.empty()) spec.stages[0].depends_on = {"fan"};
    return spec;
}

int submit_and_wait(wf::workflow_runner& runner, const args& a) {
    auto h = runner.submit_workflow(demo_spec(a));
    std::cout << "submitted " << h.id() << std::endl;
    try {
        const auto rec = h.get();
        for (const auto& t : rec.tasks) std::cout << t.name << " " << wf::to_string(t.state) << " " << t.result << "\n";
        std::cout << "workflow completed" << std::endl;
        return 0;
    } catch (const std::exception& e) {
        std::cout << "workflow did not complete: " << e.what() << std::endl;
        return 1;
    }
}

}  // namespace

int main(int argc, char** argv) {
    const args a = parse(argc, argv);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    try {
        orchcore::coordinator node{node_options(a)};
        const long task_ms = a.task_ms;
        node.register_handler("step", [task_ms](orchcore::task_context& ctx) {
            std::this_thread::sleep_for(std::chrono::milliseconds(task_ms));
            std::string out;
            for (const auto& d : wf::dependencies(ctx)) out += wf::dependency_result(ctx, d) + "+";
            return out + wf::task_name(ctx);
        });
        wf::workflow_runner runner(node);
        int rc = 0;
        if (a.submit) rc = submit_and_wait(runner, a);
        else {
            const auto started = std::chrono::steady_clock::now();
            const timespec tick{0, 100'000'000};
            while (sigtimedwait(&sigs, nullptr, &tick) < 0) {
                if (a.max_seconds > 0 && std::chrono::steady_clock::now() - started >= std::chrono::seconds(a.max_seconds)) break;
            }
        }
        node.stop(orchcore::stop_mode::graceful, std::chrono::seconds(5));
        return rc;
    } catch (const std::exception& e) {
        std::cerr << "orchcore_redis_workflow_node: " << e.what() << "\n";
        return 1;
    }
}
