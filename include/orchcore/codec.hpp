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
// bool ("true"/"false"), arithmetic types (decimal text). Every built-in
// codec round-trips exactly: decode(encode(v)) is v, bit for bit, for
// every double (also inside a JSON value), long double and integer.
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

namespace detail {

/// JSON text of `v` in which every double reads back as the same double:
/// the shortest form that does (std::to_chars), always with a '.' or an
/// exponent so that it stays a double; +-infinity as +-1e99999. Throws
/// orchcore::invalid_argument (field `field`) for NaN, which JSON cannot
/// express.
std::string json_serialize_exact(const boost::json::value& v, std::string_view field = "payload");

/// Parses JSON like boost::json::parse, but converts every number that is
/// not an integer from its text with std::from_chars (correctly rounded;
/// Boost.JSON 1.81's own conversion is not always). A number beyond
/// double's range becomes +-infinity, one too small +-0.0.
boost::json::value json_parse_exact(std::string_view text, boost::json::error_code& ec,
                                    const boost::json::parse_options& opt = {});

/// codec<long double>::decode. libstdc++ 12's std::from_chars for long
/// double reads past the end of its input after "inf"/"nan" (up to a NUL)
/// and calls every subnormal out of range; this works around both and
/// otherwise accepts exactly what codec<double> accepts.
long double decode_long_double(std::string_view s);

}  // namespace detail

template <>
struct codec<boost::json::value> {
    static std::string encode(const boost::json::value& v) { return detail::json_serialize_exact(v); }
    static boost::json::value decode(std::string_view s) {
        // Strings are bytes, as boost::json::string holds them: what encode
        // writes for a string that is not valid UTF-8 reads back too.
        boost::json::parse_options opt;
        opt.allow_invalid_utf8 = true;
        boost::json::error_code ec;
        auto v = detail::json_parse_exact(s, ec, opt);
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
        if constexpr (std::is_same_v<T, long double>) {
            return detail::decode_long_double(s);
        } else {
            T v{};
            auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
            if (p != s.data() + s.size() || (ec != std::errc{} && ec != std::errc::result_out_of_range))
                throw invalid_argument("payload", "\"" + std::string(s.substr(0, 64)) + "\"", "not a number");
            if (ec == std::errc::result_out_of_range)
                throw invalid_argument("payload", "\"" + std::string(s.substr(0, 64)) + "\"", "out of range");
            return v;
        }
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
