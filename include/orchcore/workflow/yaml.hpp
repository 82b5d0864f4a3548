// Workflow specs from YAML: the component orchcore::yaml (built with
// ORCHCORE_WITH_YAML=ON; needs yaml-cpp). The schema, the validation and the
// error paths are those of parse_workflow_json (json.hpp).
#pragma once

#include <orchcore/workflow/spec.hpp>

#include <string_view>

namespace orchcore::workflow {

/// Parses and validates a spec written in YAML. Quoted scalars are strings;
/// plain scalars are read as in JSON when they look like a number, a boolean
/// or null (`~`, `null`, empty), and as strings otherwise. Throws spec_error
/// whose message starts with the path of the offending field, e.g.
/// `tasks[3].resources.gpu.count: expected an integer (got "two")`.
workflow_spec parse_workflow_yaml(std::string_view text, const spec_limits& limits = {});

}  // namespace orchcore::workflow
