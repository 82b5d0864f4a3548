// The resource types of workflow specs are the coordinator's own
// (orchcore/resources.hpp), named here for workflow code.
#pragma once

#include <orchcore/resources.hpp>

namespace orchcore::workflow {

using orchcore::allocation;
using orchcore::fits;
using orchcore::gpu_device;
using orchcore::gpu_request;
using orchcore::hold_id;
using orchcore::resource_inventory;
using orchcore::resource_request;
using orchcore::worker_resources;

}  // namespace orchcore::workflow
