// Property tests of the workflow building blocks.
//
// Graph state: random DAGs (up to a few hundred tasks, some sharded, a short
// pipeline of stages) run by a random executor that starts runnable tasks
// and reports random outcomes, with random cancellations of single tasks and
// of the whole workflow; a fan-out may have several shard rounds (the
// executor drops the shards of a round that ended). Placement: random workers and requests placed,
// released and retried.
#include <orchcore/workflow/placement.hpp>
#include <orchcore/workflow/state.hpp>

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace wf = orchcore::workflow;
using wf::task_state;

namespace {

wf::workflow_spec random_spec(std::size_t n, std::mt19937_64& rng) {
    wf::workflow_spec spec;
    for (std::size_t i = 0; i < n; ++i) {
        wf::task_spec t;
        t.name = "t" + std::to_string(i);
        t.type = "work";
        const auto deps = i == 0 ? 0 : rng() % 4;
        for (std::size_t d = 0; d < deps; ++d) {
            auto dep = "t" + std::to_string(rng() % i);
            if (std::find(t.depends_on.begin(), t.depends_on.end(), dep) == t.depends_on.end()) t.depends_on.push_back(dep);
        }
        if (rng() % 10 == 0) {
            t.shards = wf::shard_spec{.count = static_cast<std::uint32_t>(1 + rng() % 4), .aggregator_type = "merge",
                                      .rounds = static_cast<std::uint32_t>(1 + rng() % 3)};
        }
        spec.tasks.push_back(std::move(t));
    }
    for (std::size_t s = 0; s < rng() % 4; ++s) {
        wf::task_spec stage;
        stage.name = "stage" + std::to_string(s);
        stage.type = "step";
        stage.depends_on.push_back("t" + std::to_string(rng() % n));
        spec.stages.push_back(std::move(stage));
    }
    return spec;
}

bool unsuccessful(task_state s) {
    return s == task_state::failed || s == task_state::cancelled || s == task_state::timed_out;
}

// The invariants that hold after every step.
void check_invariants(const wf::workflow_state& st) {
    const auto runnable = st.runnable();
    const std::set<std::string> runnable_set(runnable.begin(), runnable.end());
    for (const auto& node : st.graph().tasks()) {
        const auto state = st.task(node.name).state;
        bool deps_completed = true, dep_unsuccessful = false;
        for (const auto& d : node.depends_on) {
            deps_completed = deps_completed && st.task(d).state == task_state::completed;
            dep_unsuccessful = dep_unsuccessful || unsuccessful(st.task(d).state);
        }
        RC_ASSERT(runnable_set.contains(node.name) == (state == task_state::pending && deps_completed));
        RC_ASSERT(st.round(node.name) >= 1);
        RC_ASSERT(st.round(node.name) <= std::max<std::uint32_t>(1, node.shard_rounds));
        if (state == task_state::running || state == task_state::completed) RC_ASSERT(deps_completed);
        // Downstream of a failure: ended at once, without running.
        if (dep_unsuccessful) RC_ASSERT((state == task_state::failed || state == task_state::cancelled));
        if (state == task_state::failed && !st.task(node.name).cause.empty()) {
            RC_ASSERT(unsuccessful(st.task(st.task(node.name).cause).state));
        }
    }
}

// `started`: some task was started (a new shard round may make every task pending again).
wf::workflow_status expected_status(const wf::workflow_state& st, bool started) {
    std::map<task_state, std::size_t> counts;
    for (const auto& node : st.graph().tasks()) ++counts[st.task(node.name).state];
    if (counts[task_state::pending] + counts[task_state::running] != 0) {
        return counts[task_state::pending] == st.graph().size() && !started ? wf::workflow_status::pending
                                                                            : wf::workflow_status::running;
    }
    if (counts[task_state::failed] + counts[task_state::timed_out] != 0) return wf::workflow_status::failed;
    if (counts[task_state::cancelled] != 0) return wf::workflow_status::cancelled;
    return wf::workflow_status::completed;
}

// A task the executor started, in the round it was started in.
struct started {
    std::string name;
    std::uint32_t round;
};

std::string result_of(const std::string& name, std::uint32_t round) {
    return "result of " + name + " in round " + std::to_string(round);
}

// Reports a random outcome for one task the executor started. A shard of a
// round that has ended is dropped (an executor cancels it).
void report(wf::workflow_state& st, std::vector<started>& in_flight, std::mt19937_64& rng, wf::time_point now) {
    const auto k = rng() % in_flight.size();
    const auto [name, round] = in_flight[k];
    in_flight.erase(in_flight.begin() + static_cast<std::ptrdiff_t>(k));
    const auto node = st.graph().at(name);
    if (round != st.round(name)) {
        RC_ASSERT(node.is_shard());
        RC_ASSERT(round < st.round(name));
        return;
    }
    const bool was_running = st.task(name).state == task_state::running;
    if (node.is_aggregator() && was_running) {  // exactly one result per shard, all of one round
        std::vector<std::string> expected;
        for (const auto& s : node.shards) expected.push_back(result_of(s, round));
        RC_ASSERT(st.shard_results(name) == expected);
    }
    const auto roll = rng() % 100;
    bool applied = false;
    if (roll < 75) applied = st.complete(name, result_of(name, round), now);
    else if (roll < 85) applied = st.fail(name, "boom", now);
    else if (roll < 93) applied = st.time_out(name, now);
    else applied = st.cancel_task(name, "by user", now);
    RC_ASSERT(applied == was_running);
}

}  // namespace

