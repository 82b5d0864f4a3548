// Workflow specs from JSON: the schema, and refusals naming the field's path.
#include <orchcore/workflow/json.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace wf = orchcore::workflow;
using namespace std::chrono_literals;

namespace {

std::string refusal(const std::string& text) {
    try {
        (void)wf::parse_workflow_json(text);
    } catch (const wf::spec_error& e) {
        return e.what();
    }
    return "accepted";
}

// A document with one task whose fields are `fields` (JSON members).
std::string one_task(const std::string& fields) {
    return R"({"tasks": [{"name": "a", "type": "t")" + (fields.empty() ? "" : ", " + fields) + "}]}";
}

}  // namespace

TEST_CASE("a workflow parses from JSON with every field of the schema", "[workflow][json]") {
    const auto spec = wf::parse_workflow_json(R"({
      "name": "train",
      "tasks": [ {"name": "prep", "type": "shell", "payload": "make data"} ],
      "stages": [ {"name": "fit", "type": "train", "payload": {"lr": 0.5, "in": "${prep.result}"},
                   "depends_on": ["prep"], "retries": 2, "timeout_ms": 60000,
                   "turn_timeout_ms": 10000, "priority": 10, "tags": ["gpu", "big"], "session": "chat-7",
                   "resources": {"cpu": 2.5, "memory_mb": 16384,
                                 "gpu": {"count": 2, "type": "a100", "memory_mb": 40000},
                                 "labels": ["zone=eu"]},
                   "shards": {"count": 4, "aggregator": "merge"}} ]
    })");
    CHECK(spec.name == "train");
    REQUIRE(spec.tasks.size() == 1);
    CHECK(spec.tasks[0].payload == "make data");
    REQUIRE(spec.stages.size() == 1);
    const auto& fit = spec.stages[0];
    CHECK(fit.payload == R"({"lr":5E-1,"in":"${prep.result}"})");
    CHECK(fit.depends_on == std::vector<std::string>{"prep"});
    CHECK(fit.options.retries == 2u);
    CHECK(fit.options.timeout == 60s);
    CHECK(fit.options.turn_timeout == 10s);
    CHECK(fit.options.priority == 10);
    CHECK(fit.options.tags == std::vector<std::string>{"gpu", "big"});
    CHECK(fit.options.session == "chat-7");
    CHECK(fit.resources.cpu_millis == 2500);
    CHECK(fit.resources.memory_mb == 16384);
    CHECK(fit.resources.gpu == wf::gpu_request{2, "a100", 40000});
    CHECK(fit.resources.labels == std::vector<std::string>{"zone=eu"});
    REQUIRE(fit.shards);
    CHECK(*fit.shards == wf::shard_spec{4, "merge"});
}

