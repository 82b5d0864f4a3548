#include "result_refs.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <optional>

namespace orchcore::workflow::detail {

namespace {

namespace json = boost::json;

// The field `path` (dot-separated) of the JSON text `result`; empty if the
// result is not JSON or has no such field.
std::optional<std::string> field_of(const std::string& result, std::string_view path) {
    boost::system::error_code ec;
    auto doc = json::parse(result, ec);
    if (ec) return std::nullopt;
    const json::value* v = &doc;
    while (!path.empty()) {
        const auto dot = path.find('.');
        const auto key = path.substr(0, dot);
        if (!v->is_object()) return std::nullopt;
        v = v->get_object().if_contains(key);
        if (!v) return std::nullopt;
        path = dot == std::string_view::npos ? std::string_view{} : path.substr(dot + 1);
    }
    if (v->is_string()) return std::string(v->get_string());
    return json::serialize(*v);
}

std::optional<std::string> value_of(std::string_view inner,
                                    const std::function<const std::string*(std::string_view)>& result_of) {
    const auto dot = inner.find(".result");
    if (dot == std::string_view::npos || dot == 0) return std::nullopt;
    const auto rest = inner.substr(dot + 7);
    if (!rest.empty() && rest.front() != '.') return std::nullopt;
    const auto* r = result_of(inner.substr(0, dot));
    if (!r) return std::nullopt;
    if (rest.empty()) return *r;
    return field_of(*r, rest.substr(1));
}

}  // namespace

std::string substitute_results(std::string_view payload,
                               const std::function<const std::string*(std::string_view)>& result_of) {
    std::string out;
    std::size_t done = 0;
    for (auto open = payload.find("${"); open != std::string_view::npos; open = payload.find("${", done)) {
        const auto close = payload.find('}', open + 2);
        if (close == std::string_view::npos) break;
        out.append(payload.substr(done, open - done));
        const auto v = value_of(payload.substr(open + 2, close - open - 2), result_of);
        out.append(v ? std::string_view(*v) : payload.substr(open, close + 1 - open));
        done = close + 1;
    }
    out.append(payload.substr(done));
    return out;
}

}  // namespace orchcore::workflow::detail
