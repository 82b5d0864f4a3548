#include <orchcore/workflow/json.hpp>

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace orchcore::workflow {

namespace {

namespace json = boost::json;

json::array strings(const std::vector<std::string>& v) {
    json::array a;
    for (const auto& s : v) a.emplace_back(s);
    return a;
}

json::object resources_json(const resource_request& r) {
    json::object o;
    if (r.cpu_millis != 0) o["cpu"] = static_cast<double>(r.cpu_millis) / 1000.0;
    if (r.memory_mb != 0) o["memory_mb"] = r.memory_mb;
    if (r.gpu.count != 0 || !r.gpu.type.empty() || r.gpu.memory_mb != 0) {
        o["gpu"] = json::object{{"count", r.gpu.count}, {"type", r.gpu.type}, {"memory_mb", r.gpu.memory_mb}};
    }
    if (!r.labels.empty()) o["labels"] = strings(r.labels);
    return o;
}

json::object task_json(const task_spec& t) {
    json::object o{{"name", t.name}, {"type", t.type}, {"payload", t.payload}};
    if (!t.depends_on.empty()) o["depends_on"] = strings(t.depends_on);
    if (t.options.retries) o["retries"] = *t.options.retries;
    if (t.options.timeout.count() != 0) o["timeout_ms"] = t.options.timeout.count();
    if (t.options.turn_timeout.count() != 0) o["turn_timeout_ms"] = t.options.turn_timeout.count();
    o["priority"] = t.options.priority;
    if (!t.options.tags.empty()) o["tags"] = strings(t.options.tags);
    if (!t.options.session.empty()) o["session"] = t.options.session;
    if (!(t.resources == resource_request{})) o["resources"] = resources_json(t.resources);
    if (t.shards) {
        json::object shards{{"count", t.shards->count}, {"aggregator", t.shards->aggregator_type}};
        if (t.shards->rounds != 1) shards["rounds"] = t.shards->rounds;
        o["shards"] = std::move(shards);
    }
    return o;
}

json::array tasks_json(const std::vector<task_spec>& tasks) {
    json::array a;
    for (const auto& t : tasks) a.emplace_back(task_json(t));
    return a;
}

}  // namespace

std::string to_workflow_json(const workflow_spec& spec) {
    json::object doc{{"name", spec.name}, {"tasks", tasks_json(spec.tasks)}, {"stages", tasks_json(spec.stages)}};
    return json::serialize(doc);
}

}  // namespace orchcore::workflow
