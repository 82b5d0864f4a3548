// Workflow specs: validation, stage and shard expansion.
#include <orchcore/workflow/spec.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace wf = orchcore::workflow;

namespace {

wf::task_spec task(std::string name, std::vector<std::string> deps = {}, std::string type = "t") {
    wf::task_spec t;
    t.name = std::move(name);
    t.type = std::move(type);
    t.depends_on = std::move(deps);
    return t;
}

// The message of the spec_error `spec` is refused with, or "accepted".
std::string refusal(const wf::workflow_spec& spec, const wf::spec_limits& limits = {}) {
    try {
        (void)wf::expand(spec, limits);
    } catch (const wf::spec_error& e) {
        return e.what();
    }
    return "accepted";
}

std::vector<std::string> names(const wf::workflow_graph& g) {
    std::vector<std::string> out;
    for (const auto& t : g.tasks()) out.push_back(t.name);
    return out;
}

}  // namespace

TEST_CASE("a workflow graph lists dependencies first; among tasks ready together the first declared",
          "[workflow][spec]") {
    wf::workflow_spec spec;
    spec.tasks = {task("report", {"b", "a"}), task("a"), task("b", {"a"}), task("c")};
    const auto g = wf::expand(spec);
    CHECK(names(g) == std::vector<std::string>{"a", "b", "report", "c"});
    CHECK(g.at("report").depends_on == std::vector<std::string>{"b", "a"});
    CHECK(g.index_of("c") == 3u);
    CHECK_FALSE(g.index_of("zzz"));
}

TEST_CASE("stages run as a pipeline: each depends on the previous one", "[workflow][spec]") {
    wf::workflow_spec spec;
    spec.tasks = {task("fetch")};
    spec.stages = {task("prepare", {"fetch"}), task("train"), task("evaluate")};
    spec.stages[2].payload = R"({"model": "${train.result.model_url}", "data": "${prepare.result}"})";
    const auto g = wf::expand(spec);
    CHECK(names(g) == std::vector<std::string>{"fetch", "prepare", "train", "evaluate"});
    CHECK(g.at("prepare").depends_on == std::vector<std::string>{"fetch"});
    CHECK(g.at("train").depends_on == std::vector<std::string>{"prepare"});
    CHECK(g.at("evaluate").depends_on == std::vector<std::string>{"train"});
    CHECK(g.at("evaluate").result_refs == std::vector<std::string>{"train", "prepare"});
}

TEST_CASE("a result reference must name a task the referring one depends on", "[workflow][spec]") {
    wf::workflow_spec spec;
    spec.stages = {task("one"), task("two")};
    spec.stages[0].payload = "${two.result}";
    CHECK(refusal(spec) ==
          "stages[0].payload: refers to the result of a task it does not depend on (got ${two.result})");
    spec.stages[0].payload = "${nobody.result.x}";
    CHECK(refusal(spec) ==
          "stages[0].payload: refers to the result of a task it does not depend on (got ${nobody.result})");
    spec.stages[0].payload = "${HOME} ${two.resultant}";  // not result references
    CHECK(refusal(spec) == "accepted");
}

TEST_CASE("a sharded task expands into ordered shards and an aggregator under its name", "[workflow][spec]") {
    wf::workflow_spec spec;
    spec.tasks = {task("load"), task("infer", {"load"}, "model"), task("publish", {"infer"})};
    spec.tasks[1].shards = wf::shard_spec{.count = 3, .aggregator_type = "merge", .rounds = 2};
    spec.tasks[1].resources.gpu.count = 1;
    const auto g = wf::expand(spec);
    CHECK(names(g) == std::vector<std::string>{"load", "infer#0", "infer#1", "infer#2", "infer", "publish"});
    const auto& shard = g.at("infer#1");
    CHECK(shard.type == "model");
    CHECK(shard.shard_of == "infer");
    CHECK(shard.shard_index == 1);
    CHECK(shard.shard_count == 3);
    CHECK(shard.depends_on == std::vector<std::string>{"load"});
    CHECK(shard.resources.gpu.count == 1);
    CHECK(shard.shard_rounds == 2);
    const auto& aggregator = g.at("infer");
    CHECK(aggregator.shard_rounds == 2);
    CHECK(g.at("load").shard_rounds == 1);
    CHECK(aggregator.type == "merge");
    CHECK(aggregator.is_aggregator());
    CHECK(aggregator.shards == std::vector<std::string>{"infer#0", "infer#1", "infer#2"});
    CHECK(aggregator.depends_on == aggregator.shards);
    CHECK(g.at("publish").depends_on == std::vector<std::string>{"infer"});
}

