// Fuzzes the decoder of stored task records (redis_task_store). Input: the
// status, a newline, then the record data ("d" field). Only
// orchcore::error may escape; anything else, or a crash, is a finding, and
// so is a decoded record that the store would refuse to write or that does
// not re-encode to itself.
#include "redis/record_codec.hpp"

#include <orchcore/error.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const auto nl = in.find('\n');
    const auto status = in.substr(0, nl);
    const auto meta = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
    try {
        const auto r = orchcore::redis_codec::decode_task_record("{f:q}:task:x", "x", status, meta, "p", "r");
        // What decodes must be writable again.
        try {
            orchcore::redis_codec::check_task_record(r);
        } catch (...) {
            __builtin_trap();
        }
        // What decodes must encode and decode to the same record.
        const auto again = orchcore::redis_codec::decode_task_record(
            "{f:q}:task:x", "x", to_string(r.status), orchcore::redis_codec::encode_task_meta(r), "p", "r");
        if (orchcore::redis_codec::encode_task_meta(again) != orchcore::redis_codec::encode_task_meta(r))
            __builtin_trap();
    } catch (const orchcore::error&) {
    }
    return 0;
}
