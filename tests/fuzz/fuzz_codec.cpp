// Every built-in orchcore::codec on arbitrary bytes. The first byte picks
// the codec, the rest is the text. Decoding either fails with
// orchcore::invalid_argument or succeeds; then encoding the value and
// decoding that again must give the same value (bit for bit for floating
// point, NaN matching NaN).
#include <orchcore/codec.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <string>
#include <string_view>

namespace {

template <class T>
bool same(const T& a, const T& b) {
    if constexpr (std::is_floating_point_v<T>) {
        if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
        return a == b && std::signbit(a) == std::signbit(b);
    } else {
        return a == b;
    }
}

bool same(const boost::json::value& a, const boost::json::value& b);

bool same_array(const boost::json::array& x, const boost::json::array& y) {
    if (x.size() != y.size()) return false;
    for (std::size_t i = 0; i < x.size(); ++i)
        if (!same(x[i], y[i])) return false;
    return true;
}

bool same_object(const boost::json::object& x, const boost::json::object& y) {
    if (x.size() != y.size()) return false;
    for (const auto& kv : x) {
        const auto* w = y.if_contains(kv.key());
        if (!w || !same(kv.value(), *w)) return false;
    }
    return true;
}

// Doubles bit for bit; integers by value (JSON text has no signedness).
bool same(const boost::json::value& a, const boost::json::value& b) {
    if (a.is_double() || b.is_double()) return a.is_double() && b.is_double() && same(a.get_double(), b.get_double());
    if (a.is_array() || b.is_array()) return a.is_array() && b.is_array() && same_array(a.get_array(), b.get_array());
    if (a.is_object() || b.is_object())
        return a.is_object() && b.is_object() && same_object(a.get_object(), b.get_object());
    return a == b;
}

template <class T>
void round_trip(std::string_view text) {
    T v;
    try {
        v = orchcore::codec<T>::decode(text);
    } catch (const orchcore::invalid_argument&) {
        return;  // refused, by name
    }
    const std::string encoded = orchcore::codec<T>::encode(v);
    const T back = orchcore::codec<T>::decode(encoded);
    if (!same(v, back)) {
        std::fprintf(stderr, "codec round trip changed the value: input \"%.*s\", encoded \"%s\"\n",
                     static_cast<int>(text.size()), text.data(), encoded.c_str());
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
    switch (data[0] % 12) {
        case 0: round_trip<std::string>(text); break;
        case 1: round_trip<boost::json::value>(text); break;
        case 2: round_trip<bool>(text); break;
        case 3: round_trip<int>(text); break;
        case 4: round_trip<std::int64_t>(text); break;
        case 5: round_trip<std::uint64_t>(text); break;
        case 6: round_trip<std::int8_t>(text); break;
        case 7: round_trip<std::uint16_t>(text); break;
        case 8: round_trip<double>(text); break;
        case 9: round_trip<float>(text); break;
        case 10: round_trip<long double>(text); break;
        default: round_trip<unsigned>(text); break;
    }
    return 0;
}