TEST_CASE("a dependency cycle is refused with its tasks in order", "[workflow][spec]") {
    wf::workflow_spec spec;
    spec.tasks = {task("ok"), task("a", {"c"}), task("b", {"a"}), task("c", {"b", "ok"})};
    CHECK(refusal(spec) == "tasks[1].depends_on: dependency cycle (got a -> c -> b -> a)");

    wf::workflow_spec staged;  // a cycle through the implicit stage order
    staged.stages = {task("s1", {"s2"}), task("s2")};
    CHECK(refusal(staged) == "stages[0].depends_on: dependency cycle (got s1 -> s2 -> s1)");
}

TEST_CASE("bad names, dependencies and shard counts are refused by path", "[workflow][spec]") {
    wf::workflow_spec spec;
    CHECK(refusal(spec) == "tasks: a workflow needs at least one task or stage");

    spec.tasks = {task("a"), task("b", {"missing"})};
    CHECK(refusal(spec) == "tasks[1].depends_on[0]: no task or stage has this name (got \"missing\")");
    spec.tasks = {task("a", {"a"})};
    CHECK(refusal(spec) == "tasks[0].depends_on[0]: a task cannot depend on itself (got \"a\")");
    spec.tasks = {task("a"), task("a")};
    CHECK(refusal(spec) == "tasks[1].name: duplicate name (also tasks[0].name) (got \"a\")");
    spec.tasks = {task("a")};
    spec.stages = {task("a")};
    CHECK(refusal(spec) == "stages[0].name: duplicate name (also tasks[0].name) (got \"a\")");
    spec.stages.clear();

    for (const auto& bad : std::vector<std::string>{"", "a b", "x#1", "a/b", std::string(129, 'n')}) {
        spec.tasks = {task(bad)};
        CHECK_THAT(refusal(spec), Catch::StartsWith("tasks[0].name: a name is 1 to 128 letters"));
    }
    spec.tasks = {task("a", {}, "")};
    CHECK(refusal(spec) == "tasks[0].type: a task needs a type (got \"\")");
    spec.tasks = {task("a")};
    spec.tasks[0].options.priority = 21;
    CHECK(refusal(spec) == "tasks[0].priority: expected a priority in [0, 20] (got 21)");

    spec.tasks = {task("a")};
    spec.tasks[0].shards = wf::shard_spec{0, "merge"};
    CHECK(refusal(spec) == "tasks[0].shards.count: expected a shard count in [1, 1024] (got 0)");
    spec.tasks[0].shards = wf::shard_spec{5, "merge"};
    CHECK(refusal(spec, {.max_shards = 4}) == "tasks[0].shards.count: expected a shard count in [1, 4] (got 5)");
    spec.tasks[0].shards = wf::shard_spec{2, ""};
    CHECK(refusal(spec) == "tasks[0].shards.aggregator: a sharded task needs an aggregator type (got \"\")");
    spec.tasks[0].shards = wf::shard_spec{.count = 2, .aggregator_type = "merge", .rounds = 0};
    CHECK(refusal(spec) == "tasks[0].shards.rounds: expected a positive integer at most 100 (got 0)");
    spec.tasks[0].shards->rounds = 101;
    CHECK(refusal(spec) == "tasks[0].shards.rounds: expected a positive integer at most 100 (got 101)");
    spec.tasks[0].shards->rounds = 4;
    CHECK(refusal(spec, {.max_shard_rounds = 3}) == "tasks[0].shards.rounds: expected a positive integer at most 3 (got 4)");
}

