// Submitting workflows whose specs were submitted before: an equal spec
// runs as the first did, a spec that differs in any field runs as itself.
#include <orchcore/coordinator.hpp>
#include <orchcore/workflow/runner.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace oc = orchcore;
namespace wf = orchcore::workflow;
using namespace std::chrono_literals;

namespace {

oc::coordinator_options two_workers() {
    oc::coordinator_options o;
    o.scaling.min_workers = 2;
    o.scaling.max_workers = 2;
    return o;
}

wf::workflow_spec chain(const std::string& name, const std::vector<std::string>& payloads) {
    wf::workflow_spec s;
    s.name = name;
    for (std::size_t i = 0; i < payloads.size(); ++i) {
        wf::task_spec t{.name = "t" + std::to_string(i), .type = "echo", .payload = payloads[i]};
        if (i > 0) t.depends_on.push_back("t" + std::to_string(i - 1));
        s.tasks.push_back(std::move(t));
    }
    return s;
}

std::vector<std::string> results(const wf::workflow_record& r) {
    std::vector<std::string> out;
    for (const auto& t : r.tasks) out.push_back(t.result);
    return out;
}

}  // namespace

TEST_CASE("workflow runner: specs submitted again run as themselves", "[workflow][runner][submit]") {
    oc::coordinator c{two_workers()};
    c.register_handler("echo", [](oc::task_context& ctx) { return "r:" + ctx.payload(); });
    wf::workflow_runner runner(c, wf::runner_options{.poll_interval = 5ms});

    const auto a = chain("wf", {"a", "b"});
    const auto first = runner.submit_workflow(a).get();
    const auto again = runner.submit_workflow(a).get();
    CHECK(first.id != again.id);
    CHECK(results(first) == std::vector<std::string>{"r:a", "r:b"});
    CHECK(results(again) == results(first));

    // One field changed: a payload, a dependency, the name, a task more.
    CHECK(results(runner.submit_workflow(chain("wf", {"a", "c"})).get()) == std::vector<std::string>{"r:a", "r:c"});
    auto no_dep = chain("wf", {"a", "b"});
    no_dep.tasks[1].depends_on.clear();
    const auto independent = runner.submit_workflow(no_dep).get();
    CHECK(results(independent) == std::vector<std::string>{"r:a", "r:b"});
    CHECK(runner.submit_workflow(chain("other", {"a", "b"})).get().name == "other");
    CHECK(runner.submit_workflow(chain("wf", {"a", "b", "d"})).get().tasks.size() == 3);

    // More specs than are remembered, then the first one again.
    for (int i = 0; i < 12; ++i) {
        const auto p = "p" + std::to_string(i);
        CHECK(results(runner.submit_workflow(chain("wf", {p})).get()) == std::vector<std::string>{"r:" + p});
    }
    CHECK(results(runner.submit_workflow(a).get()) == results(first));

    // A spec that is refused stays refused, however often it is submitted.
    auto bad = chain("wf", {"a", "b"});
    bad.tasks[1].depends_on = {"nope"};
    CHECK_THROWS_AS(runner.submit_workflow(bad), wf::spec_error);
    CHECK_THROWS_AS(runner.submit_workflow(bad), wf::spec_error);
    c.stop(oc::stop_mode::graceful);
}
