// Payload and result encoding. The engine stores payloads and results as
// bytes (std::string) so that every backend, in memory or Redis, holds the
// same thing; handlers and callers work with their own types through
// orchcore::codec<T>.
//
// Customisation point: specialise
//   template <> struct orchcore::codec<MyType> {
//       static std::string encode(const MyType&);
//       static MyType decode(std::string_view);   // throw orchcore::invalid_argument on bad input
//   };
// Built in: std::string (as is), boost::json::value (serialised JSON),
// bool ("true"/"false"), arithmetic types (decimal text; floating point
// round-trips exactly).
#pragma once

#include <orchcore/error.hpp>

#include <boost/json.hpp>

#include <charconv>
#include <string>
#include <string_view>
#include <type_traits>

namespace orchcore {

template <class T, class = void>
struct codec;

template <>
struct codec<std::string> {
    static std::string encode(const std::string& v) { return v; }
    static std::string decode(std::string_view s) { return std::string(s); }
};

template <>
struct codec<boost::json::value> {
    static std::string encode(const boost::json::value& v) { return boost::json::serialize(v); }
    static boost::json::value decode(std::string_view s) {
        boost::json::error_code ec;
        auto v = boost::json::parse(s, ec);
        if (ec) {
            const std::string shown(s.substr(0, 64));
            throw invalid_argument("payload", "\"" + shown + (s.size() > 64 ? "...\"" : "\""),
                                   "not valid JSON: " + ec.message());
        }
        return v;
    }
};

/// Arithmetic types as decimal text. Floating-point values use the shortest
/// text that reads back to the same value (std::to_chars), so they round-trip
/// exactly; std::to_string's "%f" would turn 1e-9 into "0.000000".
template <class T>
struct codec<T, std::enable_if_t<std::is_arithmetic_v<T> && !std::is_same_v<T, bool>>> {
    static std::string encode(T v) {
        char buf[64];
        auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
        (void)ec;  // 64 chars hold any integer and the shortest form of any double
        return std::string(buf, p);
    }
    static T decode(std::string_view s) {
        T v{};
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc{} || p != s.data() + s.size())
            throw invalid_argument("payload", "\"" + std::string(s.substr(0, 64)) + "\"", "not a number");
        return v;
    }
};

/// bool as "true" / "false".
template <>
struct codec<bool> {
    static std::string encode(bool v) { return v ? "true" : "false"; }
    static bool decode(std::string_view s) {
        if (s == "true") return true;
        if (s == "false") return false;
        throw invalid_argument("payload", "\"" + std::string(s.substr(0, 64)) + "\"", "not a bool (true or false)");
    }
};

/// Has a usable codec.
template <class T>
concept encodable = requires(const T& v, std::string_view s) {
    { codec<T>::encode(v) } -> std::convertible_to<std::string>;
    { codec<T>::decode(s) } -> std::convertible_to<T>;
};

}  // namespace orchcore
