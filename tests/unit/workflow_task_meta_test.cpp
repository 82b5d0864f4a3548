// A workflow task's metadata block (meta::block): its encoding read back,
// and the accessors of <orchcore/workflow/context.hpp> on the block and on
// the key per field of the format before it.
#include "../../src/workflow/task_meta.hpp"

#include <orchcore/coordinator.hpp>
#include <orchcore/error.hpp>
#include <orchcore/workflow/context.hpp>

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace oc = orchcore;
namespace wf = orchcore::workflow;
using wf::detail::task_meta_reader;

namespace {

struct decoded {
    std::string workflow, task;
    std::uint32_t shard_index = 0, shard_count = 0;
    std::vector<std::pair<std::string, std::string>> deps;
    std::vector<std::string> shards;
};

/// The block as docs/workflows.md spells it, field by field.
std::string reference_block(const wf::detail::task_meta_fields& f, const std::vector<std::string>& results) {
    const auto text = [](std::string_view s) { return std::to_string(s.size()) + ":" + std::string(s); };
    const auto number = [](std::size_t n) { return std::to_string(n) + ";"; };
    auto out = "1;" + text(f.workflow) + text(f.task) + number(f.shard_count == 0 ? 0 : f.shard_index) +
               number(f.shard_count) + number(f.dependencies.size());
    for (std::size_t k = 0; k < f.dependencies.size(); ++k) out += text(f.dependencies[k]) + text(results[k]);
    out += number(f.shards.size());
    for (const auto& s : f.shards) out += text(s);
    return out;
}

/// The block encode_task_meta writes; it must be exactly the reference block.
std::string encode(const wf::detail::task_meta_fields& f, const std::vector<std::string>& results) {
    auto block = wf::detail::encode_task_meta(f, [&](std::size_t k) -> const std::string& { return results[k]; });
    if (block != reference_block(f, results)) throw std::logic_error("the block differs from its reference");
    return block;
}

decoded decode(std::string_view block) {
    const task_meta_reader r(block);
    decoded d{std::string(r.workflow()), std::string(r.task()), r.shard_index(), r.shard_count(), {}, {}};
    r.each_dependency([&](std::string_view n, std::string_view v) {
        d.deps.emplace_back(n, v);
        return true;
    });
    for (const auto s : r.shards()) d.shards.emplace_back(s);
    return d;
}

void check_round_trip(const wf::detail::task_meta_fields& f, const std::vector<std::string>& results) {
    const auto d = decode(encode(f, results));
    CHECK(d.workflow == f.workflow);
    CHECK(d.task == f.task);
    CHECK(d.shard_count == f.shard_count);
    CHECK(d.shard_index == (f.shard_count == 0 ? 0 : f.shard_index));
    REQUIRE(d.deps.size() == f.dependencies.size());
    for (std::size_t k = 0; k < d.deps.size(); ++k) {
        CHECK(d.deps[k].first == f.dependencies[k]);
        CHECK(d.deps[k].second == results[k]);
    }
    CHECK(d.shards == std::vector<std::string>(f.shards.begin(), f.shards.end()));
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const oc::invalid_argument& e) {
        return e.what();
    }
    return "no error";
}

/// What a handler read with the accessors.
struct seen {
    std::string workflow, task;
    std::vector<std::string> deps, results;  ///< results[k]: dependency_result(deps[k])
    std::optional<std::uint32_t> shard_index;
    std::uint32_t shard_count = 0;
    std::vector<std::string> shard_results;
    std::string shard_results_error, unknown_dependency_error;
};

/// Runs one task with `metadata`; what its handler read.
seen read_in_task(const std::map<std::string, std::string>& metadata) {
    oc::coordinator c;
    seen out;
    c.register_handler("read", [&](oc::task_context& ctx) {
        out.workflow = wf::workflow_id(ctx);
        out.task = wf::task_name(ctx);
        out.deps = wf::dependencies(ctx);
        for (const auto& d : out.deps) out.results.push_back(wf::dependency_result(ctx, d));
        out.shard_index = wf::shard_index(ctx);
        out.shard_count = wf::shard_count(ctx);
        out.shard_results_error = error_of([&] { out.shard_results = wf::shard_results(ctx); });
        out.unknown_dependency_error = error_of([&] { (void)wf::dependency_result(ctx, "nope"); });
        return std::string("read");
    });
    oc::task_options o;
    o.metadata = metadata;
    CHECK(c.submit_async("read", "", o).handle.get() == "read");
    c.stop(oc::stop_mode::graceful);
    return out;
}

}  // namespace

