// workflow_state: what may run, failure propagation, cancellation, shards,
// the derived workflow status.
#include <orchcore/workflow/state.hpp>

#include <support/error_helpers.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace wf = orchcore::workflow;
using namespace std::chrono_literals;
using wf::task_state;
using wf::workflow_status;

namespace {

const wf::time_point t0{std::chrono::seconds(1'000'000)};

wf::task_spec task(std::string name, std::vector<std::string> deps = {}) {
    wf::task_spec t;
    t.name = std::move(name);
    t.type = "t";
    t.depends_on = std::move(deps);
    return t;
}

wf::workflow_state state_of(std::vector<wf::task_spec> tasks) {
    wf::workflow_spec spec;
    spec.tasks = std::move(tasks);
    return wf::workflow_state(wf::expand(spec));
}

using names = std::vector<std::string>;

}  // namespace

TEST_CASE("a task becomes runnable once every dependency completed", "[workflow][state]") {
    auto s = state_of({task("a"), task("b"), task("c", {"a", "b"})});
    CHECK(s.status() == workflow_status::pending);
    CHECK(s.runnable() == names{"a", "b"});
    s.start("a", t0);
    CHECK(s.runnable() == names{"b"});
    CHECK(s.status() == workflow_status::running);
    CHECK(s.complete("a", "ra", t0 + 1s));
    CHECK(s.runnable() == names{"b"});
    s.start("b", t0);
    CHECK(s.complete("b", "rb", t0 + 2s));
    CHECK(s.runnable() == names{"c"});
    s.start("c", t0 + 2s);
    CHECK(s.complete("c", "rc", t0 + 3s));
    CHECK(s.finished());
    CHECK(s.status() == workflow_status::completed);
    CHECK(s.task("c").result == "rc");
    CHECK(s.task("c").started_at == t0 + 2s);
    CHECK(s.task("c").finished_at == t0 + 3s);
}

TEST_CASE("tasks addressed by index behave as when addressed by name", "[workflow][state]") {
    auto s = state_of({task("a"), task("b"), task("c", {"b", "a"})});
    const auto& g = s.graph();
    const auto a = *g.index_of("a"), b = *g.index_of("b"), c = *g.index_of("c");
    CHECK(s.dependencies_of(c) == std::vector<std::size_t>{b, a});
    CHECK(s.runnable_indices() == std::vector<std::size_t>{a, b});
    s.start_at(a, t0);
    s.start_at(b, t0);
    CHECK(s.task("a").state == task_state::running);
    CHECK(s.end_at(a, task_state::completed, "ra", t0 + 1s));
    CHECK_FALSE(s.end_at(a, task_state::failed, "late", t0 + 2s));  // already ended
    CHECK(s.runnable().empty());
    CHECK(s.end_at(b, task_state::completed, "rb", t0 + 1s));
    CHECK(s.runnable_indices() == std::vector<std::size_t>{c});
    s.start_at(c, t0 + 1s);
    CHECK(s.end_at(c, task_state::timed_out, "timed out", t0 + 2s));
    CHECK(s.task_at(c).state == task_state::timed_out);
    CHECK(s.task_at(a).result == "ra");
    CHECK(s.status() == workflow_status::failed);
}

TEST_CASE("an index out of range or an end that is not one is refused", "[workflow][state]") {
    auto s = state_of({task("a")});
    using orchcore::test::invalid_field;
    CHECK(invalid_field([&] { (void)s.task_at(1); }) ==
          "task | orchcore: invalid task = 1: no task of the workflow has this index");
    CHECK(invalid_field([&] { s.start_at(7, t0); }) ==
          "task | orchcore: invalid task = 7: no task of the workflow has this index");
    CHECK(invalid_field([&] { (void)s.graph().dependency_indices(1); }) ==
          "task | orchcore: invalid task = 1: no task of the workflow has this index");
    s.start_at(0, t0);
    CHECK(invalid_field([&] { s.end_at(0, task_state::running, "", t0); }) ==
          "state | orchcore: invalid state = running: not an end of a task");
    CHECK(s.task("a").state == task_state::running);
}

