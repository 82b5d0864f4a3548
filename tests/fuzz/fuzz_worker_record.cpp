// Fuzzes the decoder of worker records (redis_worker_registry). Input: the
// status, the heartbeat and the data, separated by newlines. Only
// orchcore::error may escape; anything else, or a crash, is a finding.
#include "redis/record_codec.hpp"

#include <orchcore/error.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {
std::string_view next(std::string_view& in) {
    const auto nl = in.find('\n');
    const auto part = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
    return part;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    const auto status = next(in);
    const auto heartbeat = next(in);
    try {
        const auto w = orchcore::redis_codec::decode_worker_record("{f:q}:worker:x", "x", status, heartbeat, in);
        (void)orchcore::redis_codec::encode_worker_data(w);
    } catch (const orchcore::error&) {
    }
    return 0;
}
