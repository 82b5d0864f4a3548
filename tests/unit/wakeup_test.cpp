// Wake-ups on the memory backend: the scenarios of
// tests/unit/wakeup_scenarios.hpp with memory_transport.
#include "unit/wakeup_scenarios.hpp"

#include <catch2/catch.hpp>

using namespace orchcore;

namespace {
test::dist_backend mem() { return test::memory_backend(); }
}  // namespace

TEST_CASE("memory/wakeup: wait_for_work is woken by an admission", "[wakeup]") {
    test::scenario_wait_for_work_woken_by_admission(mem);
}
TEST_CASE("memory/wakeup: one task wakes at least one of two waiters", "[wakeup]") {
    test::scenario_wake_not_lost_between_two_waiters(mem);
}
TEST_CASE("memory/wakeup: interrupt_waits ends a wait", "[wakeup]") { test::scenario_interrupt_ends_wait(mem); }
TEST_CASE("memory/wakeup: a delayed task wakes a waiter when due", "[wakeup]") {
    test::scenario_delayed_task_wakes_waiter(mem);
}
TEST_CASE("memory/wakeup: a delay set during a wait wakes the waiter", "[wakeup]") {
    test::scenario_delay_during_wait_wakes_waiter(mem);
}
TEST_CASE("memory/wakeup: finish notifications reach watchers until unwatched", "[wakeup]") {
    test::scenario_finish_notifications(mem);
}
TEST_CASE("memory/wakeup: an idle worker node runs tasks submitted on a producer node", "[wakeup][distributed]") {
    test::scenario_idle_worker_node_runs_task(mem);
}
TEST_CASE("memory/wakeup: two idle worker nodes lose no wake", "[wakeup][distributed]") {
    test::scenario_two_idle_worker_nodes(mem);
}
TEST_CASE("memory/wakeup: stop of an idle node returns", "[wakeup][distributed]") {
    test::scenario_idle_node_stops(mem);
}
TEST_CASE("memory/wakeup: a delayed retry on an idle node runs", "[wakeup][distributed]") {
    test::scenario_delayed_retry_on_idle_node(mem);
}
