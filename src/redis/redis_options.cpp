#include <orchcore/redis/redis_options.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace orchcore {

namespace {

using std::string_view;
constexpr auto npos = string_view::npos;

std::string ms_text(std::chrono::milliseconds d) { return std::to_string(d.count()) + "ms"; }

bool is_control(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
}

bool iequals_prefix(string_view s, string_view prefix) {
    if (s.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
    return true;
}

template <class Int>
bool parse_int(string_view s, Int& out) {
    if (s.empty() || s.front() == '-' || s.front() == '+') return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && p == s.data() + s.size();
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// `v` in double quotes, control characters as \xNN. Appended piecewise:
// g++ 12 at -O3 reports a false -Wrestrict for "\"" + std::string(v) (GCC
// bug 105329).
std::string quoted(string_view v) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(v.size() + 2);
    out += '"';
    for (const char c : v) {
        if (!is_control(c)) {
            out += c;
            continue;
        }
        const auto u = static_cast<unsigned char>(c);
        out += "\\x";
        out += hex[u >> 4];
        out += hex[u & 0xf];
    }
    out += '"';
    return out;
}

// Percent-decoding (RFC 3986); `field` names the part for the error, whose
// value is shown only when `show` is set (passwords are not). The reason
// quotes nothing of the input.
std::string percent_decode(string_view s, string_view field, bool show) {
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
            throw invalid_argument(field, show ? quoted(s) : "***",
                                   "bad percent-encoding (a percent sign must be followed by two hex digits)");
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return out;
}

// The offset just after "<scheme>://", or 0 if the URL does not start with
// a scheme (RFC 3986: a letter, then letters, digits, '+', '-', '.').
std::size_t authority_start(string_view url) {
    const auto sep = url.find("://");
    if (sep == npos || sep == 0 || !std::isalpha(static_cast<unsigned char>(url[0]))) return 0;
    for (std::size_t i = 1; i < sep; ++i) {
        const auto c = static_cast<unsigned char>(url[i]);
        if (!std::isalnum(c) && c != '+' && c != '-' && c != '.') return 0;
    }
    return sep + 3;
}

// A URL cut into its raw parts. The userinfo runs to the LAST '@', so a
// password may contain '/', '?', '#', '@' and ':' unescaped; the authority
// (host and port) ends at the first '/', '?' or '#' after it. In the
// userinfo, the user runs to the first ':'; without a ':' the whole
// userinfo is the password (as with redis-cli -u).
struct url_parts {
    std::size_t start = 0;  // offset of the userinfo or host
    bool has_userinfo = false;
    bool has_user = false;
    string_view user, password, hostport;
    std::optional<string_view> path, query, fragment;  // without their '/', '?', '#'
    std::size_t password_begin = 0, password_end = 0;  // offsets in the URL
};

url_parts split_url(string_view url) {
    url_parts p;
    p.start = authority_start(url);
    string_view rest = url.substr(p.start);
    if (const auto at = rest.rfind('@'); at != npos) {
        const auto userinfo = rest.substr(0, at);
        const auto colon = userinfo.find(':');
        p.has_userinfo = true;
        p.has_user = colon != npos;
        p.user = p.has_user ? userinfo.substr(0, colon) : string_view{};
        p.password = p.has_user ? userinfo.substr(colon + 1) : userinfo;
        p.password_begin = p.start + (p.has_user ? colon + 1 : 0);
        p.password_end = p.start + at;
        rest = rest.substr(at + 1);
    }
    const auto end = rest.find_first_of("/?#");
    p.hostport = rest.substr(0, end);
    rest = end == npos ? string_view{} : rest.substr(end);
    if (const auto hash = rest.find('#'); hash != npos) {
        p.fragment = rest.substr(hash + 1);
        rest = rest.substr(0, hash);
    }
    if (const auto q = rest.find('?'); q != npos) {
        p.query = rest.substr(q + 1);
        rest = rest.substr(0, q);
    }
    if (!rest.empty()) p.path = rest.substr(1);
    return p;
}

// The URL with its password replaced by ***, quoted, for error messages.
std::string mask_url(string_view url) {
    const url_parts p = split_url(url);
    if (!p.has_userinfo) return quoted(url);
    std::string out(url.substr(0, p.password_begin));
    out += "***";
    out += url.substr(p.password_end);
    return quoted(out);
}

// Throws invalid_argument(field, value) if `part` has a control character.
void refuse_controls(string_view part, string_view field, const std::string& value) {
    for (std::size_t i = 0; i < part.size(); ++i)
        if (is_control(part[i]))
            throw invalid_argument(field, value,
                                   "contains a control character at offset " + std::to_string(i) +
                                       " (percent-encode it if it is meant)");
}

// The offset of the first character of `host` that is not allowed in a
// host name or IP address, or npos.
std::size_t bad_host_char(string_view host) {
    for (std::size_t i = 0; i < host.size(); ++i) {
        const auto c = static_cast<unsigned char>(host[i]);
        if (!std::isalnum(c) && c != '-' && c != '.' && c != '_' && c != ':') return i;
    }
    return npos;
}

void parse_userinfo(const url_parts& p, redis_options& o) {
    refuse_controls(p.user, "url.user", quoted(p.user));
    refuse_controls(p.password, "url.password", "***");
    o.user = percent_decode(p.user, "url.user", true);
    o.password = percent_decode(p.password, "url.password", false);
    if (!o.user.empty() && o.password.empty())
        throw invalid_argument("url.password", "\"\"", "an ACL user needs a password (redis://user:password@host)");
}

// "[v6]" or "[v6]:port" -> host and port text.
string_view split_bracketed(string_view hostport, redis_options& o) {
    const auto close = hostport.find(']');
    if (close == npos) throw invalid_argument("url.host", quoted(hostport), "unterminated '[' in an IPv6 host");
    const auto v6 = hostport.substr(1, close - 1);
    const bool ok = v6.find(':') != npos && v6.find_first_not_of("0123456789abcdefABCDEF:.") == npos;
    if (!ok) throw invalid_argument("url.host", quoted(v6), "not an IPv6 address (only those go in brackets)");
    o.host = std::string(v6);
    const auto after = hostport.substr(close + 1);
    if (after.empty()) return {};
    if (after.front() != ':') throw invalid_argument("url.host", quoted(hostport), "unexpected text after ']'");
    return after.substr(1);
}

void parse_hostport(string_view hostport, redis_options& o) {
    refuse_controls(hostport, "url.host", quoted(hostport));
    string_view port_text;
    bool has_port = false;
    if (!hostport.empty() && hostport.front() == '[') {
        has_port = hostport.back() != ']';
        port_text = split_bracketed(hostport, o);
    } else {
        const auto colon = hostport.find(':');
        has_port = colon != npos;
        o.host = std::string(hostport.substr(0, colon));
        if (has_port) port_text = hostport.substr(colon + 1);
        if (o.host.empty() && port_text.find(':') != npos)
            throw invalid_argument("url.host", quoted(hostport), "an IPv6 address goes in brackets, as in [::1]:6379");
        if (o.host.empty()) throw invalid_argument("url.host", "\"\"", "must not be empty");
        if (bad_host_char(o.host) != npos)
            throw invalid_argument("url.host", quoted(o.host), "contains a character not allowed in a host name");
    }
    if (!has_port) return;
    int port = 0;
    if (!parse_int(port_text, port) || port < 1 || port > 65535)
        throw invalid_argument("url.port", quoted(port_text), "must be an integer in [1, 65535]");
    o.port = port;
}

void parse_db(string_view path, redis_options& o) {
    refuse_controls(path, "url.db", quoted(path));
    if (path.empty()) return;  // "redis://host/": db 0
    int db = 0;
    if (!parse_int(path, db)) throw invalid_argument("url.db", quoted(path), "must be an integer in [0, 2147483647]");
    o.db = db;
}

constexpr string_view known_parameters =
    "known: prefix, pool_size, connect_timeout_ms, command_timeout_ms, retry_timeout_ms, max_payload_bytes";

template <class Int>
void set_number(Int& target, const std::string& field, const std::string& value) {
    if (!parse_int(string_view(value), target))
        throw invalid_argument(field, quoted(value),
                               "must be an integer in [0, " + std::to_string(std::numeric_limits<Int>::max()) + "]");
}

// Sets one query parameter; false if `key` is not one.
bool set_parameter(redis_options& o, string_view key, const std::string& value) {
    const std::string field = "url." + std::string(key);
    auto millis = [&](std::chrono::milliseconds& target) {
        std::chrono::milliseconds::rep v = 0;
        set_number(v, field, value);
        target = std::chrono::milliseconds{v};
    };
    if (key == "prefix") o.prefix = value;
    else if (key == "pool_size") set_number(o.pool_size, field, value);
    else if (key == "connect_timeout_ms") millis(o.connect_timeout);
    else if (key == "command_timeout_ms") millis(o.command_timeout);
    else if (key == "retry_timeout_ms") millis(o.retry_timeout);
    else if (key == "max_payload_bytes") set_number(o.max_payload_bytes, field, value);
    else return false;
    return true;
}

void parse_query(string_view query, redis_options& o) {
    refuse_controls(query, "url.query", quoted(query));
    std::vector<string_view> seen;
    while (!query.empty()) {
        const auto amp = query.find('&');
        const string_view pair = query.substr(0, amp);
        query = amp == npos ? string_view{} : query.substr(amp + 1);
        if (pair.empty()) continue;
        const auto eq = pair.find('=');
        if (eq == npos) throw invalid_argument("url.query", quoted(pair), "expected key=value");
        const string_view key = pair.substr(0, eq);
        const std::string field = "url." + std::string(key);
        const std::string value = percent_decode(pair.substr(eq + 1), field, true);
        if (std::find(seen.begin(), seen.end(), key) != seen.end())
            throw invalid_argument(field, quoted(value), "given more than once");
        if (!set_parameter(o, key, value))
            throw invalid_argument("url.query", quoted(key),
                                   "unknown parameter (" + std::string(known_parameters) + ")");
        seen.push_back(key);
    }
}

}  // namespace

void redis_options::validate() const {
    if (host.empty()) throw invalid_argument("host", "\"\"", "must not be empty");
    if (const auto bad = bad_host_char(host); bad != npos)
        throw invalid_argument("host", quoted(host),
                               "contains a character not allowed in a host name or IP address at offset " +
                                   std::to_string(bad) + " (allowed: letters, digits, '-', '.', '_', ':')");
    if (port < 1 || port > 65535) throw invalid_argument("port", std::to_string(port), "must be in [1, 65535]");
    if (db < 0) throw invalid_argument("db", std::to_string(db), "must be >= 0");
    if (!user.empty() && password.empty())
        throw invalid_argument("password", "\"\"", "an ACL user (user = " + quoted(user) + ") needs a password");
    if (prefix.empty()) throw invalid_argument("prefix", "\"\"", "must not be empty");
    if (prefix.find_first_of("{}") != std::string::npos)
        throw invalid_argument("prefix", quoted(prefix), "must not contain '{' or '}' (they form the hash tag)");
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

redis_options redis_options::from_url(string_view url) {
    if (iequals_prefix(url, "rediss://"))
        throw invalid_argument("url", mask_url(url), "TLS (rediss://) is not supported; use redis://");
    if (!iequals_prefix(url, "redis://")) throw invalid_argument("url", mask_url(url), "must start with redis://");
    const url_parts p = split_url(url);
    redis_options o;
    if (p.has_userinfo) parse_userinfo(p, o);
    parse_hostport(p.hostport, o);
    if (p.path) parse_db(*p.path, o);
    if (p.query) parse_query(*p.query, o);
    if (p.fragment)
        throw invalid_argument("url.fragment", quoted(*p.fragment),
                               "a fragment ('#...') is not allowed (percent-encode a '#' in a password as %23)");
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
