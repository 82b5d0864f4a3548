// What a handler of a workflow task reads of its place in the workflow:
// the results of its dependencies, its shard index, and (for an aggregator)
// its shards' results in shard order. The runner hands them over in the
// task's metadata (one entry, meta::block), so they are there on whichever
// node runs the task.
//
//   c.register_handler("train", [](orchcore::task_context& ctx) {
//       auto data = orchcore::workflow::dependency_result(ctx, "prepare");
//       ...
//   });
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace orchcore {
class task_context;
}

namespace orchcore::workflow {

/// The result of dependency `name` (a task this one depends on, directly).
/// Throws invalid_argument naming it if it is not one.
std::string dependency_result(const task_context& ctx, std::string_view name);
/// The names of the task's direct dependencies, in declaration order.
std::vector<std::string> dependencies(const task_context& ctx);
/// The aggregator of a sharded task: its shards' results in shard order.
/// Throws invalid_argument if the task is not an aggregator.
std::vector<std::string> shard_results(const task_context& ctx);
/// A shard: its index in [0, shard_count). Empty for other tasks.
std::optional<std::uint32_t> shard_index(const task_context& ctx);
std::uint32_t shard_count(const task_context& ctx);  ///< 0 for other tasks
/// The workflow and the task's name in it; empty outside a workflow.
std::string workflow_id(const task_context& ctx);
std::string task_name(const task_context& ctx);

namespace meta {
/// All of the above in one value (its format: docs/workflows.md). The
/// accessors read it; a task without it is read from the keys below. A
/// short key: it is stored inline in every workflow task's metadata.
inline constexpr std::string_view block = "orchcore.wf";
/// One key per field: what the runner wrote before meta::block, still read
/// for a task that has no meta::block.
inline constexpr std::string_view workflow = "orchcore.workflow.id";
inline constexpr std::string_view task = "orchcore.workflow.task";
inline constexpr std::string_view deps = "orchcore.workflow.deps";  ///< names, '\n'-separated
inline constexpr std::string_view result_prefix = "orchcore.workflow.result.";
inline constexpr std::string_view shard_index = "orchcore.workflow.shard_index";
inline constexpr std::string_view shard_count = "orchcore.workflow.shard_count";
inline constexpr std::string_view shards = "orchcore.workflow.shards";  ///< aggregator: shard names, '\n'-separated
}  // namespace meta

}  // namespace orchcore::workflow
