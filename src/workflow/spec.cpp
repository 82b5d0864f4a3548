#include <orchcore/workflow/spec.hpp>

#include <orchcore/resources.hpp>

#include <algorithm>
#include <cctype>
#include <map>
#include <queue>
#include <utility>

namespace orchcore::workflow {

namespace {

std::string quoted(std::string_view s) {
    std::string out = "\"";
    out.append(s).append("\"");
    return out;
}

/// A value as a message shows it: control characters escaped (a NUL would
/// end what()), and at most `shown` bytes of it, so that a 1 MB name does
/// not make a 1 MB message.
std::string shown_value(std::string_view value) {
    constexpr std::size_t shown = 96;
    static constexpr char hex[] = "0123456789abcdef";
    std::size_t n = std::min(value.size(), shown);
    while (n < value.size() && n > 0 && (static_cast<unsigned char>(value[n]) & 0xc0) == 0x80) --n;  // whole UTF-8 characters
    std::string out;
    for (const char ch : value.substr(0, n)) {
        const auto c = static_cast<unsigned char>(ch);
        if (c >= 0x20 && c != 0x7f) out.push_back(ch);
        else out.append("\\u00").append(1, hex[c >> 4]).append(1, hex[c & 0xf]);
    }
    if (n < value.size()) out.append("...");
    return out;
}

std::string spec_message(std::string_view path, std::string_view value, std::string_view reason) {
    std::string out = shown_value(path);
    out.append(": ").append(reason);
    if (!value.empty()) out.append(" (got ").append(shown_value(value)).append(")");
    return out;
}

/// A declared task or stage, before shard expansion.
struct entry {
    const task_spec* spec;
    std::string path;                // "tasks[2]" or "stages[0]"
    std::vector<std::size_t> deps;   // entries it depends on (explicit and the previous stage)
};

std::vector<entry> collect(const workflow_spec& spec) {
    std::vector<entry> out;
    out.reserve(spec.tasks.size() + spec.stages.size());
    for (std::size_t i = 0; i < spec.tasks.size(); ++i) out.push_back({&spec.tasks[i], "tasks[" + std::to_string(i) + "]", {}});
    for (std::size_t i = 0; i < spec.stages.size(); ++i) out.push_back({&spec.stages[i], "stages[" + std::to_string(i) + "]", {}});
    return out;
}

/// What the coordinator would refuse at submission, refused here instead
/// with the path of the field.
void check_options(const entry& e) {
    const auto& o = e.spec->options;
    constexpr std::uint32_t max_retries = 1000;  // as orchcore::task_options::max_retries
    if (o.retries && *o.retries > max_retries) {
        throw spec_error(e.path + ".retries", std::to_string(*o.retries),
                         "expected at most " + std::to_string(max_retries) + " retries");
    }
    if (o.timeout.count() < 0) throw spec_error(e.path + ".timeout_ms", std::to_string(o.timeout.count()), "must be >= 0");
    if (o.turn_timeout.count() < 0) {
        throw spec_error(e.path + ".turn_timeout_ms", std::to_string(o.turn_timeout.count()), "must be >= 0");
    }
    try {
        validate(e.spec->resources, e.path + ".resources");
    } catch (const invalid_argument& bad) {
        // what(): "orchcore: invalid <field> = <value>: <reason>"
        const std::string_view what = bad.what();
        throw spec_error(bad.field(), bad.value(), what.substr(what.rfind(": ") + 2));
    }
}

void check_entry(const entry& e, const spec_limits& limits) {
    const auto& t = *e.spec;
    if (!is_valid_name(t.name, limits.max_name_length)) {
        throw spec_error(e.path + ".name", quoted(t.name),
                         "a name is 1 to " + std::to_string(limits.max_name_length) +
                             " letters, digits, '_', '-' or '.'");
    }
    if (t.type.empty()) throw spec_error(e.path + ".type", quoted(t.type), "a task needs a type");
    if (t.options.priority < 0 || t.options.priority > 20) {
        throw spec_error(e.path + ".priority", std::to_string(t.options.priority), "expected a priority in [0, 20]");
    }
    check_options(e);
    if (t.shards) {
        if (t.shards->count == 0 || t.shards->count > limits.max_shards) {
            throw spec_error(e.path + ".shards.count", std::to_string(t.shards->count),
                             "expected a shard count in [1, " + std::to_string(limits.max_shards) + "]");
        }
        if (t.shards->rounds == 0 || t.shards->rounds > limits.max_shard_rounds) {
            throw spec_error(e.path + ".shards.rounds", std::to_string(t.shards->rounds),
                             "expected a positive integer at most " + std::to_string(limits.max_shard_rounds));
        }
        if (t.shards->aggregator_type.empty()) {
            throw spec_error(e.path + ".shards.aggregator", "\"\"", "a sharded task needs an aggregator type");
        }
    }
}

using name_index = std::map<std::string, std::size_t, std::less<>>;

name_index index_names(const std::vector<entry>& entries, const spec_limits& limits) {
    name_index names;
    std::uint64_t expanded = 0;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        check_entry(entries[i], limits);
        const auto [it, fresh] = names.emplace(entries[i].spec->name, i);
        if (!fresh) {
            throw spec_error(entries[i].path + ".name", quoted(entries[i].spec->name),
                             "duplicate name (also " + entries[it->second].path + ".name)");
        }
        const auto* shards = entries[i].spec->shards ? &*entries[i].spec->shards : nullptr;
        expanded += shards ? std::uint64_t{shards->count} + 1 : 1;
    }
    if (expanded > limits.max_tasks) {
        throw spec_error("tasks", std::to_string(expanded),
                         "more than " + std::to_string(limits.max_tasks) + " tasks after expanding shards");
    }
    return names;
}

void link(std::vector<entry>& entries, const name_index& names, std::size_t first_stage) {
    for (std::size_t i = 0; i < entries.size(); ++i) {
        auto& e = entries[i];
        if (i > first_stage) e.deps.push_back(i - 1);  // the previous stage
        for (std::size_t d = 0; d < e.spec->depends_on.size(); ++d) {
            const auto& dep = e.spec->depends_on[d];
            const auto path = e.path + ".depends_on[" + std::to_string(d) + "]";
            const auto it = names.find(dep);
            if (it == names.end()) throw spec_error(path, quoted(dep), "no task or stage has this name");
            if (it->second == i) throw spec_error(path, quoted(dep), "a task cannot depend on itself");
            if (std::find(e.deps.begin(), e.deps.end(), it->second) == e.deps.end()) e.deps.push_back(it->second);
        }
    }
}

/// Depth-first search for a cycle from `start`, without recursion (a cycle
/// may run through every task); returns its entries in dependency order.
bool find_cycle(const std::vector<entry>& entries, std::size_t start, std::vector<int>& colour,
                std::vector<std::size_t>& path) {
    std::vector<std::size_t> next;  // next[k]: the next dependency of path[k] to look at
    colour[start] = 1;
    path.push_back(start);
    next.push_back(0);
    while (!path.empty()) {
        const auto i = path.back();
        if (next.back() == entries[i].deps.size()) {
            colour[i] = 2;
            path.pop_back();
            next.pop_back();
            continue;
        }
        const auto d = entries[i].deps[next.back()++];
        if (colour[d] == 1) {
            path.erase(path.begin(), std::find(path.begin(), path.end(), d));
            path.push_back(d);
            return true;
        }
        if (colour[d] == 0) {
            colour[d] = 1;
            path.push_back(d);
            next.push_back(0);
        }
    }
    return false;
}

[[noreturn]] void throw_cycle(const std::vector<entry>& entries, const std::vector<std::size_t>& unsorted) {
    std::vector<int> colour(entries.size(), 0);
    std::vector<std::size_t> path;
    for (const auto i : unsorted) {
        if (colour[i] == 0 && find_cycle(entries, i, colour, path)) break;
    }
    std::string names;
    for (const auto i : path) names.append(names.empty() ? "" : " -> ").append(entries[i].spec->name);
    throw spec_error(entries[path.front()].path + ".depends_on", names, "dependency cycle");
}

/// Kahn's algorithm; among ready entries the first declared goes first.
std::vector<std::size_t> topological_order(const std::vector<entry>& entries) {
    std::vector<std::size_t> missing(entries.size());
    std::vector<std::vector<std::size_t>> dependants(entries.size());
    for (std::size_t i = 0; i < entries.size(); ++i) {
        missing[i] = entries[i].deps.size();
        for (const auto d : entries[i].deps) dependants[d].push_back(i);
    }
    std::priority_queue<std::size_t, std::vector<std::size_t>, std::greater<>> ready;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        if (missing[i] == 0) ready.push(i);
    }
    std::vector<std::size_t> order;
    while (!ready.empty()) {
        const auto i = ready.top();
        ready.pop();
        order.push_back(i);
        for (const auto d : dependants[i]) {
            if (--missing[d] == 0) ready.push(d);
        }
    }
    if (order.size() != entries.size()) {
        std::vector<std::size_t> unsorted;
        for (std::size_t i = 0; i < entries.size(); ++i) {
            if (missing[i] != 0) unsorted.push_back(i);
        }
        throw_cycle(entries, unsorted);
    }
    return order;
}

