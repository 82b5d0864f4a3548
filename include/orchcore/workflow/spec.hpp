// Workflow specs: named tasks with dependencies, a pipeline of stages and
// sharded tasks (fan-out plus an aggregator), validated and expanded into a
// workflow_graph of plain tasks.
#pragma once

#include <orchcore/error.hpp>
#include <orchcore/workflow/resources.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace orchcore::workflow {

/// A refused spec: an invalid_argument whose message starts with the path of
/// the culprit, e.g. `tasks[3].resources.gpu.count: expected an integer (got "two")`.
/// field() is the path, value() the offending value.
class spec_error : public invalid_argument {
public:
    spec_error(std::string_view path, std::string_view value, std::string_view reason);
    const char* what() const noexcept override { return message_.c_str(); }

private:
    std::string message_;
};

/// Per-task execution options (the same meaning as orchcore::task_options).
struct task_options {
    std::optional<std::uint32_t> retries{};     ///< empty: the executor's default
    std::chrono::milliseconds timeout{0};       ///< whole task; 0 = none
    std::chrono::milliseconds turn_timeout{0};  ///< one attempt; 0 = the worker's
    int priority = 5;                           ///< [0, 20], as orchcore::priority
    std::vector<std::string> tags{};
    std::string session{};  ///< as orchcore::task_options::session; empty: none

    friend bool operator==(const task_options&, const task_options&) = default;
};

/// Fan-out: the task runs as `count` shards, then `aggregator_type` runs once
/// over their results (in shard order) under the task's own name. A shard
/// that fails or times out after its own retries ends the round: the
/// round's other shards are cancelled and, while fewer than `rounds` rounds
/// have run, all `count` shards run again as a new round; otherwise the task
/// fails. The aggregator only ever sees one complete round.
struct shard_spec {
    std::uint32_t count = 0;
    std::string aggregator_type{};
    std::uint32_t rounds = 1;  ///< in [1, spec_limits::max_shard_rounds]; 1: a failed shard fails the task

    friend bool operator==(const shard_spec&, const shard_spec&) = default;
};

struct task_spec {
    std::string name{};
    std::string type{};
    std::string payload{};  ///< opaque text (JSON text when parsed from JSON)
    std::vector<std::string> depends_on{};
    task_options options{};
    resource_request resources{};
    std::optional<shard_spec> shards{};

    friend bool operator==(const task_spec&, const task_spec&) = default;
};

/// `tasks` form a graph through their dependencies; `stages` are a pipeline:
/// each stage also depends on the stage before it. Tasks and stages share
/// one namespace and may depend on each other. A payload may refer to the
/// result of a task it (transitively) depends on as `${<name>.result}` or
/// `${<name>.result.<field>}`.
struct workflow_spec {
    std::string name{};
    std::vector<task_spec> tasks{};
    std::vector<task_spec> stages{};

    friend bool operator==(const workflow_spec&, const workflow_spec&) = default;
};

struct spec_limits {
    std::size_t max_tasks = 100'000;  ///< after expanding shards
    std::uint32_t max_shards = 1024;  ///< per sharded task
    std::uint32_t max_shard_rounds = 100;  ///< shard_spec::rounds
    std::size_t max_name_length = 128;
};

/// One task of an expanded workflow.
struct task_node {
    std::string name{};
    std::string type{};
    std::string payload{};
    std::vector<std::string> depends_on{};
    task_options options{};
    resource_request resources{};
    std::string shard_of{};               ///< a shard: the sharded task's name
    std::uint32_t shard_index = 0;        ///< a shard: its index in [0, shard_count)
    std::uint32_t shard_count = 0;        ///< a shard: how many shards there are
    std::uint32_t shard_rounds = 1;       ///< a shard or aggregator: the fan-out's shard_spec::rounds
    std::vector<std::string> shards{};    ///< an aggregator: its shards, in order
    std::vector<std::string> result_refs{};  ///< tasks whose results the payload names

    bool is_shard() const noexcept { return !shard_of.empty(); }
    bool is_aggregator() const noexcept { return !shards.empty(); }
};

/// A validated workflow: tasks in a topological order (dependencies first;
/// of the tasks whose dependencies are listed, the one declared first comes
/// next; tasks are declared before stages).
class workflow_graph {
public:
    workflow_graph() = default;  ///< no tasks

    const std::string& name() const noexcept { return name_; }
    const std::vector<task_node>& tasks() const noexcept { return tasks_; }
    std::size_t size() const noexcept { return tasks_.size(); }
    /// The index of a task in tasks(), empty if there is none by that name.
    std::optional<std::size_t> index_of(std::string_view task) const;
    const task_node& at(std::string_view task) const;  ///< throws invalid_argument if unknown
    /// The indices in tasks() of task i's depends_on, in the same order
    /// (no name lookup). Throws invalid_argument if i >= size().
    const std::vector<std::size_t>& dependency_indices(std::size_t i) const;
    /// The indices in tasks() of the tasks that depend on task i, in
    /// graph order. Throws invalid_argument if i >= size().
    const std::vector<std::size_t>& dependant_indices(std::size_t i) const;

private:
    friend workflow_graph expand(const workflow_spec& spec, const spec_limits& limits);
    workflow_graph(std::string name, std::vector<task_node> tasks);

    std::string name_;
    std::vector<task_node> tasks_;
    struct name_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };
    std::unordered_map<std::string, std::size_t, name_hash, std::equal_to<>> index_;
    std::vector<std::vector<std::size_t>> deps_;
    std::vector<std::vector<std::size_t>> dependants_;
};

/// Validates and expands a spec. Throws spec_error naming the culprit: an
/// empty or invalid name (letters, digits, '_', '-', '.'), a duplicate name,
/// a dependency on an unknown task or on itself, a dependency cycle (its
/// tasks in order), a shard count or shard rounds of 0 or above the limit, a result
/// reference to a task that is not a dependency, an empty type, a
/// priority out of range, or options and resources the coordinator would
/// refuse (retries above 1000, a negative timeout, more than 1024 GPUs,
/// a GPU type or memory without a count, an empty label).
workflow_graph expand(const workflow_spec& spec, const spec_limits& limits = {});

/// The name of shard `index` of task `task`: "<task>#<index>". '#' is not
/// allowed in names, so shard names never collide with declared ones.
std::string shard_name(std::string_view task, std::uint32_t index);

/// True for a valid task name (see expand()).
bool is_valid_name(std::string_view name, std::size_t max_length = spec_limits{}.max_name_length);

/// The task names of the `${<name>.result...}` references in a payload, in
/// order of first appearance.
std::vector<std::string> result_references(std::string_view payload);

}  // namespace orchcore::workflow
