// Property test of the workflow runner on the in-process coordinator:
// random DAGs (up to 300 tasks, some sharded) with random failures, random
// cancellations of running tasks and of whole workflows, run for real.
// Each task ends in exactly one terminal state, none starts before its
// dependencies completed or twice, nothing downstream of an unsuccessful
// task runs, and the workflow's status agrees with its tasks.
#include <orchcore/coordinator.hpp>
#include <orchcore/workflow/runner.hpp>

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include "support/sync_helpers.hpp"
#include "support/workflow_probe.hpp"

#include <algorithm>
#include <iostream>
#include <map>
#include <sstream>
#include <random>
#include <string>
#include <vector>

namespace oc = orchcore;
namespace wf = orchcore::workflow;
using wf::task_state;
using namespace std::chrono_literals;

namespace {

// rc::prop with at most `max_success` cases (RC_PARAMS can lower it) and
// no shrinking (the property runs threads; a re-run costs more than it tells).
template <class Testable>
void prop_limited(const std::string& description, int max_success, Testable&& testable) {
    auto params = rc::detail::configuration().testParams;
    params.maxSuccess = std::min(params.maxSuccess, max_success);
    params.disableShrinking = true;
    rc::detail::TestMetadata metadata;
    metadata.id = description;
    metadata.description = description;
    const auto result = rc::detail::checkTestable(std::forward<Testable>(testable), metadata, params);
    if (!result.template is<rc::detail::SuccessResult>()) {
        std::ostringstream os;
        rc::detail::printResultMessage(result, os);
        FAIL(os.str());
    }
}

wf::workflow_spec random_spec(std::size_t n, std::mt19937_64& rng) {
    wf::workflow_spec spec{.name = "random"};
    for (std::size_t i = 0; i < n; ++i) {
        wf::task_spec t{.name = "t" + std::to_string(i), .type = "op"};
        const auto roll = rng() % 100;
        t.payload = roll < 4 ? "fail" : roll < 7 ? "block" : roll < 20 ? "slow" : "ok";
        const auto deps = i == 0 ? 0 : rng() % 4;
        for (std::size_t d = 0; d < deps; ++d) {
            auto dep = "t" + std::to_string(rng() % i);
            if (std::find(t.depends_on.begin(), t.depends_on.end(), dep) == t.depends_on.end()) t.depends_on.push_back(dep);
        }
        if (rng() % 12 == 0) t.shards = wf::shard_spec{static_cast<std::uint32_t>(1 + rng() % 4), "op"};
        spec.tasks.push_back(std::move(t));
    }
    return spec;
}

bool unsuccessful(task_state s) {
    return s == task_state::failed || s == task_state::cancelled || s == task_state::timed_out;
}

wf::workflow_status expected_status(const wf::workflow_record& r) {
    bool failed = false, cancelled = false;
    for (const auto& t : r.tasks) {
        failed = failed || t.state == task_state::failed || t.state == task_state::timed_out;
        cancelled = cancelled || t.state == task_state::cancelled;
    }
    return failed ? wf::workflow_status::failed : cancelled ? wf::workflow_status::cancelled : wf::workflow_status::completed;
}

// Cancels "block" tasks once they run (each with some luck, the rest a bit
// later) and, if asked, the whole workflow after `cancel_after` starts.
void drive(oc::coordinator& c, const wf::workflow_handle& h, const wf::workflow_spec& spec,
           oc::test::workflow_probe& probe, std::size_t cancel_after) {
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    bool cancelled = false;
    while (!h.wait_for(2ms)) {
        RC_ASSERT(std::chrono::steady_clock::now() < deadline);
        const auto starts = probe.starts();
        if (!cancelled && starts.size() >= cancel_after) cancelled = h.cancel() || true;
        for (const auto& t : spec.tasks) {
            if (t.payload != "block") continue;
            for (const auto& [name, n] : starts)
                if (name == t.name || name.starts_with(t.name + "#")) (void)c.cancel(wf::task_id(h.id(), name));
        }
    }
}

void check(const wf::workflow_record& r, const oc::test::workflow_probe& probe) {
    RC_ASSERT(r.finished());
    RC_ASSERT(probe.early().empty());
    std::map<std::string, task_state> state;
    for (const auto& t : r.tasks) state[t.name] = t.state;
    for (const auto& t : r.tasks) {
        RC_ASSERT(wf::is_terminal(t.state));
        const auto starts = probe.starts_of(t.name);
        RC_ASSERT(starts <= 1);
        if (t.state == task_state::completed) RC_ASSERT(starts == 1);
        if (!t.cause.empty()) {
            RC_ASSERT(unsuccessful(state.at(t.cause)));
            RC_ASSERT(starts == 0);  // failed because of a dependency: never ran
        }
    }
    RC_ASSERT(r.status == expected_status(r));
}

}  // namespace

TEST_CASE("workflow runner: random DAGs with failures and cancellations", "[prop][workflow][runner]") {
    prop_limited("random graphs through the real runner", 25, [] {
        const auto n = *rc::gen::inRange<std::size_t>(1, 301);
        std::mt19937_64 rng(*rc::gen::arbitrary<std::uint64_t>());
        const auto spec = random_spec(n, rng);
        const auto cancel_after = rng() % 3 == 0 ? rng() % (n + 1) : std::size_t(-1);
        oc::coordinator_options o;
        o.scaling.min_workers = o.scaling.max_workers = 4;
        o.worker_timeout = 5000ms;
        o.cancel_grace = 500ms;
        oc::coordinator c{o};
        oc::test::workflow_probe probe;
        probe.attach(c);
        oc::test::gate_guard open_at_end{probe.blocker()};
        wf::workflow_runner runner(c, {.poll_interval = 5ms});
        auto h = runner.submit_workflow(spec);
        drive(c, h, spec, probe, cancel_after);
        const auto r = h.wait();
        check(r, probe);
        // Nothing of the workflow is left running once it ended.
        RC_ASSERT(oc::test::eventually([&] {
            return std::all_of(r.tasks.begin(), r.tasks.end(), [&](const auto& t) {
                const auto st = c.get_status(t.id);
                return !st || oc::is_terminal(*st);
            });
        }, 30s));
    });
}
