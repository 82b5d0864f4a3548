// The placement table is the coordinator's own (orchcore/placement.hpp),
// named here for workflow code.
#pragma once

#include <orchcore/placement.hpp>
#include <orchcore/workflow/resources.hpp>

namespace orchcore::workflow {

using orchcore::placement;
using orchcore::placement_table;

}  // namespace orchcore::workflow
