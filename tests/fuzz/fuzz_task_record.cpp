// Fuzzes the decoder of stored task records (redis_task_store). Input: the
// record hash, one "field=value" per line (the HGETALL reply). Only
// orchcore::error may escape; anything else, or a crash, is a finding, and
// so is a decoded record that the store would refuse to write or that does
// not re-encode to itself.
#include "redis/record_codec.hpp"

#include <orchcore/error.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

std::vector<std::string> flat_fields(std::string_view in) {
    std::vector<std::string> flat;
    while (!in.empty()) {
        const auto nl = in.find('\n');
        const auto line = in.substr(0, nl);
        const auto eq = line.find('=');
        flat.emplace_back(line.substr(0, eq));
        flat.emplace_back(eq == std::string_view::npos ? std::string_view{} : line.substr(eq + 1));
        in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
    }
    return flat;
}

std::vector<std::string> encoded(const orchcore::task_record& r) {
    std::vector<std::string> flat;
    for (auto& [f, v] : orchcore::redis_codec::encode_task_fields(r)) {
        flat.emplace_back(f);
        flat.push_back(std::move(v));
    }
    return flat;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    constexpr std::string_view key = "{f:q}:task:x";
    try {
        const auto r = orchcore::redis_codec::decode_task_record(key, "x", flat_fields(in));
        // What decodes must be writable again.
        try {
            orchcore::redis_codec::check_task_record(r);
        } catch (...) {
            __builtin_trap();
        }
        // What decodes must encode and decode to the same record.
        const auto once = encoded(r);
        const auto again = orchcore::redis_codec::decode_task_record(key, "x", once);
        if (encoded(again) != once) __builtin_trap();
    } catch (const orchcore::error&) {
    }
    return 0;
}