bool depends_transitively(const std::vector<entry>& entries, std::size_t from, std::size_t target) {
    std::vector<bool> seen(entries.size(), false);
    std::vector<std::size_t> stack{from};
    while (!stack.empty()) {
        const auto i = stack.back();
        stack.pop_back();
        for (const auto d : entries[i].deps) {
            if (d == target) return true;
            if (!seen[d]) {
                seen[d] = true;
                stack.push_back(d);
            }
        }
    }
    return false;
}

void check_references(const std::vector<entry>& entries, const name_index& names) {
    for (std::size_t i = 0; i < entries.size(); ++i) {
        for (const auto& ref : result_references(entries[i].spec->payload)) {
            const auto it = names.find(ref);
            if (it == names.end() || !depends_transitively(entries, i, it->second)) {
                throw spec_error(entries[i].path + ".payload", "${" + ref + ".result}",
                                 "refers to the result of a task it does not depend on");
            }
        }
    }
}

task_node plain_node(const entry& e, const std::vector<entry>& entries) {
    task_node n;
    n.name = e.spec->name;
    n.type = e.spec->type;
    n.payload = e.spec->payload;
    for (const auto d : e.deps) n.depends_on.push_back(entries[d].spec->name);
    n.options = e.spec->options;
    n.resources = e.spec->resources;
    n.result_refs = result_references(n.payload);
    return n;
}