TEST_CASE("a spec written as JSON parses back to the same spec, session included", "[workflow][json]") {
    const auto spec = wf::parse_workflow_json(one_task(R"("session": "chat \"7\"", "tags": ["gpu"],
                                                          "resources": {"gpu": {"count": 1, "type": "t4"}})"));
    REQUIRE(spec.tasks.size() == 1);
    CHECK(spec.tasks[0].options.session == "chat \"7\"");
    CHECK(wf::parse_workflow_json(wf::to_workflow_json(spec)) == spec);
    CHECK(wf::parse_workflow_json(wf::to_workflow_json(wf::parse_workflow_json(one_task("")))).tasks[0]
              .options.session.empty());
}

TEST_CASE("shard rounds parse from JSON and are written back only when there are several", "[workflow][json]") {
    const auto spec = wf::parse_workflow_json(one_task(R"("shards": {"count": 4, "aggregator": "m", "rounds": 3})"));
    REQUIRE(spec.tasks[0].shards);
    CHECK(*spec.tasks[0].shards == wf::shard_spec{.count = 4, .aggregator_type = "m", .rounds = 3});
    CHECK(wf::to_workflow_json(spec).find(R"("rounds":3)") != std::string::npos);
    CHECK(wf::parse_workflow_json(wf::to_workflow_json(spec)) == spec);
    const auto once = wf::parse_workflow_json(one_task(R"("shards": {"count": 4, "aggregator": "m"})"));
    CHECK(once.tasks[0].shards->rounds == 1);
    CHECK(wf::to_workflow_json(once).find("rounds") == std::string::npos);
}

TEST_CASE("a malformed JSON spec is refused with the path of the offending field", "[workflow][json]") {
    CHECK(refusal(R"({"tasks": [{"name":"a","type":"t"},{"name":"b","type":"t"},{"name":"c","type":"t"},
                     {"name":"d","type":"t","resources":{"gpu":{"count":"two"}}}]})") ==
          R"(tasks[3].resources.gpu.count: expected an integer (got "two"))");
    CHECK(refusal(one_task(R"("resources": {"gpu": {"count": -1}})")) ==
          "tasks[0].resources.gpu.count: expected a non-negative integer (got -1)");
    CHECK(refusal(one_task(R"("resources": {"cpu": "4"})")) ==
          R"(tasks[0].resources.cpu: expected a number of cores (got "4"))");
    CHECK(refusal(one_task(R"("resources": {"cpu": -0.5})")) ==
          "tasks[0].resources.cpu: expected cores in [0, 1e12] (got -5E-1)");
    CHECK(refusal(one_task(R"("resources": {"disk": 1})")) == "tasks[0].resources.disk: unknown field (got 1)");
    CHECK(refusal(one_task(R"("depends_on": "b")")) == R"(tasks[0].depends_on: expected an array (got "b"))");
    CHECK(refusal(one_task(R"("tags": ["x", 3])")) == "tasks[0].tags[1]: expected a string (got 3)");
    CHECK(refusal(one_task(R"("session": 3)")) == "tasks[0].session: expected a string (got 3)");
    CHECK(refusal(one_task(R"("retries": 4294967296)")) ==
          "tasks[0].retries: expected an integer at most 4294967295 (got 4294967296)");
    CHECK(refusal(one_task(R"("timeout_ms": 1.5)")) == "tasks[0].timeout_ms: expected an integer (got 1.5E0)");
    CHECK(refusal(one_task(R"("shards": {"count": 2})")) == "tasks[0].shards.aggregator: missing");
    CHECK(refusal(one_task(R"("shards": {"count": 0, "aggregator": "m"})")) ==
          "tasks[0].shards.count: expected a shard count in [1, 1024] (got 0)");
    CHECK(refusal(R"({"tasks": [{"name":"a","type":"t"},{"name":"b","type":"t"},
                     {"name":"c","type":"t","shards":{"count":2,"aggregator":"m","rounds":0}}]})") ==
          "tasks[2].shards.rounds: expected a positive integer at most 100 (got 0)");
    CHECK(refusal(one_task(R"("shards": {"count": 2, "aggregator": "m", "rounds": 101})")) ==
          "tasks[0].shards.rounds: expected a positive integer at most 100 (got 101)");
    CHECK(refusal(one_task(R"("shards": {"count": 2, "aggregator": "m", "rounds": -1})")) ==
          "tasks[0].shards.rounds: expected a non-negative integer (got -1)");
    CHECK(refusal(one_task(R"("shards": {"count": 2, "aggregator": "m", "rounds": "3"})")) ==
          R"(tasks[0].shards.rounds: expected an integer (got "3"))");
    CHECK(refusal(R"({"stages": [{"name": "x"}]})") == R"(stages[0].type: a task needs a type (got ""))");
    CHECK(refusal(R"({"tasks": {}})") == "tasks: expected an array (got {})");
    CHECK(refusal(R"([1])") == "(document): expected an object (got [1])");
    CHECK_THAT(refusal(R"({"tasks": [)"), Catch::StartsWith("(document): not valid JSON"));
    CHECK(refusal(R"({"tasks": [], "owner": "me"})") == R"(owner: unknown field (got "me"))");
    // A key that is not a plain name is quoted in the path, so the path
    // still names it (an empty key, dots, quotes, control characters).
    CHECK(refusal(R"({"": 1})") == R"([""]: unknown field (got 1))");
    CHECK(refusal(one_task(R"("a.b": 1)")) == R"(tasks[0]["a.b"]: unknown field (got 1))");
    CHECK(refusal(one_task(R"("q\"\n": 1)")) == R"(tasks[0]["q\"\n"]: unknown field (got 1))");
    CHECK(refusal("{\"" + std::string(100, 'k') + " \": 1}") ==
          "[\"" + std::string(64, 'k') + "...\"]: unknown field (got 1)");
}

TEST_CASE("a JSON spec is validated as a whole (cycles, dangling dependencies)", "[workflow][json]") {
    CHECK(refusal(R"({"tasks": [{"name":"a","type":"t","depends_on":["b"]},
                                {"name":"b","type":"t","depends_on":["a"]}]})") ==
          "tasks[0].depends_on: dependency cycle (got a -> b -> a)");
    CHECK(refusal(one_task(R"("depends_on": ["ghost"])")) ==
          R"(tasks[0].depends_on[0]: no task or stage has this name (got "ghost"))");
}

TEST_CASE("the maximum timeout in JSON is accepted as a long time", "[workflow][json]") {
    const auto spec = wf::parse_workflow_json(one_task(R"("timeout_ms": 9223372036854775807)"));
    CHECK(spec.tasks[0].options.timeout == std::chrono::milliseconds::max());
    CHECK(refusal(one_task(R"("timeout_ms": 9223372036854775808)")) ==
          "tasks[0].timeout_ms: expected an integer at most 9223372036854775807 (got 9223372036854775808)");
}