TEST_CASE("workflow task metadata: the documented example block", "[workflow][meta]") {
    const std::vector<std::string> deps{"left", "right"};
    const auto block = encode({.workflow = "wf", .task = "join", .dependencies = deps}, {"L", "R"});
    CHECK(block == "1;2:wf4:join0;0;2;4:left1:L5:right1:R0;");
}

TEST_CASE("workflow task metadata: a block reads back what was encoded", "[workflow][meta]") {
    SECTION("no dependencies") { check_round_trip({.workflow = "wf-1", .task = "root"}, {}); }
    SECTION("names and results with separators, empty results and empty names") {
        const std::vector<std::string> deps{"a\nb", "c=d", "3:x", "e;", "", "\n"};
        check_round_trip({.workflow = "w\n=1;", .task = "t=\n:", .dependencies = deps},
                         {"", "=", "1:2;3", std::string("nul\0byte", 8), "\n\n", "12"});
    }
    SECTION("a shard and an aggregator") {
        check_round_trip({.workflow = "wf", .task = "s#2", .shard_index = 2, .shard_count = 4}, {});
        const std::vector<std::string> shards{"s#0", "s#1"};
        check_round_trip({.workflow = "wf", .task = "s", .dependencies = shards, .shards = shards}, {"r0", "r1"});
    }
    SECTION("large results, many dependencies") {
        std::vector<std::string> deps, results;
        for (int i = 0; i < 1000; ++i) {
            deps.push_back("d" + std::to_string(i));
            results.push_back(std::string(static_cast<std::size_t>(i % 7) * 100, static_cast<char>('a' + i % 26)));
        }
        results[500] = std::string(std::size_t{4} << 20, 'x');  // 4 MiB
        // Lengths where their number of digits changes.
        for (const std::size_t n : {9, 10, 99, 100, 999, 1000, 9999, 10000}) results[n % 997 + 1] = std::string(n, 'y');
        check_round_trip({.workflow = "wf", .task = "big", .dependencies = deps, .shards = deps}, results);
    }
}

TEST_CASE("workflow task metadata: any fields read back (property)", "[workflow][meta][prop]") {
    rc::prop("encode then read", [](const std::string& w, const std::string& t, std::uint32_t index,
                                    std::uint32_t count, const std::vector<std::pair<std::string, std::string>>& deps,
                                    const std::vector<std::string>& shards) {
        std::vector<std::string> names, results;
        for (const auto& [n, r] : deps) {
            names.push_back(n);
            results.push_back(r);
        }
        const wf::detail::task_meta_fields f{w, t, index, count, names, shards};
        const auto d = decode(encode(f, results));
        RC_ASSERT(d.workflow == w);
        RC_ASSERT(d.task == t);
        RC_ASSERT(d.shard_count == count);
        RC_ASSERT(d.shard_index == (count == 0 ? 0u : index));
        RC_ASSERT(d.deps == deps);
        RC_ASSERT(d.shards == shards);
    });
}

