// Workflow specs from JSON text (Boost.JSON).
//
// {
//   "name": "train",
//   "tasks":  [ { "name": "prep", "type": "shell", "payload": "make data" } ],
//   "stages": [ { "name": "fit", "type": "train", "payload": {"lr": 0.1},
//                 "depends_on": ["prep"], "retries": 2, "timeout_ms": 60000,
//                 "turn_timeout_ms": 10000, "priority": 10, "tags": ["gpu"],
//                 "resources": { "cpu": 4, "memory_mb": 16384,
//                                "gpu": { "count": 1, "type": "a100", "memory_mb": 40000 },
//                                "labels": ["zone=eu"] },
//                 "shards": { "count": 8, "aggregator": "merge" } } ]
// }
//
// "payload" is a string (kept as is) or any JSON value (kept as its JSON
// text). "cpu" is in cores and may be fractional (kept in millicores).
// Unknown fields are refused.
#pragma once

#include <orchcore/workflow/spec.hpp>

#include <string>
#include <string_view>

namespace orchcore::workflow {

/// Parses and validates (expand()) a spec. Throws spec_error whose message
/// starts with the path of the offending field, e.g.
/// `tasks[3].resources.gpu.count: expected an integer (got "two")`.
workflow_spec parse_workflow_json(std::string_view text, const spec_limits& limits = {});

/// The spec as JSON text in the schema above: parse_workflow_json() of it
/// gives back an equal spec (payloads are written as strings).
std::string to_workflow_json(const workflow_spec& spec);

}  // namespace orchcore::workflow
