// The workflow building blocks: specs and their validation (spec.hpp), JSON
// specs (json.hpp), the graph state of a run (state.hpp), resources and
// placement (resources.hpp, placement.hpp), artifacts (artifact_store.hpp).
// See docs/workflows.md.
#pragma once

#include <orchcore/workflow/artifact_store.hpp>
#include <orchcore/workflow/json.hpp>
#include <orchcore/workflow/placement.hpp>
#include <orchcore/workflow/resources.hpp>
#include <orchcore/workflow/spec.hpp>
#include <orchcore/workflow/state.hpp>
