// A workflow task's place in its workflow as one metadata value (the key
// meta::block): the workflow id, the task's name, its shard index and
// count, its dependencies with their results, an aggregator's shards. One
// string per task instead of a metadata entry per field and per dependency.
//
// The block is text: a version, then numbers (decimal, ended by ';') and
// strings (<byte length>:<bytes>, any bytes), in this order:
//
//   1; <workflow> <task> <shard index>; <shard count>;
//   <dependency count>; (<name> <result>)* <aggregated shard count>; <shard name>*
//
// A shard count of 0: not a shard; an aggregated shard count of 0: not an
// aggregator. "1;2:wf4:join0;0;2;4:left1:L5:right1:R0;" is task "join" of
// workflow "wf", whose dependencies "left" and "right" returned "L" and "R".
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace orchcore::workflow::detail {

/// What goes into a block; the dependencies' results come from a callback.
struct task_meta_fields {
    std::string_view workflow;
    std::string_view task;
    std::uint32_t shard_index = 0;
    std::uint32_t shard_count = 0;                ///< 0: not a shard
    std::span<const std::string> dependencies{};  ///< names, in declaration order
    std::span<const std::string> shards{};        ///< an aggregator's shards in order; empty: not one
};

namespace meta_codec {

/// Writes a block into a buffer of its exact size, without a check or a
/// reallocation per field.
class writer {
public:
    explicit writer(char* at) : at_(at) {}
    void number(std::size_t n) {
        at_ = std::to_chars(at_, at_ + 20, n).ptr;
        *at_++ = ';';
    }
    void text(std::string_view s) {
        at_ = std::to_chars(at_, at_ + 20, s.size()).ptr;
        *at_++ = ':';
        if (!s.empty()) std::memcpy(at_, s.data(), s.size());
        at_ += s.size();
    }

private:
    char* at_;
};

constexpr std::size_t digits(std::size_t n) {
    std::size_t d = 1;
    for (; n >= 10; n /= 10) ++d;
    return d;
}
/// The bytes writer::number and writer::text write.
constexpr std::size_t number_size(std::size_t n) { return digits(n) + 1; }
constexpr std::size_t text_size(std::string_view s) { return digits(s.size()) + 1 + s.size(); }

}  // namespace meta_codec

/// The block for `f`; `result_of(k)` is the result of f.dependencies[k].
template <class ResultOf>
std::string encode_task_meta(const task_meta_fields& f, ResultOf&& result_of) {
    using namespace meta_codec;
    const std::uint32_t index = f.shard_count == 0 ? 0 : f.shard_index;
    std::size_t size = 2 + text_size(f.workflow) + text_size(f.task) + number_size(index) +
                       number_size(f.shard_count) + number_size(f.dependencies.size()) + number_size(f.shards.size());
    for (std::size_t k = 0; k < f.dependencies.size(); ++k)
        size += text_size(f.dependencies[k]) + text_size(result_of(k));
    for (const auto& s : f.shards) size += text_size(s);
    std::string out(size, '\0');
    out[0] = '1';
    out[1] = ';';
    writer w(out.data() + 2);
    w.text(f.workflow);
    w.text(f.task);
    w.number(index);
    w.number(f.shard_count);
    w.number(f.dependencies.size());
    for (std::size_t k = 0; k < f.dependencies.size(); ++k) {
        w.text(f.dependencies[k]);
        w.text(result_of(k));
    }
    w.number(f.shards.size());
    for (const auto& s : f.shards) w.text(s);
    return out;
}

/// Reads a block. The constructor reads the fields before the dependencies;
/// the dependencies and shards are read when asked for. A malformed block
/// throws invalid_argument naming meta::block, the block and the byte at fault.
class task_meta_reader {
public:
    explicit task_meta_reader(std::string_view block);

    std::string_view workflow() const noexcept { return workflow_; }
    std::string_view task() const noexcept { return task_; }
    std::uint32_t shard_index() const noexcept { return shard_index_; }
    std::uint32_t shard_count() const noexcept { return shard_count_; }  ///< 0: not a shard
    std::size_t dependency_count() const noexcept { return deps_; }

    /// Calls f(name, result) for each dependency in order until f returns false.
    template <class F>
    void each_dependency(F&& f) const {
        std::size_t at = deps_at_;
        for (std::size_t k = 0; k < deps_; ++k) {
            const auto name = text(at);
            const auto result = text(at);
            if (!f(name, result)) return;
        }
    }
    /// Whether `name` is a dependency; if so, `result` is its result.
    bool find_result(std::string_view name, std::string_view& result) const;
    /// An aggregator's shard names in order; empty for other tasks.
    std::vector<std::string_view> shards() const;

private:
    std::string_view block_;
    std::string_view workflow_, task_;
    std::uint32_t shard_index_ = 0, shard_count_ = 0;
    std::size_t deps_ = 0;
    std::size_t deps_at_ = 0;  ///< where the first dependency starts

    std::string_view text(std::size_t& at) const;
    std::size_t number(std::size_t& at, std::size_t max) const;
    [[noreturn]] void malformed(std::size_t at, std::string_view what) const;
};

}  // namespace orchcore::workflow::detail