TEST_CASE("starting a task that is not runnable, or reporting one never started, is refused",
          "[workflow][state]") {
    auto s = state_of({task("a"), task("b", {"a"})});
    using orchcore::test::invalid_field;
    CHECK(invalid_field([&] { s.start("b", t0); }) ==
          "task | orchcore: invalid task = b: not runnable: a dependency has not completed");
    CHECK(invalid_field([&] { s.start("nope", t0); }) ==
          "task | orchcore: invalid task = nope: no task of the workflow has this name");
    CHECK(invalid_field([&] { s.complete("a", "", t0); }) == "task | orchcore: invalid task = a: was never started");
    s.start("a", t0);
    CHECK(invalid_field([&] { s.start("a", t0); }) == "task | orchcore: invalid task = a: not runnable: it is running");
}

TEST_CASE("a failure fails everything downstream at once, naming the dependency", "[workflow][state]") {
    auto s = state_of({task("a"), task("b", {"a"}), task("c", {"b"}), task("side")});
    s.start("a", t0);
    s.start("side", t0);
    CHECK(s.fail("a", "exit code 3", t0 + 1s));
    CHECK(s.task("a").state == task_state::failed);
    CHECK(s.task("a").reason == "exit code 3");
    CHECK(s.task("b").state == task_state::failed);
    CHECK(s.task("b").reason == "dependency 'a' failed");
    CHECK(s.task("b").cause == "a");
    CHECK(s.task("c").reason == "dependency 'b' failed");
    CHECK(s.task("c").finished_at == t0 + 1s);
    CHECK(s.runnable().empty());
    CHECK(s.status() == workflow_status::running);  // "side" still runs
    CHECK(s.complete("side", "ok", t0 + 2s));
    CHECK(s.status() == workflow_status::failed);
}

TEST_CASE("a timeout or a cancelled task fails its dependants too", "[workflow][state]") {
    auto s = state_of({task("a"), task("b", {"a"}), task("x"), task("y", {"x"})});
    s.start("a", t0);
    CHECK(s.time_out("a", t0 + 1s));
    CHECK(s.task("a").state == task_state::timed_out);
    CHECK(s.task("b").reason == "dependency 'a' timed_out");
    CHECK(s.cancel_task("x", "user asked", t0 + 1s));  // pending: cancelled without running
    CHECK(s.task("x").state == task_state::cancelled);
    CHECK(s.task("y").state == task_state::failed);
    CHECK(s.task("y").reason == "dependency 'x' cancelled");
    CHECK(s.status() == workflow_status::failed);
}

TEST_CASE("cancelling the workflow cancels every unfinished task; late reports change nothing",
          "[workflow][state]") {
    auto s = state_of({task("a"), task("b"), task("c", {"a"})});
    s.start("a", t0);
    s.start("b", t0);
    CHECK(s.complete("b", "rb", t0));
    CHECK(s.cancel("shutdown", t0 + 1s) == 2);
    CHECK(s.task("a").state == task_state::cancelled);
    CHECK(s.task("c").state == task_state::cancelled);
    CHECK(s.task("c").reason == "shutdown");
    CHECK(s.task("b").state == task_state::completed);
    CHECK(s.status() == workflow_status::cancelled);
    CHECK_FALSE(s.complete("a", "late", t0 + 2s));
    CHECK(s.task("a").state == task_state::cancelled);
    CHECK(s.cancel("again", t0 + 3s) == 0);
}

TEST_CASE("shards: the aggregator runs when all completed and gets their results in shard order",
          "[workflow][state]") {
    wf::workflow_spec spec;
    spec.tasks = {task("split"), task("join", {"split"})};
    spec.tasks[0].shards = wf::shard_spec{3, "merge"};
    wf::workflow_state s(wf::expand(spec));
    CHECK(s.runnable() == names{"split#0", "split#1", "split#2"});
    for (const auto& n : s.runnable()) s.start(n, t0);
    CHECK(s.complete("split#2", "r2", t0));
    CHECK(s.complete("split#0", "r0", t0));
    CHECK(s.runnable().empty());
    CHECK_THROWS_AS(s.shard_results("split"), orchcore::invalid_argument);
    CHECK(s.complete("split#1", "r1", t0));
    CHECK(s.runnable() == names{"split"});
    CHECK(s.shard_results("split") == names{"r0", "r1", "r2"});
}

