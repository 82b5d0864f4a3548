// Private helpers of the Redis component.
#pragma once

#include <orchcore/error.hpp>
#include <orchcore/redis/redis_client.hpp>

#include <hiredis/hiredis.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace orchcore::redis_detail {

/// "{<prefix>:<queue>}", after checking the queue name. The queue name may
/// not contain ':' (nor the hash-tag braces), so the last ':' inside the
/// braces separates the two and no two (prefix, queue) pairs share a key
/// (the prefix, checked by redis_options::validate, may contain ':').
inline std::string key_base(const std::string& prefix, const std::string& queue) {
    if (queue.empty()) throw invalid_argument("queue", "\"\"", "must not be empty");
    if (queue.find_first_of("{}:") != std::string::npos)
        throw invalid_argument("queue", "\"" + queue + "\"",
                               "must not contain ':' (it separates the prefix from the queue name in every key) "
                               "or '{', '}' (they form the hash tag)");
    return "{" + prefix + ":" + queue + "}";
}

/// The longest wait the Redis component schedules (about 100 years). A
/// configured duration above it, up to milliseconds::max(), waits this long
/// instead: still "a long time", and now() plus it, or it in nanoseconds,
/// or as a timeval, cannot overflow.
inline constexpr std::chrono::milliseconds max_wait{std::chrono::hours(24 * 365 * 100)};

inline std::chrono::milliseconds clamp_wait(std::chrono::milliseconds d) { return std::min(d, max_wait); }

/// steady_clock::now() + d, without overflow for any d >= 0.
inline std::chrono::steady_clock::time_point deadline_after(std::chrono::milliseconds d) {
    return std::chrono::steady_clock::now() + clamp_wait(d);
}

/// The next reconnect backoff: twice `d`, at most `cap`, without overflow.
inline std::chrono::milliseconds doubled(std::chrono::milliseconds d, std::chrono::milliseconds cap) {
    return d > cap / 2 ? cap : d * 2;
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

/// The reply's integer, or redis_error if it is not a non-negative integer
/// (an error reply such as WRONGTYPE included). `what`: the command and key.
inline long long expect_count(const redis_reply& r, std::string_view what) {
    if (r.type != redis_reply::kind::integer || r.integer < 0)
        throw redis_error(redis_failure::server,
                          "orchcore: unexpected reply from redis to " + std::string(what) +
                              (r.is_error() ? ": " + r.str : std::string(" (not a count)")));
    return r.integer;
}

/// system_clock ticks since the epoch, exactly (nanoseconds on Linux).
inline std::int64_t to_ticks(std::chrono::system_clock::time_point t) { return t.time_since_epoch().count(); }
inline std::chrono::system_clock::time_point from_ticks(std::int64_t v) {
    return std::chrono::system_clock::time_point{std::chrono::system_clock::duration{v}};
}

inline std::int64_t to_ms(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

/// A hiredis reply as a redis_reply (deep copy).
inline redis_reply convert(const redisReply* r) {
    redis_reply out;
    switch (r->type) {
        case REDIS_REPLY_STRING:
            out.type = redis_reply::kind::string;
            out.str.assign(r->str, r->len);
            break;
        case REDIS_REPLY_STATUS:
            out.type = redis_reply::kind::status;
            out.str.assign(r->str, r->len);
            break;
        case REDIS_REPLY_ERROR:
            out.type = redis_reply::kind::error;
            out.str.assign(r->str, r->len);
            break;
        case REDIS_REPLY_INTEGER:
            out.type = redis_reply::kind::integer;
            out.integer = r->integer;
            break;
        case REDIS_REPLY_ARRAY:
            out.type = redis_reply::kind::array;
            out.elements.reserve(r->elements);
            for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
            break;
        default: out.type = redis_reply::kind::nil; break;
    }
    return out;
}

inline bool starts_with(const std::string& s, std::string_view p) { return s.compare(0, p.size(), p) == 0; }

/// A reconnect backoff with jitter: uniform in [d/2, d] (at least 1 ms wide).
inline std::chrono::milliseconds jittered(std::chrono::milliseconds d) {
    thread_local std::minstd_rand rng{std::random_device{}()};
    std::uniform_int_distribution<long long> u(d.count() / 2, std::max<long long>(d.count(), 1));
    return std::chrono::milliseconds{u(rng)};
}

/// 16 random hex digits (a connection's or a process's name among others).
inline std::string random_hex() {
    std::random_device rd;
    std::mt19937_64 rng((static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^
                        static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
    static constexpr char hex[] = "0123456789abcdef";
    std::string out(16, '0');
    auto v = rng();
    for (auto& ch : out) {
        ch = hex[v & 15];
        v >>= 4;
    }
    return out;
}

}  // namespace orchcore::redis_detail
