// The accessors read the task's meta::block (task_meta.hpp), or, for a task
// submitted without one, the key per field of the format before it.
#include "task_meta.hpp"

#include <orchcore/coordinator.hpp>
#include <orchcore/error.hpp>
#include <orchcore/workflow/context.hpp>

#include <charconv>
#include <map>

namespace orchcore::workflow {

namespace {

const std::string* find(const task_context& ctx, std::string_view key) {
    const auto& m = ctx.metadata();
    auto it = m.find(std::string(key));
    return it == m.end() ? nullptr : &it->second;
}

std::optional<detail::task_meta_reader> block_of(const task_context& ctx) {
    const auto* b = find(ctx, meta::block);
    if (!b) return std::nullopt;
    return detail::task_meta_reader(*b);
}

std::vector<std::string> lines(const std::string* text) {
    std::vector<std::string> out;
    if (!text || text->empty()) return out;
    std::size_t from = 0;
    for (;;) {
        const auto nl = text->find('\n', from);
        out.push_back(text->substr(from, nl - from));
        if (nl == std::string::npos) return out;
        from = nl + 1;
    }
}

std::uint32_t number(const std::string* text) {
    std::uint32_t n = 0;
    if (text) std::from_chars(text->data(), text->data() + text->size(), n);
    return n;
}

[[noreturn]] void not_a_dependency(std::string_view name) {
    throw invalid_argument("dependency", std::string(name), "not a dependency of this task");
}

[[noreturn]] void not_an_aggregator(std::string_view task) {
    throw invalid_argument("task", std::string(task), "not the aggregator of a sharded task");
}

// The shards' results of an aggregator's block: each shard is one of its dependencies.
std::vector<std::string> shard_results_of(const detail::task_meta_reader& b) {
    const auto shards = b.shards();
    if (shards.empty()) not_an_aggregator(b.task());
    std::map<std::string_view, std::string_view> results;
    b.each_dependency([&](std::string_view n, std::string_view r) {
        results.emplace(n, r);
        return true;
    });
    std::vector<std::string> out;
    out.reserve(shards.size());
    for (const auto s : shards) {
        const auto it = results.find(s);
        if (it == results.end()) not_a_dependency(s);
        out.emplace_back(it->second);
    }
    return out;
}

}  // namespace

std::string dependency_result(const task_context& ctx, std::string_view name) {
    if (const auto b = block_of(ctx)) {
        std::string_view r;
        if (!b->find_result(name, r)) not_a_dependency(name);
        return std::string(r);
    }
    const auto* r = find(ctx, std::string(meta::result_prefix) + std::string(name));
    if (!r) not_a_dependency(name);
    return *r;
}

std::vector<std::string> dependencies(const task_context& ctx) {
    if (const auto b = block_of(ctx)) {
        std::vector<std::string> out;
        out.reserve(b->dependency_count());
        b->each_dependency([&](std::string_view n, std::string_view) {
            out.emplace_back(n);
            return true;
        });
        return out;
    }
    return lines(find(ctx, meta::deps));
}

std::vector<std::string> shard_results(const task_context& ctx) {
    if (const auto b = block_of(ctx)) return shard_results_of(*b);
    const auto* names = find(ctx, meta::shards);
    if (!names) not_an_aggregator(task_name(ctx));
    std::vector<std::string> out;
    for (const auto& s : lines(names)) out.push_back(dependency_result(ctx, s));
    return out;
}

std::optional<std::uint32_t> shard_index(const task_context& ctx) {
    if (const auto b = block_of(ctx)) {
        if (b->shard_count() == 0) return std::nullopt;
        return b->shard_index();
    }
    const auto* i = find(ctx, meta::shard_index);
    if (!i) return std::nullopt;
    return number(i);
}

std::uint32_t shard_count(const task_context& ctx) {
    if (const auto b = block_of(ctx)) return b->shard_count();
    return number(find(ctx, meta::shard_count));
}

std::string workflow_id(const task_context& ctx) {
    if (const auto b = block_of(ctx)) return std::string(b->workflow());
    const auto* w = find(ctx, meta::workflow);
    return w ? *w : std::string{};
}

std::string task_name(const task_context& ctx) {
    if (const auto b = block_of(ctx)) return std::string(b->task());
    const auto* t = find(ctx, meta::task);
    return t ? *t : std::string{};
}

}  // namespace orchcore::workflow