TEST_CASE("shards: one failing fails the parent and cancels the siblings that have not started",
          "[workflow][state]") {
    wf::workflow_spec spec;
    spec.tasks = {task("split"), task("join", {"split"})};
    spec.tasks[0].shards = wf::shard_spec{4, "merge"};
    wf::workflow_state s(wf::expand(spec));
    s.start("split#0", t0);
    s.start("split#1", t0);
    CHECK(s.fail("split#1", "oom", t0 + 1s));
    CHECK(s.task("split").state == task_state::failed);
    CHECK(s.task("split").reason == "dependency 'split#1' failed");
    CHECK(s.task("join").state == task_state::failed);
    CHECK(s.task("split#2").state == task_state::cancelled);
    CHECK(s.task("split#3").reason == "shard 'split#1' of 'split' did not complete");
    CHECK(s.task("split#0").state == task_state::running);  // the executor decides about running shards
    CHECK(s.runnable().empty());
    CHECK(s.complete("split#0", "r0", t0 + 2s));
    CHECK(s.task("split").state == task_state::failed);
    CHECK(s.status() == workflow_status::failed);
}

TEST_CASE("overdue lists running tasks past their timeout; the maximum timeout never expires",
          "[workflow][state]") {
    auto short_task = task("short");
    short_task.options.timeout = 5s;
    auto endless = task("endless");
    endless.options.timeout = std::chrono::milliseconds::max();
    auto s = state_of({short_task, endless, task("none")});
    for (const auto& n : s.runnable()) s.start(n, t0);
    CHECK(s.overdue(t0 + 4s).empty());
    CHECK(s.overdue(t0 + 5s) == names{"short"});
    CHECK(s.overdue(wf::time_point::max()) == names{"short"});
    CHECK(s.overdue(t0 - 1s).empty());  // a clock that went back
}

namespace {

// "split" (3 shards, aggregator "merge", `rounds` rounds) and "join" after it.
wf::workflow_state in_rounds(std::uint32_t rounds) {
    wf::workflow_spec spec;
    spec.tasks = {task("split"), task("join", {"split"})};
    spec.tasks[0].shards = wf::shard_spec{.count = 3, .aggregator_type = "merge", .rounds = rounds};
    return wf::workflow_state(wf::expand(spec));
}

void start_all(wf::workflow_state& s) {
    for (const auto& n : s.runnable()) s.start(n, t0);
}

}  // namespace

TEST_CASE("shard rounds: a failed shard starts every shard again; the aggregator gets one complete round",
          "[workflow][state]") {
    auto s = in_rounds(3);
    CHECK(s.round("split#0") == 1);
    start_all(s);
    CHECK(s.complete("split#0", "a0", t0 + 1s));
    CHECK(s.fail("split#1", "oom", t0 + 2s));  // split#2 was running: the caller cancels it
    CHECK(s.round("split#2") == 2);
    CHECK(s.round("split") == 2);
    CHECK(s.round("join") == 1);
    CHECK(s.runnable() == names{"split#0", "split#1", "split#2"});
    CHECK(s.task("split#0").state == task_state::pending);
    CHECK(s.task("split#0").result.empty());
    CHECK(s.task("split#1").reason.empty());
    CHECK(s.task("split").state == task_state::pending);
    CHECK(s.count(task_state::pending) == 5);
    CHECK(s.status() == workflow_status::running);
    CHECK_THROWS_AS(s.complete("split#2", "late", t0), orchcore::invalid_argument);  // not started in round 2
    start_all(s);
    CHECK(s.complete("split#2", "b2", t0 + 3s));
    CHECK(s.complete("split#0", "b0", t0 + 3s));
    CHECK(s.runnable().empty());
    CHECK(s.complete("split#1", "b1", t0 + 4s));
    CHECK(s.runnable() == names{"split"});
    CHECK(s.shard_results("split") == names{"b0", "b1", "b2"});
    s.start("split", t0 + 5s);
    CHECK(s.complete("split", "merged", t0 + 6s));
    CHECK(s.runnable() == names{"join"});
}

