// Connection settings of the Redis component (orchcore::redis), as a struct
// or a URL.
#pragma once

#include <orchcore/error.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace orchcore {

struct redis_options {
    /// A host name or IP address: letters, digits, '-', '.', '_' and ':'
    /// (IPv6) only; anything else (a NUL, a space, '/') is refused.
    std::string host = "127.0.0.1";
    int port = 6379;
    int db = 0;                 ///< SELECTed on every connection
    std::string user{};         ///< ACL user; empty: AUTH with the password only
    std::string password{};     ///< empty: no AUTH
    /// First part of every key: keys are `{<prefix>:<queue>}:...`. Must be
    /// non-empty and contain no '{' or '}' (they would move the hash tag).
    /// It may contain ':' (the queue name may not, so the last ':' in the
    /// braces separates the two and no two configurations share keys).
    std::string prefix = "orchcore";
    std::size_t pool_size = 8;  ///< max connections held by one redis_client
    /// Every duration may be as long as milliseconds::max(): anything above
    /// about 100 years waits about 100 years (no overflow), and hiredis
    /// itself waits at most INT_MAX ms (24.8 days) for one connect.
    std::chrono::milliseconds connect_timeout{2'000};
    /// Per command: a reply that takes longer fails the call (no call hangs).
    std::chrono::milliseconds command_timeout{5'000};
    /// How long one call keeps trying to (re)connect, with exponential
    /// backoff between attempts, before it throws backend_unavailable.
    /// Also bounds the wait for a free pooled connection. 0: one attempt.
    std::chrono::milliseconds retry_timeout{5'000};
    std::chrono::milliseconds reconnect_backoff_base{50};
    std::chrono::milliseconds reconnect_backoff_cap{2'000};
    /// Largest task payload (and result) the Redis task store accepts.
    std::size_t max_payload_bytes = 16u << 20;
    /// Called with warnings found when connecting (such as a
    /// maxmemory-policy that may evict queue keys). Empty: print to stderr.
    std::function<void(std::string_view)> on_warning{};

    /// Throws orchcore::invalid_argument naming the first bad field.
    void validate() const;

    /// Parses `redis://[[user][:password]@]host[:port][/db][?key=value&...]`.
    /// The userinfo runs to the last '@', so a password may hold '/', '?',
    /// '#', '@' and ':' as they are; the user runs to the first ':' (no ':':
    /// the whole userinfo is the password, as with redis-cli). User,
    /// password and query values are percent-decoded (RFC 3986: %XX).
    /// Host: a name or IPv4 address, or `[ipv6]`; port: 1..65535; db: a
    /// non-negative integer. Query keys (each at most once): prefix,
    /// pool_size, connect_timeout_ms, command_timeout_ms, retry_timeout_ms,
    /// max_payload_bytes. A '#' fragment, a raw control character, an
    /// unknown key or any malformed part throws orchcore::invalid_argument
    /// naming the field ("url", "url.host", "url.port", "url.db",
    /// "url.query", "url.<key>", "url.fragment", ...) and its value; the
    /// password is never shown in a message ("***"). An '@' in the path or
    /// query must be written %40.
    static redis_options from_url(std::string_view url);

    /// The URL without the password (for logs).
    std::string describe() const;
};

}  // namespace orchcore