void append_nodes(const entry& e, const std::vector<entry>& entries, std::vector<task_node>& out) {
    task_node base = plain_node(e, entries);
    if (!e.spec->shards) {
        out.push_back(std::move(base));
        return;
    }
    task_node aggregator = base;
    aggregator.type = e.spec->shards->aggregator_type;
    aggregator.resources = {};
    aggregator.depends_on.clear();
    aggregator.shard_rounds = e.spec->shards->rounds;
    const auto count = e.spec->shards->count;
    for (std::uint32_t s = 0; s < count; ++s) {
        task_node shard = base;
        shard.name = shard_name(base.name, s);
        shard.shard_of = base.name;
        shard.shard_index = s;
        shard.shard_count = count;
        shard.shard_rounds = aggregator.shard_rounds;
        aggregator.depends_on.push_back(shard.name);
        aggregator.shards.push_back(shard.name);
        out.push_back(std::move(shard));
    }
    out.push_back(std::move(aggregator));
}

}  // namespace

spec_error::spec_error(std::string_view path, std::string_view value, std::string_view reason)
    : invalid_argument(path, value, reason), message_(spec_message(path, value, reason)) {}

bool is_valid_name(std::string_view name, std::size_t max_length) {
    if (name.empty() || name.size() > max_length) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-' || c == '.';
    });
}

std::string shard_name(std::string_view task, std::uint32_t index) {
    std::string out(task);
    out.append("#").append(std::to_string(index));
    return out;
}

std::vector<std::string> result_references(std::string_view payload) {
    std::vector<std::string> out;
    for (auto open = payload.find("${"); open != std::string_view::npos; open = payload.find("${", open + 2)) {
        const auto close = payload.find('}', open + 2);
        if (close == std::string_view::npos) break;
        const auto inner = payload.substr(open + 2, close - open - 2);
        const auto dot = inner.find(".result");
        if (dot == std::string_view::npos || dot == 0) continue;
        const auto rest = inner.substr(dot + 7);
        if (!rest.empty() && rest.front() != '.') continue;
        std::string name(inner.substr(0, dot));
        if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(std::move(name));
    }
    return out;
}

workflow_graph::workflow_graph(std::string name, std::vector<task_node> tasks)
    : name_(std::move(name)), tasks_(std::move(tasks)) {
    index_.reserve(tasks_.size());
    for (std::size_t i = 0; i < tasks_.size(); ++i) index_.emplace(tasks_[i].name, i);
    deps_.resize(tasks_.size());
    dependants_.resize(tasks_.size());
    for (std::size_t i = 0; i < tasks_.size(); ++i) {
        deps_[i].reserve(tasks_[i].depends_on.size());
        for (const auto& d : tasks_[i].depends_on) {
            deps_[i].push_back(index_.find(d)->second);
            dependants_[deps_[i].back()].push_back(i);
        }
    }
}

std::optional<std::size_t> workflow_graph::index_of(std::string_view task) const {
    const auto it = index_.find(task);
    if (it == index_.end()) return std::nullopt;
    return it->second;
}

const task_node& workflow_graph::at(std::string_view task) const {
    const auto i = index_of(task);
    if (!i) throw invalid_argument("task", task, "no task of the workflow has this name");
    return tasks_[*i];
}

const std::vector<std::size_t>& workflow_graph::dependency_indices(std::size_t i) const {
    if (i >= deps_.size()) throw invalid_argument("task", std::to_string(i), "no task of the workflow has this index");
    return deps_[i];
}

const std::vector<std::size_t>& workflow_graph::dependant_indices(std::size_t i) const {
    if (i >= dependants_.size()) throw invalid_argument("task", std::to_string(i), "no task of the workflow has this index");
    return dependants_[i];
}

workflow_graph expand(const workflow_spec& spec, const spec_limits& limits) {
    auto entries = collect(spec);
    if (entries.empty()) throw spec_error("tasks", "", "a workflow needs at least one task or stage");
    const auto names = index_names(entries, limits);
    link(entries, names, spec.tasks.size());
    const auto order = topological_order(entries);
    check_references(entries, names);
    std::vector<task_node> nodes;
    for (const auto i : order) append_nodes(entries[i], entries, nodes);
    return workflow_graph(spec.name, std::move(nodes));
}

}  // namespace orchcore::workflow