TEST_CASE("shard rounds: once they are used up the parent fails naming the shard and the round",
          "[workflow][state]") {
    auto s = in_rounds(2);
    start_all(s);
    CHECK(s.time_out("split#2", t0 + 1s));  // a time-out ends a round as a failure does
    CHECK(s.round("split") == 2);
    s.start("split#0", t0 + 2s);
    CHECK(s.fail("split#0", "oom", t0 + 3s));
    CHECK(s.round("split") == 2);
    CHECK(s.task("split").state == task_state::failed);
    CHECK(s.task("split").reason == "dependency 'split#0' failed in round 2 of 2");
    CHECK(s.task("split").cause == "split#0");
    CHECK(s.task("join").state == task_state::failed);
    CHECK(s.task("split#1").state == task_state::cancelled);  // had not started in round 2
    CHECK(s.runnable().empty());
    CHECK(s.status() == workflow_status::failed);
}

TEST_CASE("shard rounds: a cancelled shard fails the parent without another round", "[workflow][state]") {
    auto s = in_rounds(3);
    start_all(s);
    CHECK(s.cancel_task("split#1", "by hand", t0 + 1s));
    CHECK(s.round("split") == 1);
    CHECK(s.task("split").state == task_state::failed);
    CHECK(s.task("split").reason == "dependency 'split#1' cancelled in round 1 of 3");
    CHECK(s.task("join").state == task_state::failed);
}

TEST_CASE("shard rounds: a shard failing after a sibling was cancelled starts no round", "[workflow][state]") {
    auto s = in_rounds(3);
    start_all(s);
    CHECK(s.cancel_task("split#0", "by hand", t0 + 1s));
    CHECK(s.fail("split#1", "oom", t0 + 2s));
    CHECK(s.round("split") == 1);
    CHECK(s.task("split#0").state == task_state::cancelled);
    CHECK(s.task("split#1").state == task_state::failed);
    CHECK(s.task("split").cause == "split#0");
    CHECK(s.runnable().empty());
}

TEST_CASE("shard rounds: cancelling the workflow in a later round cancels that round", "[workflow][state]") {
    auto s = in_rounds(3);
    start_all(s);
    CHECK(s.fail("split#0", "oom", t0 + 1s));
    start_all(s);
    CHECK(s.complete("split#1", "b1", t0 + 2s));
    CHECK(s.cancel("stop", t0 + 3s) == 4);  // split#0, split#2, split, join
    CHECK(s.task("split#0").state == task_state::cancelled);
    CHECK(s.task("split#1").state == task_state::completed);
    CHECK(s.status() == workflow_status::cancelled);
    CHECK(s.finished());
}

TEST_CASE("shard rounds: restore_round puts a fan-out that has not started in a later round",
          "[workflow][state]") {
    auto s = in_rounds(3);
    s.restore_round("split", 3);
    CHECK(s.round("split#1") == 3);
    CHECK_THROWS_WITH(s.restore_round("split", 4), "orchcore: invalid round = 4: expected a round in [1, 3]");
    CHECK_THROWS_AS(s.restore_round("split", 0), orchcore::invalid_argument);
    CHECK_THROWS_AS(s.restore_round("join", 1), orchcore::invalid_argument);
    start_all(s);
    CHECK_THROWS_AS(s.restore_round("split", 2), orchcore::invalid_argument);
    CHECK(s.fail("split#0", "oom", t0));  // the last round: no more
    CHECK(s.task("split").reason == "dependency 'split#0' failed in round 3 of 3");
}
