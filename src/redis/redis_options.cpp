#include <orchcore/redis/redis_options.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <string>

namespace orchcore {

namespace {

std::string ms_text(std::chrono::milliseconds d) { return std::to_string(d.count()) + "ms"; }

bool iequals_prefix(std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
    return true;
}

template <class Int>
bool parse_int(std::string_view s, Int& out) {
    if (s.empty()) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && p == s.data() + s.size();
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Percent-decoding; `field` names the part for the error (whose value is
// shown only when `show` is set: passwords are not).
std::string percent_decode(std::string_view s, std::string_view field, bool show) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out.push_back(s[i]);
            continue;
        }
        const int hi = i + 1 < s.size() ? hex_value(s[i + 1]) : -1;
        const int lo = i + 2 < s.size() ? hex_value(s[i + 2]) : -1;
        if (hi < 0 || lo < 0)
            throw invalid_argument(field, show ? "\"" + std::string(s) + "\"" : "***",
                                   "bad percent-encoding (expected %XX with two hex digits)");
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return out;
}

// `v` in double quotes. Appended piecewise: g++ 12 at -O3 reports a false
// -Wrestrict for "\"" + std::string(v) (GCC bug 105329).
std::string quoted(std::string_view v) {
    std::string out;
    out.reserve(v.size() + 2);
    out += '"';
    out += v;
    out += '"';
    return out;
}

// The URL with its password replaced by ***, for error messages.
std::string mask_url(std::string_view url) {
    const auto scheme_end = url.find("://");
    const auto start = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
    const auto auth_end = url.find_first_of("/?", start);
    const auto authority = url.substr(start, auth_end == std::string_view::npos ? std::string_view::npos : auth_end - start);
    const auto at = authority.rfind('@');
    if (at == std::string_view::npos) return quoted(url);
    const auto userinfo = authority.substr(0, at);
    const auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) return quoted(url);
    std::string out(url.substr(0, start + colon + 1));
    out += "***";
    out += url.substr(start + at);
    return quoted(out);
}

}  // namespace

void redis_options::validate() const {
    if (host.empty()) throw invalid_argument("host", "\"\"", "must not be empty");
    if (port < 1 || port > 65535) throw invalid_argument("port", std::to_string(port), "must be in [1, 65535]");
    if (db < 0) throw invalid_argument("db", std::to_string(db), "must be >= 0");
    if (!user.empty() && password.empty())
        throw invalid_argument("password", "\"\"", "an ACL user (user = \"" + user + "\") needs a password");
    if (prefix.empty()) throw invalid_argument("prefix", "\"\"", "must not be empty");
    if (prefix.find_first_of("{}") != std::string::npos)
        throw invalid_argument("prefix", "\"" + prefix + "\"", "must not contain '{' or '}' (they form the hash tag)");
    if (pool_size == 0) throw invalid_argument("pool_size", "0", "must be at least 1");
    if (connect_timeout.count() <= 0)
        throw invalid_argument("connect_timeout", ms_text(connect_timeout), "must be > 0");
    if (command_timeout.count() <= 0)
        throw invalid_argument("command_timeout", ms_text(command_timeout), "must be > 0");
    if (retry_timeout.count() < 0) throw invalid_argument("retry_timeout", ms_text(retry_timeout), "must be >= 0");
    if (reconnect_backoff_base.count() <= 0)
        throw invalid_argument("reconnect_backoff_base", ms_text(reconnect_backoff_base), "must be > 0");
    if (reconnect_backoff_cap < reconnect_backoff_base)
        throw invalid_argument("reconnect_backoff_cap", ms_text(reconnect_backoff_cap),
                               "must be >= reconnect_backoff_base (" + ms_text(reconnect_backoff_base) + ")");
    if (max_payload_bytes == 0) throw invalid_argument("max_payload_bytes", "0", "must be > 0");
}

