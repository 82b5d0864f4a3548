// Fuzzes the decoder of a transport's queue state (the :state hash as
// HGETALL returns it; redis_transport). Input: field and value lines,
// alternating. Only orchcore::error may escape; anything else, or a crash,
// is a finding.
#include "redis/record_codec.hpp"

#include <orchcore/error.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    std::vector<std::string> flat;
    while (!in.empty()) {
        const auto nl = in.find('\n');
        flat.emplace_back(in.substr(0, nl));
        in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
    }
    const std::string key = "{f:q}:state";
    try {
        const auto s = orchcore::redis_codec::decode_queue_state(key, flat);
        if (s.ewma_ms && !(*s.ewma_ms >= 0.0)) __builtin_trap();
        if (!flat.empty()) (void)orchcore::redis_codec::decode_ewma(key, flat.back());
    } catch (const orchcore::error&) {
    }
    return 0;
}
