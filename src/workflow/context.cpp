#include <orchcore/coordinator.hpp>
#include <orchcore/error.hpp>
#include <orchcore/workflow/context.hpp>

#include <charconv>

namespace orchcore::workflow {

namespace {

const std::string* find(const task_context& ctx, std::string_view key) {
    const auto& m = ctx.metadata();
    auto it = m.find(std::string(key));
    return it == m.end() ? nullptr : &it->second;
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

}  // namespace

std::string dependency_result(const task_context& ctx, std::string_view name) {
    const auto* r = find(ctx, std::string(meta::result_prefix) + std::string(name));
    if (!r) throw invalid_argument("dependency", std::string(name), "not a dependency of this task");
    return *r;
}

std::vector<std::string> dependencies(const task_context& ctx) { return lines(find(ctx, meta::deps)); }

std::vector<std::string> shard_results(const task_context& ctx) {
    const auto* names = find(ctx, meta::shards);
    if (!names) throw invalid_argument("task", task_name(ctx), "not the aggregator of a sharded task");
    std::vector<std::string> out;
    for (const auto& s : lines(names)) out.push_back(dependency_result(ctx, s));
    return out;
}

std::optional<std::uint32_t> shard_index(const task_context& ctx) {
    const auto* i = find(ctx, meta::shard_index);
    if (!i) return std::nullopt;
    return number(i);
}

std::uint32_t shard_count(const task_context& ctx) { return number(find(ctx, meta::shard_count)); }

std::string workflow_id(const task_context& ctx) {
    const auto* w = find(ctx, meta::workflow);
    return w ? *w : std::string{};
}

std::string task_name(const task_context& ctx) {
    const auto* t = find(ctx, meta::task);
    return t ? *t : std::string{};
}

}  // namespace orchcore::workflow