redis_options redis_options::from_url(std::string_view url) {
    redis_options o;
    const std::string shown = mask_url(url);
    if (iequals_prefix(url, "rediss://"))
        throw invalid_argument("url", shown, "TLS (rediss://) is not supported; use redis://");
    if (!iequals_prefix(url, "redis://"))
        throw invalid_argument("url", shown, "must start with redis://");
    std::string_view rest = url.substr(8);

    std::string_view query;
    if (auto q = rest.find('?'); q != std::string_view::npos) {
        query = rest.substr(q + 1);
        rest = rest.substr(0, q);
    }
    std::string_view path;
    if (auto slash = rest.find('/'); slash != std::string_view::npos) {
        path = rest.substr(slash + 1);
        rest = rest.substr(0, slash);
    }
    std::string_view hostport = rest;
    if (auto at = rest.rfind('@'); at != std::string_view::npos) {
        const std::string_view userinfo = rest.substr(0, at);
        hostport = rest.substr(at + 1);
        if (auto colon = userinfo.find(':'); colon != std::string_view::npos) {
            o.user = percent_decode(userinfo.substr(0, colon), "url.user", true);
            o.password = percent_decode(userinfo.substr(colon + 1), "url.password", false);
        } else {
            // redis://secret@host: a lone userinfo is the password (as redis-cli -u).
            o.password = percent_decode(userinfo, "url.password", false);
        }
        if (!o.user.empty() && o.password.empty())
            throw invalid_argument("url.password", shown, "an ACL user needs a password (redis://user:password@host)");
    }

    std::string_view port_text;
    if (!hostport.empty() && hostport.front() == '[') {
        const auto close = hostport.find(']');
        if (close == std::string_view::npos) throw invalid_argument("url.host", shown, "unterminated '[' in IPv6 host");
        o.host = std::string(hostport.substr(1, close - 1));
        const auto after = hostport.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') throw invalid_argument("url.host", shown, "unexpected text after ']'");
            port_text = after.substr(1);
            if (port_text.empty()) throw invalid_argument("url.port", "\"\"", "must be an integer in [1, 65535]");
        }
    } else if (auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
        o.host = std::string(hostport.substr(0, colon));
        port_text = hostport.substr(colon + 1);
        if (port_text.empty()) throw invalid_argument("url.port", "\"\"", "must be an integer in [1, 65535]");
    } else {
        o.host = std::string(hostport);
    }
    if (o.host.empty()) throw invalid_argument("url.host", shown, "must not be empty");
    if (o.host.find_first_of(" \t\r\n@/") != std::string::npos)
        throw invalid_argument("url.host", "\"" + o.host + "\"", "contains a character not allowed in a host name");
    if (!port_text.empty()) {
        int port = 0;
        if (!parse_int(port_text, port) || port < 1 || port > 65535)
            throw invalid_argument("url.port", "\"" + std::string(port_text) + "\"", "must be an integer in [1, 65535]");
        o.port = port;
    }
    if (!path.empty()) {
        int db = 0;
        if (!parse_int(path, db) || db < 0)
            throw invalid_argument("url.db", "\"" + std::string(path) + "\"", "must be a non-negative integer");
        o.db = db;
    }

    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (pair.empty()) continue;
        const auto eq = pair.find('=');
        if (eq == std::string_view::npos)
            throw invalid_argument("url.query", "\"" + std::string(pair) + "\"", "expected key=value");
        const std::string_view key = pair.substr(0, eq);
        const std::string value = percent_decode(pair.substr(eq + 1), "url." + std::string(key), true);
        const std::string field = "url." + std::string(key);
        auto number = [&](auto& target) {
            using T = std::remove_reference_t<decltype(target)>;
            T v{};
            if (!parse_int(std::string_view(value), v) || v < 0)
                throw invalid_argument(field, "\"" + value + "\"", "must be a non-negative integer");
            target = v;
        };
        auto millis = [&](std::chrono::milliseconds& target) {
            long long v = 0;
            number(v);
            target = std::chrono::milliseconds{v};
        };
        if (key == "prefix") o.prefix = value;
        else if (key == "pool_size") number(o.pool_size);
        else if (key == "connect_timeout_ms") millis(o.connect_timeout);
        else if (key == "command_timeout_ms") millis(o.command_timeout);
        else if (key == "retry_timeout_ms") millis(o.retry_timeout);
        else if (key == "max_payload_bytes") number(o.max_payload_bytes);
        else
            throw invalid_argument("url.query", "\"" + std::string(key) + "\"",
                                   "unknown parameter (known: prefix, pool_size, connect_timeout_ms, "
                                   "command_timeout_ms, retry_timeout_ms, max_payload_bytes)");
    }
    o.validate();
    return o;
}

std::string redis_options::describe() const {
    // Appended piece by piece (see quoted()).
    std::string s = "redis://";
    if (!user.empty()) {
        s += user;
        s += '@';
    }
    const bool v6 = host.find(':') != std::string::npos;
    if (v6) s += '[';
    s += host;
    if (v6) s += ']';
    s += ':';
    s += std::to_string(port);
    s += '/';
    s += std::to_string(db);
    return s;
}

}  // namespace orchcore