TEST_CASE("workflow state: random DAGs with random outcomes", "[workflow][prop]") {
    rc::prop("every task ends once, nothing runs early or downstream of a failure, the status agrees",
             [](std::uint64_t seed) {
                 std::mt19937_64 rng(seed);
                 const auto n = *rc::gen::inRange<std::size_t>(1, 300);
                 wf::workflow_state st(wf::expand(random_spec(n, rng)));
                 std::vector<started> in_flight;
                 bool any_started = false;
                 wf::time_point now{};
                 std::size_t steps = 0;
                 while (!st.finished() || !in_flight.empty()) {
                     RC_ASSERT(++steps < 20 * st.graph().size() + 100);
                     now += std::chrono::seconds(1);
                     const auto runnable = st.runnable();
                     // A stall (nothing runnable, nothing running, not finished) fails here.
                     RC_ASSERT(!(runnable.empty() && in_flight.empty()));
                     const auto roll = rng() % 1000;
                     if (roll < 3) {
                         st.cancel("workflow cancelled", now);
                     } else if (!runnable.empty() && (in_flight.empty() || roll < 500)) {
                         const auto& name = runnable[rng() % runnable.size()];
                         st.start(name, now);
                         any_started = true;
                         in_flight.push_back({name, st.round(name)});
                     } else {
                         report(st, in_flight, rng, now);
                     }
                     check_invariants(st);
                     RC_ASSERT(st.status() == expected_status(st, any_started));
                 }
                 std::size_t terminal = 0;
                 for (const auto s : {task_state::completed, task_state::failed, task_state::cancelled,
                                      task_state::timed_out}) {
                     terminal += st.count(s);
                 }
                 RC_ASSERT(terminal == st.graph().size());
                 RC_ASSERT(st.status() == expected_status(st, true));
             });
}

