// Workflows in distributed mode on the memory backend.
#include "unit/workflow_scenarios.hpp"

TEST_CASE("workflow/distributed: another node carries a workflow on after its node stopped",
          "[workflow][runner][distributed]") {
    orchcore::test::scenario_workflow_carried_on(orchcore::test::memory_backend);
}

TEST_CASE("workflow/distributed: a node that takes a workflow over carries on its latest shard round",
          "[workflow][runner][distributed][rounds]") {
    orchcore::test::scenario_workflow_rounds_carried_on(orchcore::test::memory_backend);
}
