// Workflow specs from YAML (orchcore::yaml): the JSON schema and error paths.
#ifdef ORCHCORE_TEST_WITH_YAML

#include <orchcore/workflow/json.hpp>
#include <orchcore/workflow/yaml.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace wf = orchcore::workflow;
using namespace std::chrono_literals;

namespace {

std::string refusal(const std::string& text) {
    try {
        (void)wf::parse_workflow_yaml(text);
    } catch (const wf::spec_error& e) {
        return e.what();
    }
    return "accepted";
}

}  // namespace

TEST_CASE("a YAML workflow reads like its JSON twin", "[workflow][yaml]") {
    const auto yaml = wf::parse_workflow_yaml(R"(
name: train
tasks:
  - name: prep
    type: shell
    payload: make data
stages:
  - name: fit
    type: train
    payload: {lr: 0.5, note: "007", in: "${prep.result}"}
    depends_on: [prep]
    retries: 2
    timeout_ms: 60000
    priority: 10
    tags: [gpu]
    session: chat-7
    resources:
      cpu: 2.5
      memory_mb: 16384
      gpu: {count: 2, type: a100, memory_mb: 40000}
      labels: ["zone=eu"]
    shards: {count: 4, aggregator: merge}
)");
    const auto json = wf::parse_workflow_json(R"({"name": "train",
      "tasks": [{"name": "prep", "type": "shell", "payload": "make data"}],
      "stages": [{"name": "fit", "type": "train", "payload": {"lr": 0.5, "note": "007", "in": "${prep.result}"},
                  "depends_on": ["prep"], "retries": 2, "timeout_ms": 60000, "priority": 10, "tags": ["gpu"],
                  "session": "chat-7", "resources": {"cpu": 2.5, "memory_mb": 16384,
                                "gpu": {"count": 2, "type": "a100", "memory_mb": 40000}, "labels": ["zone=eu"]},
                  "shards": {"count": 4, "aggregator": "merge"}}]})");
    CHECK(yaml == json);
    CHECK(yaml.stages[0].options.timeout == 60s);
    CHECK(yaml.stages[0].payload == R"({"lr":5E-1,"note":"007","in":"${prep.result}"})");
}

TEST_CASE("a malformed YAML spec is refused with the same paths as JSON", "[workflow][yaml]") {
    CHECK(refusal(R"(
tasks:
  - {name: a, type: t}
  - {name: b, type: t}
  - {name: c, type: t}
  - name: d
    type: t
    resources: {gpu: {count: two}}
)") == R"(tasks[3].resources.gpu.count: expected an integer (got "two"))");
    CHECK(refusal("tasks: [{name: a, type: t, retries: \"3\"}]") ==
          R"(tasks[0].retries: expected an integer (got "3"))");  // quoted: a string
    CHECK(refusal("tasks: [{name: a, type: t, depends_on: [a]}]") ==
          R"(tasks[0].depends_on[0]: a task cannot depend on itself (got "a"))");
    CHECK(refusal("tasks: [{name: a, type: t, colour: red}]") == R"(tasks[0].colour: unknown field (got "red"))");
    CHECK(refusal("tasks:\n  - {name: a, type: t}\n  - {name: b, type: t}\n"
                  "  - {name: c, type: t, shards: {count: 2, aggregator: m, rounds: 0}}\n") ==
          "tasks[2].shards.rounds: expected a positive integer at most 100 (got 0)");
    CHECK(refusal("tasks: [{name: a, type: t, shards: {count: 2, aggregator: m, rounds: many}}]") ==
          R"(tasks[0].shards.rounds: expected an integer (got "many"))");
    CHECK(refusal("- just\n- a list\n") == R"((document): expected an object (got ["just","a list"]))");
    CHECK_THAT(refusal("tasks: [unclosed"), Catch::StartsWith("(document): not valid YAML: line 1"));
    std::string deep = "tasks: [{name: a, type: t, payload: ";
    for (int i = 0; i < 40; ++i) deep += "[";
    for (int i = 0; i < 40; ++i) deep += "]";
    CHECK_THAT(refusal(deep + "}]"), Catch::EndsWith("nested deeper than 32 levels"));
}

TEST_CASE("a YAML spec whose aliases expand to too many nodes is refused", "[workflow][yaml]") {
    // Nine levels of nine aliases each: 9^9 nodes from a few hundred bytes.
    std::string text = "l0: &l0 [x, x, x, x, x, x, x, x, x]\n";
    for (int level = 1; level < 9; ++level) {
        const auto prev = "*l" + std::to_string(level - 1);
        text += "l" + std::to_string(level) + ": &l" + std::to_string(level) + " [";
        for (int i = 0; i < 9; ++i) text += (i ? ", " : "") + prev;
        text += "]\n";
    }
    CHECK_THAT(refusal(text), Catch::EndsWith("the document expands to too many nodes (aliases)"));
    // Aliases that expand moderately are read.
    CHECK(refusal("r: &r {cpu: 2}\ntasks: [{name: a, type: t, resources: *r}, {name: b, type: t, resources: *r}]\n") ==
          R"(r: unknown field (got {"cpu":2}))");
}

#endif  // ORCHCORE_TEST_WITH_YAML
