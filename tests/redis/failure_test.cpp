// Failure tests over Redis. Every test checks that the counts add
// up: each task ends in exactly one terminal state, completed exactly once
// as the task store sees it, none lost.
//
// * The scenarios of tests/unit/failure_scenarios.hpp (outage window via
//   failing decorators, graceful stop that drains or hands back, racing
//   recoverers) over redis_transport / redis_task_store.
// * Redis restarted (appendonly, fsync always) under worker and producer
//   processes mid-run.
// * Nodes idle-waiting on an empty queue while Redis is down for 2 s.
// * A poison task that kills its worker process every time ends in the
//   dead-letter set after max_lease_expiries; the killed workers are
//   restarted; every other task completes.
//
// The process tests run examples/redis_worker.cpp and redis_producer.cpp
// (paths from tests/CMakeLists.txt), with the harness of
// tests/redis/process_harness.hpp.
#include <orchcore/redis/redis.hpp>

#include "redis/process_harness.hpp"
#include "redis/redis_server_fixture.hpp"
#include "unit/failure_scenarios.hpp"

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace orchcore;
using namespace std::chrono_literals;
using orchcore::test::shared_redis_server;

namespace {

test::dist_backend redis_backend() {
    auto client = shared_redis_server().client("fail");
    return {std::make_shared<redis_transport>(client, "q"), std::make_shared<redis_task_store>(client, "q"),
            std::make_shared<redis_worker_registry>(client, "q")};
}

const std::vector<std::string> aof_always{"--appendonly", "yes", "--appendfsync", "always"};

}  // namespace

TEST_CASE("redis/failure: every store and transport call fails for 2 s mid-run; afterwards every task completes "
          "exactly once",
          "[redis][failure]") {
    test::scenario_backend_outage_window(redis_backend);
}

TEST_CASE("redis/failure: a submission that failed half-way, submitted again, is accepted and runs once",
          "[redis][failure][submit]") {
    test::scenario_resubmit_after_half_done_submission(redis_backend);
}

TEST_CASE("redis/failure: graceful stop drains running tasks that finish before the deadline",
          "[redis][failure][stop]") {
    test::scenario_graceful_stop_drains(redis_backend);
}

TEST_CASE("redis/failure: graceful stop past its deadline hands running tasks back; another node completes each once",
          "[redis][failure][stop]") {
    test::scenario_graceful_stop_hands_back(redis_backend);
}

TEST_CASE("redis/failure: two recoverers racing on a hung node's orphans requeue each exactly once",
          "[redis][failure][recovery]") {
    test::scenario_racing_recoverers(redis_backend);
}