namespace {

wf::resource_inventory random_inventory(std::mt19937_64& rng) {
    static const std::vector<std::string> types{"a100", "a100-80g", "t4"};
    wf::resource_inventory inv{500 * (rng() % 17), 1024 * (rng() % 9), {}, {}};
    for (std::size_t g = 0; g < rng() % 4; ++g) inv.gpus.push_back({types[rng() % types.size()], 8000 * (1 + rng() % 5)});
    if (rng() % 2) inv.labels.push_back("ssd");
    return inv;
}

wf::resource_request random_request(std::mt19937_64& rng) {
    static const std::vector<std::string> types{"", "a100", "a100-80g", "t4", "h100"};
    wf::resource_request r{500 * (rng() % 9), 1024 * (rng() % 5), {}, {}};
    if (rng() % 3 == 0) r.gpu = {static_cast<std::uint32_t>(1 + rng() % 2), types[rng() % types.size()], 8000 * (rng() % 4)};
    if (rng() % 4 == 0) r.labels.push_back("ssd");
    return r;
}

void check_holds(const wf::placement_table& table, const std::vector<std::string>& workers,
                 const std::vector<std::pair<wf::placement, wf::allocation>>& live) {
    for (const auto& id : workers) {
        const auto* w = table.worker(id);
        std::uint64_t cpu = 0, mem = 0;
        std::set<std::size_t> gpus;
        for (const auto& [where, alloc] : live) {
            if (where.worker != id) continue;
            cpu += alloc.cpu_millis;
            mem += alloc.memory_mb;
            for (const auto g : alloc.gpu_indices) RC_ASSERT(gpus.insert(g).second);  // no GPU held twice
        }
        RC_ASSERT(w->held_cpu_millis() == cpu);
        RC_ASSERT(w->held_memory_mb() == mem);
        RC_ASSERT(w->held_gpus() == gpus.size());
        RC_ASSERT(cpu <= w->inventory().cpu_millis);
        RC_ASSERT(mem <= w->inventory().memory_mb);
    }
}

// Places one request; checks it went where it fits (the session's worker
// when that has room), or nowhere only when no worker has room.
void place_one(wf::placement_table& table, const std::vector<std::string>& workers, const wf::resource_request& req,
               const std::string& session, std::vector<std::pair<wf::placement, wf::allocation>>& live,
               std::vector<wf::resource_request>& waiting) {
    std::map<std::string, bool> had_room;
    for (const auto& id : workers) had_room[id] = wf::fits(table.worker(id)->free(), req);
    const auto home = table.session_worker(session);
    const auto p = table.place(req, session);
    const bool any_room = std::any_of(had_room.begin(), had_room.end(), [](const auto& e) { return e.second; });
    RC_ASSERT(p.has_value() == any_room);
    if (!p) {
        waiting.push_back(req);
        return;
    }
    RC_ASSERT(had_room[p->worker]);
    if (home && had_room[*home]) RC_ASSERT(p->worker == *home);
    const auto alloc = table.worker(p->worker)->held(p->hold);
    RC_ASSERT(alloc.has_value());
    for (const auto g : alloc->gpu_indices) {
        const auto& gpu = table.worker(p->worker)->inventory().gpus.at(g);
        RC_ASSERT((req.gpu.type.empty() || gpu.type == req.gpu.type));
        RC_ASSERT(gpu.memory_mb >= req.gpu.memory_mb);
    }
    RC_ASSERT(alloc->gpu_indices.size() == req.gpu.count);
    live.emplace_back(*p, *alloc);
}

}  // namespace

TEST_CASE("placement: random workers and requests", "[workflow][prop]") {
    rc::prop("placed only where it fits, holds within inventory, every satisfiable request placed after releases",
             [](std::uint64_t seed) {
                 std::mt19937_64 rng(seed);
                 wf::placement_table table;
                 std::vector<std::string> workers;
                 for (std::size_t i = 0; i < 1 + rng() % 6; ++i) {
                     workers.push_back("w" + std::to_string(i));
                     table.add_worker(workers.back(), random_inventory(rng));
                 }
                 std::vector<std::pair<wf::placement, wf::allocation>> live;
                 std::vector<wf::resource_request> waiting;
                 const auto steps = *rc::gen::inRange(1, 200);
                 for (int step = 0; step < steps; ++step) {
                     if (!live.empty() && rng() % 3 == 0) {
                         const auto k = rng() % live.size();
                         RC_ASSERT(table.release(live[k].first));
                         live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
                     } else {
                         const auto session = rng() % 2 ? "s" + std::to_string(rng() % 5) : std::string();
                         place_one(table, workers, random_request(rng), session, live, waiting);
                     }
                     check_holds(table, workers, live);
                 }
                 for (const auto& [where, alloc] : live) {
                     const auto held = table.worker(where.worker)->held(where.hold);
                     RC_ASSERT(held == std::optional<wf::allocation>(alloc));
                     RC_ASSERT(table.release(where));
                 }
                 for (const auto& id : workers) RC_ASSERT(table.worker(id)->free() == table.worker(id)->inventory());
                 // Everything released: a waiting request is placed exactly when some worker could ever hold it.
                 for (const auto& req : waiting) {
                     const auto p = table.place(req);
                     RC_ASSERT(p.has_value() == table.could_ever_place(req));
                     if (p) RC_ASSERT(table.release(*p));
                 }
             });
}
