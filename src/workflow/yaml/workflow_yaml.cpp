// parse_workflow_yaml: YAML is read into the JSON value it denotes, which
// parse_workflow_json then checks, so both front ends share one schema and
// one set of error paths.
#include <orchcore/workflow/json.hpp>
#include <orchcore/workflow/yaml.hpp>

#include "../spec_path.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <regex>
#include <string>

namespace orchcore::workflow {

namespace {

namespace json = boost::json;

// parse_workflow_json reads at most this depth (Boost.JSON's default).
constexpr int max_depth = 32;

template <class T>
bool parse_number(const std::string& s, T& out) {
    const auto* end = s.data() + s.size();
    const auto* begin = s.data() + (!s.empty() && s.front() == '+' ? 1 : 0);
    const auto [ptr, ec] = std::from_chars(begin, end, out);
    return ec == std::errc() && ptr == end;
}

json::value plain_scalar(const std::string& s) {
    if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
    static const std::regex integer("[-+]?[0-9]+");
    static const std::regex decimal(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
    if (std::regex_match(s, integer)) {
        std::int64_t i = 0;
        if (parse_number(s, i)) return i;
        std::uint64_t u = 0;
        if (parse_number(s, u)) return u;
    }
    double d = 0;
    if (std::regex_match(s, decimal) && parse_number(s, d)) return d;
    return json::string(s);
}

/// How many nodes the document may still expand to. Aliases repeat what
/// they name, so a few hundred bytes of nested aliases would otherwise
/// expand to billions of nodes; a document without aliases has fewer nodes
/// than bytes.
struct node_budget {
    std::size_t left;
    explicit node_budget(std::size_t text_size) : left(std::max<std::size_t>(text_size, 100'000)) {}
    void take(const std::string& path) {
        if (left-- == 0) throw spec_error(path.empty() ? "(document)" : path, "", "the document expands to too many nodes (aliases)");
    }
};

json::value to_json(const YAML::Node& node, const std::string& path, int depth, node_budget& budget);

json::object to_object(const YAML::Node& node, const std::string& path, int depth, node_budget& budget) {
    json::object out;
    for (const auto& kv : node) {
        if (!kv.first.IsScalar()) {
            throw spec_error(path.empty() ? "(document)" : path, "", "a mapping key is not a string");
        }
        const auto& key = kv.first.Scalar();
        out[key] = to_json(kv.second, detail::member_path(path, key), depth + 1, budget);
    }
    return out;
}

json::value to_json(const YAML::Node& node, const std::string& path, int depth, node_budget& budget) {
    if (depth >= max_depth && (node.IsMap() || node.IsSequence())) {
        throw spec_error(path, "", "nested deeper than " + std::to_string(max_depth) + " levels");
    }
    budget.take(path);
    switch (node.Type()) {
        case YAML::NodeType::Scalar:
            // The "!" tag marks a quoted (non-plain) scalar: always a string.
            return node.Tag() == "!" ? json::value(json::string(node.Scalar())) : plain_scalar(node.Scalar());
        case YAML::NodeType::Sequence: {
            json::array out;
            for (std::size_t i = 0; i < node.size(); ++i) {
                out.push_back(to_json(node[i], path + "[" + std::to_string(i) + "]", depth + 1, budget));
            }
            return out;
        }
        case YAML::NodeType::Map: return to_object(node, path, depth, budget);
        default: return nullptr;
    }
}

}  // namespace

workflow_spec parse_workflow_yaml(std::string_view text, const spec_limits& limits) {
    YAML::Node doc;
    try {
        doc = YAML::Load(std::string(text));
    } catch (const YAML::Exception& e) {
        throw spec_error("(document)", "",
                         "not valid YAML: line " + std::to_string(e.mark.line + 1) + ", column " +
                             std::to_string(e.mark.column + 1) + ": " + e.msg);
    }
    node_budget budget(text.size());
    return parse_workflow_json(json::serialize(to_json(doc, "", 0, budget)), limits);
}

}  // namespace orchcore::workflow
