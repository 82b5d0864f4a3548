// The compiled parts of orchcore::codec.
//
// Exact JSON (codec<boost::json::value> and the Redis event wire format):
// doubles are written in their shortest round-trip form and read back with
// std::from_chars, so a double survives a round trip bit for bit (Boost.JSON
// 1.81's parser rounds some texts to a neighbouring double).
#include <orchcore/codec.hpp>

#include <boost/json/basic_parser_impl.hpp>

#include <charconv>
#include <clocale>
#include <cmath>
#include <cstdlib>
#include <string>
#include <string_view>

namespace orchcore::detail {

namespace json = boost::json;

namespace {

void write_double(std::string& out, double d, std::string_view field) {
    if (std::isnan(d)) throw invalid_argument(field, "NaN", "JSON has no NaN");
    if (std::isinf(d)) {
        out += d < 0 ? "-1e99999" : "1e99999";  // read back as infinity
        return;
    }
    char buf[32];
    const auto [p, ec] = std::to_chars(buf, buf + sizeof buf, d);
    (void)ec;  // 32 chars hold the shortest form of any double
    const std::string_view text(buf, static_cast<std::size_t>(p - buf));
    out += text;
    if (text.find_first_of(".e") == std::string_view::npos) out += ".0";  // stays a double
}

void write_value(std::string& out, const json::value& v, std::string_view field) {
    switch (v.kind()) {
        case json::kind::double_: write_double(out, v.get_double(), field); return;
        case json::kind::array: {
            out += '[';
            bool first = true;
            for (const auto& e : v.get_array()) {
                if (!first) out += ',';
                first = false;
                write_value(out, e, field);
            }
            out += ']';
            return;
        }
        case json::kind::object: {
            out += '{';
            bool first = true;
            for (const auto& kv : v.get_object()) {
                if (!first) out += ',';
                first = false;
                out += json::serialize(kv.key());
                out += ':';
                write_value(out, kv.value(), field);
            }
            out += '}';
            return;
        }
        default: out += json::serialize(v); return;  // strings, integers, bool, null: exact already
    }
}

// The handler of boost::json::parser (value_stack), except for doubles.
struct exact_handler {
    static constexpr std::size_t max_object_size = json::object::max_size();
    static constexpr std::size_t max_array_size = json::array::max_size();
    static constexpr std::size_t max_key_size = json::string::max_size();
    static constexpr std::size_t max_string_size = json::string::max_size();

    json::value_stack st;
    std::string number;  // the text of a number split across parts

    bool on_document_begin(json::error_code&) { return true; }
    bool on_document_end(json::error_code&) { return true; }
    bool on_object_begin(json::error_code&) { return true; }
    bool on_object_end(std::size_t n, json::error_code&) { return st.push_object(n), true; }
    bool on_array_begin(json::error_code&) { return true; }
    bool on_array_end(std::size_t n, json::error_code&) { return st.push_array(n), true; }
    bool on_key_part(json::string_view s, std::size_t, json::error_code&) { return st.push_chars(s), true; }
    bool on_key(json::string_view s, std::size_t, json::error_code&) { return st.push_key(s), true; }
    bool on_string_part(json::string_view s, std::size_t, json::error_code&) { return st.push_chars(s), true; }
    bool on_string(json::string_view s, std::size_t, json::error_code&) { return st.push_string(s), true; }
    bool on_number_part(json::string_view s, json::error_code&) { return number.append(s.data(), s.size()), true; }
    bool on_int64(std::int64_t i, json::string_view, json::error_code&) {
        number.clear();
        return st.push_int64(i), true;
    }
    bool on_uint64(std::uint64_t u, json::string_view, json::error_code&) {
        number.clear();
        return st.push_uint64(u), true;
    }
    bool on_double(double approx, json::string_view s, json::error_code&) {
        number.append(s.data(), s.size());
        st.push_double(exact_double(approx));
        number.clear();
        return true;
    }
    bool on_bool(bool b, json::error_code&) { return st.push_bool(b), true; }
    bool on_null(json::error_code&) { return st.push_null(), true; }
    bool on_comment_part(json::string_view, json::error_code&) { return true; }
    bool on_comment(json::string_view, json::error_code&) { return true; }

    // The correctly rounded value of `number`; Boost's approximation only
    // tells over- from underflow (from_chars reports both as out of range).
    double exact_double(double approx) const {
        double d = 0;
        const auto [p, ec] = std::from_chars(number.data(), number.data() + number.size(), d);
        (void)p;
        if (ec == std::errc{}) return d;
        const double magnitude = std::fabs(approx) >= 1 ? HUGE_VAL : 0.0;
        return number.starts_with('-') ? -magnitude : magnitude;
    }
};

[[noreturn]] void bad_number(std::string_view s, const char* why) {
    throw invalid_argument("payload", "\"" + std::string(s.substr(0, 64)) + "\"", why);
}

// A subnormal long double that from_chars called out of range: glibc's
// strtold (which it uses) reports ERANGE for every subnormal result.
long double subnormal_or_throw(const std::string& text) {
    static const locale_t c_locale = ::newlocale(LC_ALL_MASK, "C", locale_t{});
    char* end = nullptr;
    const long double v = c_locale ? ::strtold_l(text.c_str(), &end, c_locale) : 0.0L;
    if (end != text.c_str() + text.size() || v == 0 || !std::isfinite(v)) bad_number(text, "out of range");
    return v;
}

}  // namespace

long double decode_long_double(std::string_view s) {
    const std::string text(s);  // NUL-terminated, so from_chars stops at its end
    long double v = 0;
    const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (p != text.data() + text.size() || (ec != std::errc{} && ec != std::errc::result_out_of_range))
        bad_number(s, "not a number");
    if (ec == std::errc::result_out_of_range) return subnormal_or_throw(text);
    return v;
}

std::string json_serialize_exact(const json::value& v, std::string_view field) {
    std::string out;
    write_value(out, v, field);
    return out;
}

json::value json_parse_exact(std::string_view text, json::error_code& ec, const json::parse_options& opt) {
    json::basic_parser<exact_handler> p(opt);
    p.handler().st.reset();
    const auto n = p.write_some(false, text.data(), text.size(), ec);
    if (!ec && n < text.size()) ec = json::error::extra_data;
    if (ec) return nullptr;
    return p.handler().st.release();
}

}  // namespace orchcore::detail
