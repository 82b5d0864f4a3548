// Failure scenarios of distributed mode (tests/unit/failure_scenarios.hpp)
// over the in-memory backend (memory_transport + memory_task_store +
// memory_worker_registry). The same scenarios run over Redis in
// tests/redis/failure_test.cpp.
#include "unit/failure_scenarios.hpp"

#include <catch2/catch.hpp>

namespace oc = orchcore;

TEST_CASE("coordinator/distributed/failure: every store and transport call fails for 2 s mid-run; afterwards "
          "every task completes exactly once",
          "[coordinator][distributed][failure]") {
    oc::test::scenario_backend_outage_window(oc::test::memory_backend);
}

TEST_CASE("coordinator/distributed/failure: graceful stop drains running tasks that finish before the deadline",
          "[coordinator][distributed][failure][stop]") {
    oc::test::scenario_graceful_stop_drains(oc::test::memory_backend);
}

TEST_CASE("coordinator/distributed/failure: graceful stop past its deadline hands running tasks back; another node "
          "completes each once",
          "[coordinator][distributed][failure][stop]") {
    oc::test::scenario_graceful_stop_hands_back(oc::test::memory_backend);
}

TEST_CASE("coordinator/distributed/failure: two recoverers racing on a hung node's orphans requeue each exactly once",
          "[coordinator][distributed][failure][recovery]") {
    oc::test::scenario_racing_recoverers(oc::test::memory_backend);
}

TEST_CASE("coordinator/distributed/failure: a submission that failed half-way, submitted again, is accepted and "
          "runs once",
          "[coordinator][distributed][failure][submit]") {
    oc::test::scenario_resubmit_after_half_done_submission(oc::test::memory_backend);
}
