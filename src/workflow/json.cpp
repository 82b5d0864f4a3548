#include <orchcore/workflow/json.hpp>

#include "spec_path.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>

namespace orchcore::workflow {

namespace {

namespace json = boost::json;

std::string describe(const json::value& v) {
    auto text = json::serialize(v);
    if (text.size() > 64) text = text.substr(0, 61) + "...";
    return text;
}

std::string member(const std::string& path, std::string_view key) { return detail::member_path(path, key); }

std::string element(const std::string& path, std::size_t i) { return path + "[" + std::to_string(i) + "]"; }

const json::object& as_object(const json::value& v, const std::string& path,
                              std::initializer_list<std::string_view> allowed) {
    if (!v.is_object()) throw spec_error(path.empty() ? "(document)" : path, describe(v), "expected an object");
    for (const auto& kv : v.get_object()) {
        if (std::find(allowed.begin(), allowed.end(), kv.key()) == allowed.end()) {
            throw spec_error(member(path, kv.key()), describe(kv.value()), "unknown field");
        }
    }
    return v.get_object();
}

const json::array& as_array(const json::value& v, const std::string& path) {
    if (!v.is_array()) throw spec_error(path, describe(v), "expected an array");
    return v.get_array();
}

std::string as_string(const json::value& v, const std::string& path) {
    if (!v.is_string()) throw spec_error(path, describe(v), "expected a string");
    return std::string(v.get_string());
}

std::uint64_t as_uint(const json::value& v, const std::string& path, std::uint64_t max) {
    std::uint64_t out = 0;
    if (v.is_uint64()) out = v.get_uint64();
    else if (v.is_int64() && v.get_int64() >= 0) out = static_cast<std::uint64_t>(v.get_int64());
    else throw spec_error(path, describe(v), v.is_int64() ? "expected a non-negative integer" : "expected an integer");
    if (out > max) throw spec_error(path, describe(v), "expected an integer at most " + std::to_string(max));
    return out;
}

int as_int(const json::value& v, const std::string& path) {
    if (!v.is_int64() && !v.is_uint64()) throw spec_error(path, describe(v), "expected an integer");
    const auto n = v.is_int64() ? v.get_int64() : static_cast<std::int64_t>(std::min<std::uint64_t>(v.get_uint64(), INT64_MAX));
    if (n < std::numeric_limits<int>::min() || n > std::numeric_limits<int>::max()) {
        throw spec_error(path, describe(v), "expected an integer in the range of int");
    }
    return static_cast<int>(n);
}

std::vector<std::string> as_strings(const json::value& v, const std::string& path) {
    std::vector<std::string> out;
    const auto& a = as_array(v, path);
    for (std::size_t i = 0; i < a.size(); ++i) out.push_back(as_string(a[i], element(path, i)));
    return out;
}

std::uint64_t as_cpu_millis(const json::value& v, const std::string& path) {
    constexpr double max_cores = 1e12;
    if (!v.is_number()) throw spec_error(path, describe(v), "expected a number of cores");
    const double cores = v.to_number<double>();
    if (!(cores >= 0 && cores <= max_cores)) throw spec_error(path, describe(v), "expected cores in [0, 1e12]");
    return static_cast<std::uint64_t>(std::llround(cores * 1000));
}

gpu_request parse_gpu(const json::value& v, const std::string& path) {
    gpu_request gpu;
    for (const auto& kv : as_object(v, path, {"count", "type", "memory_mb"})) {
        const auto p = member(path, kv.key());
        if (kv.key() == "count") gpu.count = static_cast<std::uint32_t>(as_uint(kv.value(), p, UINT32_MAX));
        else if (kv.key() == "type") gpu.type = as_string(kv.value(), p);
        else gpu.memory_mb = as_uint(kv.value(), p, UINT64_MAX);
    }
    return gpu;
}

resource_request parse_resources(const json::value& v, const std::string& path) {
    resource_request r;
    for (const auto& kv : as_object(v, path, {"cpu", "memory_mb", "gpu", "labels"})) {
        const auto p = member(path, kv.key());
        if (kv.key() == "cpu") r.cpu_millis = as_cpu_millis(kv.value(), p);
        else if (kv.key() == "memory_mb") r.memory_mb = as_uint(kv.value(), p, UINT64_MAX);
        else if (kv.key() == "gpu") r.gpu = parse_gpu(kv.value(), p);
        else r.labels = as_strings(kv.value(), p);
    }
    return r;
}

shard_spec parse_shards(const json::value& v, const std::string& path) {
    const auto& o = as_object(v, path, {"count", "aggregator", "rounds"});
    if (!o.contains("count")) throw spec_error(member(path, "count"), "", "missing");
    if (!o.contains("aggregator")) throw spec_error(member(path, "aggregator"), "", "missing");
    shard_spec s;
    s.count = static_cast<std::uint32_t>(as_uint(o.at("count"), member(path, "count"), UINT32_MAX));
    s.aggregator_type = as_string(o.at("aggregator"), member(path, "aggregator"));
    if (const auto* rounds = o.if_contains("rounds")) {
        s.rounds = static_cast<std::uint32_t>(as_uint(*rounds, member(path, "rounds"), UINT32_MAX));
    }
    return s;
}

std::chrono::milliseconds as_millis(const json::value& v, const std::string& path) {
    return std::chrono::milliseconds(static_cast<std::int64_t>(as_uint(v, path, INT64_MAX)));
}

void parse_task_field(task_spec& t, std::string_view key, const json::value& v, const std::string& p) {
    if (key == "name") t.name = as_string(v, p);
    else if (key == "type") t.type = as_string(v, p);
    else if (key == "payload") t.payload = v.is_string() ? std::string(v.get_string()) : json::serialize(v);
    else if (key == "depends_on") t.depends_on = as_strings(v, p);
    else if (key == "retries") t.options.retries = static_cast<std::uint32_t>(as_uint(v, p, UINT32_MAX));
    else if (key == "timeout_ms") t.options.timeout = as_millis(v, p);
    else if (key == "turn_timeout_ms") t.options.turn_timeout = as_millis(v, p);
    else if (key == "priority") t.options.priority = as_int(v, p);
    else if (key == "tags") t.options.tags = as_strings(v, p);
    else if (key == "session") t.options.session = as_string(v, p);
    else if (key == "resources") t.resources = parse_resources(v, p);
    else t.shards = parse_shards(v, p);
}

task_spec parse_task(const json::value& v, const std::string& path) {
    const auto& o = as_object(v, path, {"name", "type", "payload", "depends_on", "retries", "timeout_ms",
                                        "turn_timeout_ms", "priority", "tags", "session", "resources", "shards"});
    task_spec t;
    for (const auto& kv : o) parse_task_field(t, kv.key(), kv.value(), member(path, kv.key()));
    return t;
}

std::vector<task_spec> parse_tasks(const json::value& v, const std::string& path) {
    std::vector<task_spec> out;
    const auto& a = as_array(v, path);
    for (std::size_t i = 0; i < a.size(); ++i) out.push_back(parse_task(a[i], element(path, i)));
    return out;
}

}  // namespace

workflow_spec parse_workflow_json(std::string_view text, const spec_limits& limits) {
    boost::system::error_code ec;
    const auto doc = json::parse(text, ec);
    if (ec) throw spec_error("(document)", "", "not valid JSON: " + ec.message());
    workflow_spec spec;
    for (const auto& kv : as_object(doc, "", {"name", "tasks", "stages"})) {
        const auto p = std::string(kv.key());
        if (kv.key() == "name") spec.name = as_string(kv.value(), p);
        else if (kv.key() == "tasks") spec.tasks = parse_tasks(kv.value(), p);
        else spec.stages = parse_tasks(kv.value(), p);
    }
    (void)expand(spec, limits);
    return spec;
}

}  // namespace orchcore::workflow