TEST_CASE("redis/failure: nodes idle-waiting on an empty queue resume after Redis is down for 2 s",
          "[redis][failure]") {
    test::redis_server srv(aof_always);
    auto client = srv.client("idle");
    test::dist_backend b{std::make_shared<redis_transport>(client, "q"),
                         std::make_shared<redis_task_store>(client, "q"),
                         std::make_shared<redis_worker_registry>(client, "q")};
    auto handler = [](task_context& ctx) { return "ok:" + ctx.payload(); };
    coordinator w1{test::node_options(b, 2, "idle1")};
    coordinator w2{test::node_options(b, 2, "idle2")};
    w1.register_handler("t", handler);
    w2.register_handler("t", handler);
    coordinator producer{test::node_options(b, 0, "producer")};

    // Before the outage: 20 tasks complete (data that must come back).
    std::vector<std::string> before;
    for (int i = 0; i < 20; ++i) {
        auto r = producer.submit_async("t", "b" + std::to_string(i));
        REQUIRE(r);
        before.push_back(r.handle.id());
    }
    for (const auto& id : before) {
        auto r = producer.wait_for(id, 20s);
        REQUIRE(r);
        CHECK(r->status == task_status::completed);
    }
    // Both nodes are idle, polling an empty queue.
    REQUIRE(test::dist_eventually([&] { return w1.get_stats().running == 0 && w2.get_stats().running == 0; }));
    CHECK(b.tp->size_approx() == 0);
    const auto errors_before = w1.get_stats().backend_errors + w2.get_stats().backend_errors;

    srv.stop();  // down (SIGTERM; the append-only file keeps the data)
    const auto down_at = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - down_at < 2s) std::this_thread::sleep_for(20ms);
    srv.start();  // same port, same directory, same data

    // The same data.
    for (const auto& id : before) {
        auto r = b.store->get(id);
        REQUIRE(r);
        CHECK(r->status == task_status::completed);
        CHECK(r->result == "ok:" + r->payload);
    }
    // New work reaches the nodes that were waiting.
    constexpr std::size_t n = 200;
    std::vector<std::string> after;
    for (std::size_t i = 0; i < n; ++i) {
        auto r = producer.submit_async("t", "a" + std::to_string(i));
        REQUIRE(r);
        after.push_back(r.handle.id());
    }
    std::size_t reruns = 0;
    for (const auto& id : after) {
        auto r = producer.wait_for(id, 30s);
        REQUIRE(r);
        if (r->attempts > 1) ++reruns;
        INFO(id);
        CHECK(r->status == task_status::completed);
        CHECK(r->result == "ok:" + r->payload);
        // Usually 1; a task may run twice (at-least-once) if the outage
        // left a worker declared dead or a lease unrenewed. Completed once:
        CHECK(r->attempts >= 1);
    }
    CHECK(test::dist_eventually([&] { return w1.get_stats().completed + w2.get_stats().completed == 20 + n; }));
    const auto s1 = w1.get_stats(), s2 = w2.get_stats();
    INFO("w1: died " << s1.workers_died << " recovered " << s1.recovered << " stale " << s1.stale_token_refusals
                     << "; w2: died " << s2.workers_died << " recovered " << s2.recovered << " stale "
                     << s2.stale_token_refusals);
    CHECK(s1.completed + s2.completed == 20 + n);
    CHECK(s1.completed > 0);  // both nodes came back, not just one
    CHECK(s2.completed > 0);
    CHECK(s1.failed + s2.failed == 0);
    CHECK(w1.get_workers().size() == 2);
    CHECK(w2.get_workers().size() == 2);
    CHECK(test::count_status(*b.store, task_status::completed) == 20 + n);
    CHECK(b.store->size() == 20 + n);
    test::check_queue_drained(*b.tp);
    WARN("idle nodes across a 2 s Redis outage: backend errors seen "
         << s1.backend_errors + s2.backend_errors - errors_before << ", workers declared dead "
         << s1.workers_died + s2.workers_died << ", tasks run more than once " << reruns << " (recovered "
         << s1.recovered + s2.recovered << ", lease renewals refused "
         << s1.lease_renewals_refused + s2.lease_renewals_refused << ", stale refusals "
         << s1.stale_token_refusals + s2.stale_token_refusals << ", handed back " << s1.released + s2.released
         << ", retried " << s1.retried + s2.retried << ")");
}

#if defined(ORCHCORE_EXAMPLE_REDIS_WORKER) && defined(ORCHCORE_EXAMPLE_REDIS_PRODUCER)