TEST_CASE("a spec error is an invalid_argument naming the path and the value", "[workflow][spec]") {
    wf::workflow_spec spec;
    spec.tasks = {task("a", {"ghost"})};
    try {
        (void)wf::expand(spec);
        FAIL("accepted");
    } catch (const orchcore::invalid_argument& e) {
        CHECK(e.field() == "tasks[0].depends_on[0]");
        CHECK(e.value() == "\"ghost\"");
        CHECK(e.code() == orchcore::errc::invalid_argument);
    }
}

TEST_CASE("the task limit counts shards", "[workflow][spec]") {
    wf::workflow_spec spec;
    spec.tasks = {task("a")};
    spec.tasks[0].shards = wf::shard_spec{9, "m"};
    CHECK(refusal(spec, {.max_tasks = 10}) == "accepted");
    CHECK(refusal(spec, {.max_tasks = 9}) == "tasks: more than 9 tasks after expanding shards (got 10)");
}

TEST_CASE("a cycle through every task of a large workflow is refused, not a stack overflow", "[workflow][spec]") {
    constexpr int n = 100'000;
    wf::workflow_spec spec;
    for (int i = 0; i < n; ++i) spec.tasks.push_back(task("t" + std::to_string(i), {"t" + std::to_string((i + 1) % n)}));
    CHECK_THAT(refusal(spec), Catch::StartsWith("tasks[0].depends_on: dependency cycle (got t0 -> t1 -> t2 -> "));
}

TEST_CASE("a refused value is shown escaped and bounded in the message", "[workflow][spec]") {
    wf::workflow_spec spec;
    spec.tasks = {task(std::string("a\0b", 3))};
    CHECK(refusal(spec) == "tasks[0].name: a name is 1 to 128 letters, digits, '_', '-' or '.' (got \"a\\u0000b\")");
    spec.tasks = {task(std::string(1 << 20, 'n'))};
    const auto message = refusal(spec);
    CHECK(message.size() < 300);
    CHECK_THAT(message, Catch::EndsWith("nnn...)"));
    spec.tasks = {task("a", {std::string(1 << 20, 'g')})};
    try {
        (void)wf::expand(spec);
        FAIL("accepted");
    } catch (const wf::spec_error& e) {
        CHECK(e.value().size() == (1 << 20) + 2);  // value() keeps it whole
        CHECK(std::string(e.what()).size() < 300);
    }
}

TEST_CASE("options and resources the coordinator would refuse are refused by path", "[workflow][spec]") {
    wf::workflow_spec spec;
    spec.tasks = {task("a")};
    spec.tasks[0].options.retries = 1001;
    CHECK(refusal(spec) == "tasks[0].retries: expected at most 1000 retries (got 1001)");
    spec.tasks[0].options.retries = 1000;
    CHECK(refusal(spec) == "accepted");
    spec.tasks[0].options.timeout = std::chrono::milliseconds(-5);
    CHECK(refusal(spec) == "tasks[0].timeout_ms: must be >= 0 (got -5)");
    spec.tasks[0].options.timeout = {};
    spec.tasks[0].options.turn_timeout = std::chrono::milliseconds(-1);
    CHECK(refusal(spec) == "tasks[0].turn_timeout_ms: must be >= 0 (got -1)");
    spec.tasks[0].options.turn_timeout = {};
    spec.tasks[0].resources.gpu.count = 1025;
    CHECK(refusal(spec) == "tasks[0].resources.gpu.count: must be at most 1024 (got 1025)");
    spec.tasks[0].resources.gpu.count = 0;
    spec.tasks[0].resources.gpu.type = "a100";
    CHECK(refusal(spec) == "tasks[0].resources.gpu.type: needs gpu.count >= 1 (got \"a100\")");
    spec.tasks[0].resources.gpu.type.clear();
    spec.tasks[0].resources.labels = {"zone=eu", ""};
    CHECK(refusal(spec) == "tasks[0].resources.labels[1]: a label must not be empty (got \"\")");
}
