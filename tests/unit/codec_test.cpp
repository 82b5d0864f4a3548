// orchcore::codec<T>: every built-in codec reads back exactly what it wrote,
// and bad text is an invalid_argument, never a crash or an overread.
#include <orchcore/codec.hpp>

#include <catch2/catch.hpp>
#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include <sys/mman.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace oc = orchcore;
namespace json = boost::json;

namespace {

// Same value: bit for bit (so -0.0 differs from 0.0), any NaN equal to any NaN.
template <class T>
bool same(T a, T b) {
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
    return a == b && std::signbit(a) == std::signbit(b);
}

// Doubles bit for bit; integers by value (JSON text has no signedness, so
// a uint64 that fits reads back as an int64, as Boost.JSON's == allows).
bool same_json(const json::value& a, const json::value& b) {
    if (a.is_double() != b.is_double() || a.is_array() != b.is_array() || a.is_object() != b.is_object())
        return false;
    switch (a.kind()) {
        case json::kind::double_: return same(a.get_double(), b.get_double());
        case json::kind::array: {
            const auto &x = a.get_array(), &y = b.get_array();
            if (x.size() != y.size()) return false;
            for (std::size_t i = 0; i < x.size(); ++i)
                if (!same_json(x[i], y[i])) return false;
            return true;
        }
        case json::kind::object: {
            const auto &x = a.get_object(), &y = b.get_object();
            if (x.size() != y.size()) return false;
            for (const auto& kv : x) {
                const auto* w = y.if_contains(kv.key());
                if (!w || !same_json(kv.value(), *w)) return false;
            }
            return true;
        }
        default: return a == b;
    }
}

// Any finite or infinite double, with subnormals, extremes and both zeros
// much more likely than uniformly random bit patterns make them.
rc::Gen<double> any_double() {
    constexpr double lim_max = std::numeric_limits<double>::max();
    constexpr double lim_min = std::numeric_limits<double>::min();
    constexpr double lim_den = std::numeric_limits<double>::denorm_min();
    return rc::gen::oneOf(
        rc::gen::map(rc::gen::arbitrary<std::uint64_t>(),
                     [](std::uint64_t b) {
                         const double d = std::bit_cast<double>(b);
                         return std::isnan(d) ? 0.5 : d;
                     }),
        rc::gen::map(rc::gen::arbitrary<std::uint64_t>(),  // subnormals
                     [](std::uint64_t b) { return std::bit_cast<double>(b & 0x800f'ffff'ffff'ffffULL); }),
        rc::gen::element(0.0, -0.0, lim_max, -lim_max, lim_min, -lim_min, lim_den, -lim_den, 2.1e29, 0.1,
                         std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()));
}

rc::Gen<long double> any_long_double() {
    return rc::gen::map(rc::gen::tuple(rc::gen::arbitrary<std::uint64_t>(), rc::gen::inRange(-16445, 16384),
                                       rc::gen::arbitrary<bool>()),
                        [](const std::tuple<std::uint64_t, int, bool>& t) {
                            const auto [mant, exp, neg] = t;
                            const long double m = std::ldexp(static_cast<long double>(mant), -64);
                            const long double v = std::ldexp(m, exp);
                            return neg ? -v : v;
                        });
}

// A JSON tree of depth <= 3 with doubles at every level.
rc::Gen<json::value> any_json(int depth) {
    auto scalar = rc::gen::oneOf(
        rc::gen::map(rc::gen::suchThat(any_double(), [](double d) { return std::isfinite(d); }),
                     [](double d) { return json::value(d); }),
        rc::gen::map(rc::gen::arbitrary<std::int64_t>(), [](std::int64_t i) { return json::value(i); }),
        rc::gen::map(rc::gen::arbitrary<std::uint64_t>(), [](std::uint64_t u) { return json::value(u); }),
        rc::gen::map(rc::gen::arbitrary<std::string>(), [](const std::string& s) { return json::value(s); }),
        rc::gen::map(rc::gen::arbitrary<bool>(), [](bool b) { return json::value(b); }),
        rc::gen::just(json::value(nullptr)));
    if (depth == 0) return scalar;
    auto arr = rc::gen::map(rc::gen::container<std::vector<json::value>>(any_json(depth - 1)),
                            [](const std::vector<json::value>& v) { return json::value(json::array(v.begin(), v.end())); });
    auto obj = rc::gen::map(
        rc::gen::container<std::vector<std::pair<std::string, json::value>>>(
            rc::gen::pair(rc::gen::arbitrary<std::string>(), any_json(depth - 1))),
        [](const std::vector<std::pair<std::string, json::value>>& kvs) {
            json::object o;
            for (const auto& [k, v] : kvs) o[k] = v;
            return json::value(std::move(o));
        });
    return rc::gen::weightedOneOf<json::value>({{4, scalar}, {1, arr}, {1, obj}});
}

// `text` placed at the very end of a readable page followed by an
// inaccessible one: reading one byte past it faults.
class guarded_text {
public:
    explicit guarded_text(std::string_view text) : page_(static_cast<std::size_t>(::sysconf(_SC_PAGESIZE))) {
        REQUIRE(text.size() <= page_);
        void* m = ::mmap(nullptr, 2 * page_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        REQUIRE(m != MAP_FAILED);
        base_ = static_cast<char*>(m);
        REQUIRE(::mprotect(base_ + page_, page_, PROT_NONE) == 0);
        char* start = base_ + page_ - text.size();
        std::memcpy(start, text.data(), text.size());
        view_ = std::string_view(start, text.size());
    }
    ~guarded_text() { ::munmap(base_, 2 * page_); }
    guarded_text(const guarded_text&) = delete;
    guarded_text& operator=(const guarded_text&) = delete;
    std::string_view view() const { return view_; }

private:
    std::size_t page_;
    char* base_ = nullptr;
    std::string_view view_;
};

template <class T>
std::string decode_error(std::string_view text) {
    try {
        (void)oc::codec<T>::decode(text);
    } catch (const oc::invalid_argument& e) {
        return e.what();
    }
    return "decoded";
}

}  // namespace

TEST_CASE("codec<json::value>: doubles survive a round trip bit for bit", "[codec]") {
    // Boost.JSON 1.81's parser rounds some decimal texts to a neighbouring double.
    for (double d : {2.1e29, 1.3927926388013963e-143, 5.409760742964738e+124, -0.0, 4.9406564584124654e-324,
                     std::numeric_limits<double>::max(), 1e21, 100.0, 0.1}) {
        const json::value v(d);
        const auto back = oc::codec<json::value>::decode(oc::codec<json::value>::encode(v));
        INFO(oc::codec<json::value>::encode(v));
        REQUIRE(back.is_double());
        CHECK(same(back.get_double(), d));
    }
}

TEST_CASE("codec<json::value>: infinities round-trip, NaN is refused by name", "[codec]") {
    const json::value v{{"up", std::numeric_limits<double>::infinity()}, {"down", -std::numeric_limits<double>::infinity()}};
    const auto text = oc::codec<json::value>::encode(v);
    INFO(text);
    CHECK(same_json(oc::codec<json::value>::decode(text), v));
    const json::value nan{{"x", std::nan("")}};
    CHECK_THROWS_WITH(oc::codec<json::value>::encode(nan), Catch::Contains("NaN"));
    // Numbers beyond double's range read as infinity / zero, with their sign.
    CHECK(same(oc::codec<json::value>::decode("-1e400").get_double(), -std::numeric_limits<double>::infinity()));
    CHECK(same(oc::codec<json::value>::decode("-1e-400").get_double(), -0.0));
}

TEST_CASE("codec<long double>: decoding never reads past the end of its text", "[codec]") {
    // libstdc++ 12's from_chars(long double) looks for a NUL after "inf"/"nan".
    for (std::string_view s : {"inf", "-inf", "nan", "infinity", "nan(1)", "in", "1.5", "x"}) {
        guarded_text g(s);
        INFO(s);
        const auto via_double = decode_error<double>(s);
        const auto via_long = decode_error<long double>(g.view());
        CHECK((via_double == "decoded") == (via_long == "decoded"));
    }
    guarded_text inf("inf");
    CHECK(std::isinf(oc::codec<long double>::decode(inf.view())));
}

TEST_CASE("codec: trailing or leading garbage is refused the same way by double and long double", "[codec]") {
    for (std::string_view s : {"1 ", " 1", "+1", "1x", "inf ", "nan?", "0x10", "", "1e", "--1"}) {
        INFO(s);
        CHECK_THAT(decode_error<double>(s), Catch::Contains("invalid payload"));
        CHECK_THAT(decode_error<long double>(s), Catch::Contains("invalid payload"));
    }
}

TEST_CASE("codec: every built-in codec round-trips exactly", "[codec][prop]") {
    rc::prop("double", [] {
        const double d = *any_double();
        RC_ASSERT(same(oc::codec<double>::decode(oc::codec<double>::encode(d)), d));
    });
    rc::prop("long double", [] {
        const long double d = *any_long_double();
        RC_ASSERT(same(oc::codec<long double>::decode(oc::codec<long double>::encode(d)), d));
    });
    rc::prop("json value with nested doubles", [] {
        const json::value v = *any_json(3);
        RC_ASSERT(same_json(oc::codec<json::value>::decode(oc::codec<json::value>::encode(v)), v));
    });
    rc::prop("json double", [] {
        const double d = *rc::gen::suchThat(any_double(), [](double x) { return std::isfinite(x); });
        const auto back = oc::codec<json::value>::decode(oc::codec<json::value>::encode(json::value(d)));
        RC_ASSERT(back.is_double());
        RC_ASSERT(same(back.get_double(), d));
    });
    rc::prop("integers at and inside their limits", [] {
        const auto i = *rc::gen::oneOf(rc::gen::arbitrary<std::int64_t>(),
                                       rc::gen::element(std::numeric_limits<std::int64_t>::min(),
                                                        std::numeric_limits<std::int64_t>::max(), std::int64_t{0}));
        const auto u = *rc::gen::oneOf(rc::gen::arbitrary<std::uint64_t>(),
                                       rc::gen::just(std::numeric_limits<std::uint64_t>::max()));
        RC_ASSERT(oc::codec<std::int64_t>::decode(oc::codec<std::int64_t>::encode(i)) == i);
        RC_ASSERT(oc::codec<std::uint64_t>::decode(oc::codec<std::uint64_t>::encode(u)) == u);
        const auto small = *rc::gen::arbitrary<std::int8_t>();
        RC_ASSERT(oc::codec<std::int8_t>::decode(oc::codec<std::int8_t>::encode(small)) == small);
    });
    rc::prop("string and bool", [] {
        const auto s = *rc::gen::arbitrary<std::string>();
        const auto b = *rc::gen::arbitrary<bool>();
        RC_ASSERT(oc::codec<std::string>::decode(oc::codec<std::string>::encode(s)) == s);
        RC_ASSERT(oc::codec<bool>::decode(oc::codec<bool>::encode(b)) == b);
    });
}