TEST_CASE("workflow task metadata: a malformed block is an error naming the key", "[workflow][meta]") {
    const std::vector<std::string> deps{"left"};
    const std::vector<std::string> shards{"left"};
    const auto block = encode({.workflow = "wf", .task = "agg", .dependencies = deps, .shards = shards}, {"L"});
    // Every prefix short of the whole block is missing a field.
    for (std::size_t n = 0; n < block.size(); ++n) {
        INFO("prefix of " << n << " bytes");
        CHECK_THROWS_AS(decode(std::string_view(block).substr(0, n)), oc::invalid_argument);
    }
    CHECK_NOTHROW(decode(block));
    const auto what = error_of([] { (void)task_meta_reader("2;2:wf"); });
    CHECK_THAT(what, Catch::Contains("orchcore.wf") && Catch::Contains("not a version 1 block"));
    CHECK_THAT(error_of([] { (void)task_meta_reader("1;99:wf"); }), Catch::Contains("a length past the end"));
    CHECK_THAT(error_of([] { (void)task_meta_reader("1;2:wf1:t0;0;99999999;"); }),
               Catch::Contains("a number out of range"));
    CHECK_THAT(error_of([] { (void)task_meta_reader("1;2:wf1:t4294967296;0;0;"); }),
               Catch::Contains("a number out of range"));
}

TEST_CASE("workflow task metadata: the accessors read the block", "[workflow][meta]") {
    const std::vector<std::string> deps{"s#0", "s#1", "odd=\nname"};
    const std::vector<std::string> shards{"s#0", "s#1"};
    const auto agg = encode({.workflow = "wf-7", .task = "s", .dependencies = deps, .shards = shards}, {"r0", "", "x"});
    const auto a = read_in_task({{std::string(wf::meta::block), agg}});
    CHECK(a.workflow == "wf-7");
    CHECK(a.task == "s");
    CHECK(a.deps == deps);
    CHECK(a.results == std::vector<std::string>{"r0", "", "x"});
    CHECK(a.shard_results == std::vector<std::string>{"r0", ""});
    CHECK(a.shard_results_error == "no error");
    CHECK_FALSE(a.shard_index);
    CHECK(a.shard_count == 0);
    CHECK_THAT(a.unknown_dependency_error, Catch::Contains("dependency = nope: not a dependency of this task"));

    const auto shard = encode({.workflow = "wf-7", .task = "s#1", .shard_index = 1, .shard_count = 2}, {});
    const auto s = read_in_task({{std::string(wf::meta::block), shard}});
    CHECK(s.shard_index == 1u);
    CHECK(s.shard_count == 2);
    CHECK(s.deps.empty());
    CHECK_THAT(s.shard_results_error, Catch::Contains("task = s#1: not the aggregator of a sharded task"));
}

TEST_CASE("workflow task metadata: the accessors read a task submitted with a key per field",
          "[workflow][meta]") {
    // What the runner wrote before meta::block, as a task queued by such a
    // runner still carries: the same answers and errors.
    const auto a = read_in_task({{std::string(wf::meta::workflow), "wf-old"},
                                 {std::string(wf::meta::task), "s"},
                                 {std::string(wf::meta::deps), "s#0\ns#1"},
                                 {std::string(wf::meta::result_prefix) + "s#0", "r0"},
                                 {std::string(wf::meta::result_prefix) + "s#1", ""},
                                 {std::string(wf::meta::shards), "s#0\ns#1"}});
    CHECK(a.workflow == "wf-old");
    CHECK(a.task == "s");
    CHECK(a.deps == std::vector<std::string>{"s#0", "s#1"});
    CHECK(a.results == std::vector<std::string>{"r0", ""});
    CHECK(a.shard_results == std::vector<std::string>{"r0", ""});
    CHECK_FALSE(a.shard_index);
    CHECK_THAT(a.unknown_dependency_error, Catch::Contains("dependency = nope: not a dependency of this task"));

    const auto s = read_in_task({{std::string(wf::meta::workflow), "wf-old"},
                                 {std::string(wf::meta::task), "s#1"},
                                 {std::string(wf::meta::shard_index), "1"},
                                 {std::string(wf::meta::shard_count), "2"}});
    CHECK(s.shard_index == 1u);
    CHECK(s.shard_count == 2);
    CHECK_THAT(s.shard_results_error, Catch::Contains("task = s#1: not the aggregator of a sharded task"));

    const auto none = read_in_task({});
    CHECK(none.workflow.empty());
    CHECK(none.task.empty());
    CHECK(none.deps.empty());
    CHECK_FALSE(none.shard_index);
    CHECK(none.shard_count == 0);
}