namespace {

namespace fs = std::filesystem;
using namespace orchcore::test::proc;

fs::path scratch_dir(const std::string& name) {
    const fs::path dir = fs::temp_directory_path() / ("orchcore-" + name + "-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

std::size_t count_lines_starting(const fs::path& p, const std::string& prefix) {
    const auto text = file_text(p);
    std::size_t n = 0;
    for (std::size_t at = text.find(prefix); at != std::string::npos; at = text.find(prefix, at + 1))
        if (at == 0 || text[at - 1] == '\n') ++n;
    return n;
}

}  // namespace

TEST_CASE("redis/failure: Redis (appendonly, fsync always) is killed and restarted under 3 worker and 2 producer "
          "processes; every task completes exactly once",
          "[redis][failure][multiprocess]") {
    test::redis_server srv(aof_always);
    const std::string prefix = "rs";
    const std::string queue = "jobs";
    const std::string url = srv.url() + "?prefix=" + prefix;
    const fs::path dir = scratch_dir("restart");

    constexpr std::size_t per_producer = 1000;
    std::vector<child> children;
    reaper guard{children};
    const std::vector<std::string> common{"--url", url, "--queue", queue};
    auto with = [&](std::vector<std::string> extra) { return args_with(common, std::move(extra)); };
    for (int i = 1; i <= 3; ++i) {
        children.push_back(spawn(ORCHCORE_EXAMPLE_REDIS_WORKER,
                                 with({"--node-id", "w" + std::to_string(i), "--workers", "1", "--concurrency", "4",
                                       "--task-ms", "2", "--lease-ms", "3000", "--drain-ms", "5000"}),
                                 dir / ("w" + std::to_string(i) + ".out")));
    }
    for (const char* p : {"pa", "pb"}) {
        children.push_back(spawn(ORCHCORE_EXAMPLE_REDIS_PRODUCER,
                                 with({"--node-id", p, "--id-prefix", p, "--count", std::to_string(per_producer),
                                       "--wait", "--wait-timeout-s", "150"}),
                                 dir / (std::string(p) + ".out")));
    }

    auto observer = [&] {
        auto ro = srv.options();
        ro.prefix = prefix;
        return std::make_shared<redis_client>(ro);
    };
    {
        auto client = observer();
        redis_transport tp(client, queue);
        const auto cfg = client->command({"CONFIG", "GET", "appendfsync"});
        REQUIRE(cfg.elements.size() == 2);
        CHECK(cfg.elements[1].str == "always");
        // Kill Redis mid-run: producers still submitting, workers busy.
        REQUIRE(test::dist_eventually([&] { return tp.stats().accepted >= 600; }, 60s));
    }
    const auto t0 = std::chrono::steady_clock::now();
    srv.crash();
    while (std::chrono::steady_clock::now() - t0 < 500ms) std::this_thread::sleep_for(10ms);
    srv.start();

    for (std::size_t i = 3; i < 5; ++i) {
        auto& p = children[i];
        INFO(p.out.string() << ":\n" << file_text(p.out) << file_text(p.out.string() + ".err"));
        REQUIRE(wait_exit(p, std::chrono::steady_clock::now() + 170s));
        REQUIRE(WIFEXITED(p.status));
        CHECK(WEXITSTATUS(p.status) == 0);
        auto kv = key_values(p.out);
        CHECK(kv["submitted"] == std::to_string(per_producer));
        CHECK(kv["completed"] == std::to_string(per_producer));
        CHECK(kv["unfinished"] == "0");
        CHECK(kv["refused"] == "0");
    }

    auto client = observer();
    redis_transport tp(client, queue);
    redis_task_store store(client, queue);
    std::set<std::string> expected;
    for (const char* p : {"pa", "pb"})
        for (std::size_t i = 0; i < per_producer; ++i) expected.insert(std::string(p) + "-" + std::to_string(i));
    std::set<std::string> completed_ids;
    for (const auto& r : store.list({.status = task_status::completed, .limit = 100'000})) {
        completed_ids.insert(r.id);
        CHECK(r.result == "done:" + std::string(16, 'x') + r.id.substr(3));
    }
    CHECK(completed_ids.size() == expected.size());
    CHECK(completed_ids == expected);
    for (auto s : {task_status::pending, task_status::queued, task_status::running, task_status::failed,
                   task_status::cancelled, task_status::timed_out}) {
        std::string left;
        for (const auto& r : store.list({.status = s, .limit = 100'000}))
            left += r.id + " (attempts " + std::to_string(r.attempts) + ") ";
        INFO(to_string(s) << ": " << left);
        CHECK(left.empty());
    }
    CHECK(store.size() == 2 * per_producer);
    CHECK(store.dead_letters().empty());
    test::check_queue_drained(tp, 30s);
    CHECK(tp.stats().dead_lettered == 0);

    std::uint64_t completed = 0, failed = 0, errors = 0, recovered = 0, stale = 0, submit_errors = 0;
    for (std::size_t i = 0; i < 3; ++i) {
        kill_and_reap(children[i], SIGTERM);
        INFO(file_text(children[i].out) << file_text(children[i].out.string() + ".err"));
        REQUIRE(WIFEXITED(children[i].status));
        CHECK(WEXITSTATUS(children[i].status) == 0);
        auto kv = key_values(children[i].out);
        completed += counter(kv, "completed");
        failed += counter(kv, "failed");
        errors += counter(kv, "backend_errors");
        recovered += counter(kv, "recovered");
        stale += counter(kv, "stale_token_refusals");
    }
    for (std::size_t i = 3; i < 5; ++i) submit_errors += counter(key_values(children[i].out), "submit_errors");
    // No completion recorded twice. (A completion whose reply was lost when
    // Redis died is in the store but not in its worker's counter, hence <=.)
    CHECK(completed <= 2 * per_producer);
    CHECK(completed + errors >= 2 * per_producer);
    CHECK(failed == 0);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cerr << "redis restart: 2000 tasks completed once each, " << secs << " s after the kill; workers counted "
              << completed << " completions, " << errors << " backend errors, " << recovered << " recoveries, "
              << stale << " stale refusals; producers retried " << submit_errors << " submissions\n";
    std::error_code ec;
    fs::remove_all(dir, ec);
}

TEST_CASE("redis/failure: a poison task that kills its worker process every time is dead-lettered after "
          "max_lease_expiries; the other tasks all complete",
          "[redis][failure][multiprocess][poison]") {
    test::redis_server srv;
    const std::string prefix = "px";
    const std::string queue = "jobs";
    const std::string url = srv.url() + "?prefix=" + prefix;
    const fs::path dir = scratch_dir("poison");
    constexpr std::uint32_t max_expiries = 3;
    const std::string poison_payload = "POISON";
    const std::string poison_id = "poison-task";

    std::vector<child> children;
    reaper guard{children};
    int generation = 0;
    auto spawn_worker = [&](int slot) {
        const std::string id = "w" + std::to_string(slot) + "-g" + std::to_string(generation++);
        // One slot per process: a worker killed by the poison holds no other task.
        return spawn(ORCHCORE_EXAMPLE_REDIS_WORKER,
                     {"--url", url, "--queue", queue, "--node-id", id, "--workers", "1", "--concurrency", "1",
                      "--task-ms", "1", "--lease-ms", "800", "--drain-ms", "3000", "--poison", poison_payload,
                      "--max-lease-expiries", std::to_string(max_expiries)},
                     dir / (id + ".out"));
    };
    for (int i = 0; i < 3; ++i) children.push_back(spawn_worker(i));

    // This process submits (a producer node: it recovers expired leases
    // too, so it uses the same max_lease_expiries).
    auto ro = srv.options();
    ro.prefix = prefix;
    auto client = std::make_shared<redis_client>(ro);
    auto tp = std::make_shared<redis_transport>(client, queue, transport_options{.max_lease_expiries = max_expiries});
    auto store = std::make_shared<redis_task_store>(client, queue);
    test::dist_backend b{tp, store, std::make_shared<redis_worker_registry>(client, queue)};
    coordinator producer{test::node_options(b, 0, "producer")};

    constexpr std::size_t n = 200;
    std::vector<std::string> ids;
    for (std::size_t i = 0; i < n; ++i) {
        if (i == n / 2) {
            auto p = producer.submit_async("work", poison_payload, {.id = poison_id});
            REQUIRE(p);
        }
        auto r = producer.submit_async("work", "p" + std::to_string(i), {.id = "n-" + std::to_string(i)});
        REQUIRE(r);
        ids.push_back(r.handle.id());
    }

    // Restart every worker the poison kills, until it is dead-lettered and
    // every other task is done.
    std::size_t deaths = 0;
    bool buried = false, all_done = false;
    const auto until = std::chrono::steady_clock::now() + 120s;
    while (std::chrono::steady_clock::now() < until) {
        for (std::size_t i = 0; i < children.size(); ++i) {
            auto& c = children[i];
            if (!exited(c)) continue;
            INFO(c.out.string() << ":\n" << file_text(c.out) << file_text(c.out.string() + ".err"));
            REQUIRE(WIFSIGNALED(c.status));
            REQUIRE(WTERMSIG(c.status) == SIGKILL);
            CHECK(count_lines_starting(c.out, "poison " + poison_id) == 1);
            ++deaths;
            c = spawn_worker(static_cast<int>(i));
        }
        buried = !tp->dead_letters().empty();
        all_done = test::count_status(*store, task_status::completed) == n;
        if (buried && all_done) break;
        std::this_thread::sleep_for(50ms);
    }
    REQUIRE(buried);
    REQUIRE(all_done);
    // No worker dies after the burial: give a straggler a moment to show.
    CHECK_FALSE(test::dist_eventually(
        [&] {
            for (auto& c : children)
                if (exited(c)) return true;
            return false;
        },
        1s));

    // The poison: dead-lettered once, after exactly max_expiries deaths.
    CHECK(deaths == max_expiries);
    const auto dl = tp->dead_letters();
    REQUIRE(dl.size() == 1);
    CHECK(dl[0].id == poison_id);
    CHECK(dl[0].reason == "lease expired 3 times");
    auto ts = tp->stats();
    CHECK(ts.dead_lettered == 1);
    CHECK(ts.dead == 1);
    auto pr = producer.wait_for(poison_id, 10s);  // its record ended too: nobody waits forever
    REQUIRE(pr);
    CHECK(pr->status == task_status::failed);
    CHECK(pr->error == "dead-lettered: lease expired 3 times");
    CHECK(pr->attempts >= 1);
    CHECK(pr->worker_losses >= 1);

    // Every other task completed exactly once; nothing else failed.
    for (const auto& id : ids) {
        auto r = store->get(id);
        REQUIRE(r);
        INFO(id);
        CHECK(r->status == task_status::completed);
        CHECK(r->result == "done:" + r->payload);
    }
    CHECK(test::count_status(*store, task_status::completed) == n);
    CHECK(test::count_status(*store, task_status::failed) == 1);
    CHECK(store->size() == n + 1);
    test::check_queue_drained(*tp);

    // Counted apart from handler failures: the workers saw no failure, and
    // one node (a surviving worker or this producer) counted the burial.
    std::uint64_t failed = 0, retried = 0, dead_lettered = producer.get_stats().dead_lettered, completed = 0;
    for (auto& c : children) {
        kill_and_reap(c, SIGTERM);
        INFO(file_text(c.out) << file_text(c.out.string() + ".err"));
        REQUIRE(WIFEXITED(c.status));
        CHECK(WEXITSTATUS(c.status) == 0);
        auto kv = key_values(c.out);
        failed += counter(kv, "failed");
        retried += counter(kv, "retried");
        dead_lettered += counter(kv, "dead_lettered");
        completed += counter(kv, "completed");
    }
    CHECK(failed == 0);
    CHECK(retried == 0);
    CHECK(dead_lettered == 1);
    CHECK(producer.get_stats().failed == 0);
    std::cerr << "poison: dead-lettered after " << deaths << " worker deaths; " << n << " other tasks completed ("
              << completed << " by the last generation of workers)\n";
    std::error_code ec;
    fs::remove_all(dir, ec);
}

#endif
