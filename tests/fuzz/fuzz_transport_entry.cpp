// Fuzzes the decoders of transport entries: the per-task fields the lease
// and recovery scripts return (redis_transport). Input: fields separated by
// newlines; the first byte picks the decoder (even: a leased task, 3
// fields; odd: a recovered lease, 7 fields). Only orchcore::error may
// escape; anything else, or a crash, is a finding.
#include "redis/record_codec.hpp"

#include <orchcore/error.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {
template <std::size_t N>
std::array<std::string, N> split(std::string_view in) {
    std::array<std::string, N> out;
    for (std::size_t i = 0; i < N; ++i) {
        const auto nl = i + 1 < N ? in.find('\n') : std::string_view::npos;
        out[i] = std::string(in.substr(0, nl));
        in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
    }
    return out;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
    const std::string key = "{f:q}:m:";
    try {
        if (data[0] % 2 == 0) {
            (void)orchcore::redis_codec::decode_leased(key, split<3>(in), "w", {});
        } else {
            (void)orchcore::redis_codec::decode_recovered(key, split<7>(in));
        }
    } catch (const orchcore::error&) {
    }
    return 0;
}
