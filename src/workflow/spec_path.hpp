// The path of a field in a workflow spec document, as refusals name it:
// `tasks[3].resources.gpu.count`. A key that is not a plain name (empty,
// or with characters other than letters, digits, '_' and '-') is written
// quoted, as JSON writes it: `tasks[0][""]`, `["a.b"]`.
#pragma once

#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

#include <algorithm>
#include <string>
#include <string_view>

namespace orchcore::workflow::detail {

inline bool plain_key(std::string_view key) {
    return !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
}

inline std::string member_path(const std::string& path, std::string_view key) {
    std::string out = path;
    if (plain_key(key)) {
        if (!out.empty()) out.push_back('.');
        out.append(key);
        return out;
    }
    constexpr std::size_t shown = 64;
    auto quoted = boost::json::serialize(boost::json::string(key.substr(0, shown)));
    if (key.size() > shown) quoted.insert(quoted.size() - 1, "...");
    return out.append("[").append(quoted).append("]");
}

}  // namespace orchcore::workflow::detail
