// Private helpers of the Redis component.
#pragma once

#include <orchcore/error.hpp>
#include <orchcore/redis/redis_client.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace orchcore::redis_detail {

/// "{<prefix>:<queue>}", after checking the queue name.
inline std::string key_base(const std::string& prefix, const std::string& queue) {
    if (queue.empty()) throw invalid_argument("queue", "\"\"", "must not be empty");
    if (queue.find_first_of("{}") != std::string::npos)
        throw invalid_argument("queue", "\"" + queue + "\"", "must not contain '{' or '}' (they form the hash tag)");
    return "{" + prefix + ":" + queue + "}";
}

/// The reply's elements, or redis_error if it is not an array of at least
/// `min_size` elements.
inline const std::vector<redis_reply>& expect_array(const redis_reply& r, std::string_view what,
                                                    std::size_t min_size = 0) {
    if (r.type != redis_reply::kind::array || r.elements.size() < min_size)
        throw redis_error(redis_failure::server,
                          "orchcore: unexpected reply from redis to " + std::string(what) +
                              (r.is_error() ? ": " + r.str : std::string(" (not an array of the expected size)")));
    return r.elements;
}

/// system_clock ticks since the epoch, exactly (nanoseconds on Linux).
inline std::int64_t to_ticks(std::chrono::system_clock::time_point t) { return t.time_since_epoch().count(); }
inline std::chrono::system_clock::time_point from_ticks(std::int64_t v) {
    return std::chrono::system_clock::time_point{std::chrono::system_clock::duration{v}};
}

inline std::int64_t to_ms(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace orchcore::redis_detail
