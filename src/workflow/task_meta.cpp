#include "task_meta.hpp"

#include <orchcore/error.hpp>
#include <orchcore/workflow/context.hpp>

#include <limits>

namespace orchcore::workflow::detail {

task_meta_reader::task_meta_reader(std::string_view block) : block_(block) {
    if (!block.starts_with("1;")) malformed(0, "not a version 1 block");
    std::size_t at = 2;
    workflow_ = text(at);
    task_ = text(at);
    constexpr std::size_t u32 = std::numeric_limits<std::uint32_t>::max();
    shard_index_ = static_cast<std::uint32_t>(number(at, u32));
    shard_count_ = static_cast<std::uint32_t>(number(at, u32));
    // Each dependency takes at least 4 bytes ("0:0:").
    deps_ = number(at, (block_.size() - at) / 4);
    deps_at_ = at;
}

bool task_meta_reader::find_result(std::string_view name, std::string_view& result) const {
    bool found = false;
    each_dependency([&](std::string_view n, std::string_view r) {
        if (n != name) return true;
        result = r;
        found = true;
        return false;
    });
    return found;
}

std::vector<std::string_view> task_meta_reader::shards() const {
    std::size_t at = deps_at_;
    for (std::size_t k = 0; k < 2 * deps_; ++k) (void)text(at);
    // Each shard name takes at least 2 bytes ("0:").
    const auto n = number(at, (block_.size() - at) / 2);
    std::vector<std::string_view> out;
    out.reserve(n);
    for (std::size_t k = 0; k < n; ++k) out.push_back(text(at));
    return out;
}

std::string_view task_meta_reader::text(std::size_t& at) const {
    std::size_t len = 0;
    const auto* first = block_.data() + at;
    const auto* last = block_.data() + block_.size();
    const auto r = std::from_chars(first, last, len);
    if (r.ec != std::errc{} || r.ptr == last || *r.ptr != ':') malformed(at, "expected <length>:");
    const auto from = static_cast<std::size_t>(r.ptr - block_.data()) + 1;
    if (len > block_.size() - from) malformed(at, "a length past the end");
    at = from + len;
    return block_.substr(from, len);
}

std::size_t task_meta_reader::number(std::size_t& at, std::size_t max) const {
    std::size_t n = 0;
    const auto* first = block_.data() + at;
    const auto* last = block_.data() + block_.size();
    const auto r = std::from_chars(first, last, n);
    if (r.ec != std::errc{} || r.ptr == last || *r.ptr != ';') malformed(at, "expected <number>;");
    if (n > max) malformed(at, "a number out of range");
    at = static_cast<std::size_t>(r.ptr - block_.data()) + 1;
    return n;
}

void task_meta_reader::malformed(std::size_t at, std::string_view what) const {
    throw invalid_argument(meta::block, block_, "malformed at byte " + std::to_string(at) + ": " + std::string(what));
}

}  // namespace orchcore::workflow::detail
