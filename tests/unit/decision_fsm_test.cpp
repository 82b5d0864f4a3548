// Pure decision machines used by the execution engine: task status
// transitions, retry backoff, autoscaler. The coordinator's own machines
// have their tests beside: attempt_outcome_test.cpp, lease_round_test.cpp.
#include <orchcore/autoscaler.hpp>
#include <orchcore/backoff.hpp>
#include <orchcore/task_status.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <set>
#include <string>
#include <vector>

using namespace orchcore;
using namespace std::chrono_literals;

namespace {
const std::vector<task_status> all_statuses{task_status::pending,   task_status::queued, task_status::running,
                                            task_status::completed, task_status::failed, task_status::cancelled,
                                            task_status::timed_out};
}

TEST_CASE("task status: only the documented transitions are legal", "[task_status]") {
    const std::set<std::pair<task_status, task_status>> legal{
        {task_status::pending, task_status::queued},     {task_status::pending, task_status::cancelled},
        {task_status::queued, task_status::running},     {task_status::queued, task_status::cancelled},
        {task_status::queued, task_status::timed_out},   {task_status::queued, task_status::failed},
        {task_status::running, task_status::completed},  {task_status::running, task_status::failed},
        {task_status::running, task_status::cancelled},  {task_status::running, task_status::timed_out},
        {task_status::running, task_status::queued},
    };
    for (auto from : all_statuses) {
        for (auto to : all_statuses) {
            INFO(to_string(from) << " -> " << to_string(to));
            const bool expected = legal.count({from, to}) == 1;
            CHECK(is_legal_transition(from, to) == expected);
            if (expected) {
                CHECK_NOTHROW(check_transition(from, to));
            } else {
                try {
                    check_transition(from, to);
                    FAIL("illegal transition accepted");
                } catch (const error& e) {
                    CHECK(e.code() == errc::illegal_transition);
                    CHECK(std::string(e.what()).find(std::string(to_string(from))) != std::string::npos);
                }
            }
        }
    }
}

TEST_CASE("task status: terminal states have no way out and names round-trip", "[task_status]") {
    for (auto s : all_statuses) {
        CHECK(try_parse_task_status(to_string(s)) == s);
        if (is_terminal(s))
            for (auto to : all_statuses) CHECK_FALSE(is_legal_transition(s, to));
    }
    CHECK_FALSE(try_parse_task_status("done").has_value());
}

TEST_CASE("backoff: exponential ceiling, capped, with full jitter inside it", "[backoff]") {
    backoff_policy b{.base = 100ms, .cap = 1'000ms, .jitter = true};
    CHECK(b.ceiling(0) == 0ms);
    CHECK(b.ceiling(1) == 100ms);
    CHECK(b.ceiling(2) == 200ms);
    CHECK(b.ceiling(4) == 800ms);
    CHECK(b.ceiling(5) == 1'000ms);
    CHECK(b.ceiling(1'000) == 1'000ms);  // no overflow for huge attempt numbers
    CHECK(b.delay(3, 0.0) == 0ms);
    CHECK(b.delay(3, 0.5) == 200ms);
    CHECK(b.delay(3, 0.999) <= b.ceiling(3));
    b.jitter = false;
    CHECK(b.delay(3, 0.1) == 400ms);
}

TEST_CASE("backoff: invalid settings name the field", "[backoff]") {
    backoff_policy b{.base = 500ms, .cap = 100ms};
    CHECK_THROWS_WITH(b.validate(), Catch::Contains("backoff.cap") && Catch::Contains("100ms"));
    backoff_policy neg{.base = -1ms};
    CHECK_THROWS_AS(neg.validate(), orchcore::invalid_argument);
}

TEST_CASE("autoscaler: scales up only after consecutive high samples, then waits out the cooldown", "[autoscaler]") {
    autoscaler a{{.min_workers = 1, .max_workers = 4, .scale_up_depth = 10, .scale_down_depth = 2, .up_after = 2,
                  .down_after = 3, .step = 1, .cooldown = 1s}};
    const autoscaler::clock::time_point t0{};
    CHECK_FALSE(a.evaluate(50, 1, t0).has_value());              // one high sample is not enough
    auto d = a.evaluate(50, 1, t0 + 100ms);
    REQUIRE(d.has_value());
    CHECK(d->from == 1);
    CHECK(d->to == 2);
    CHECK(d->reason == "queue depth high");
    CHECK_FALSE(a.evaluate(50, 2, t0 + 200ms).has_value());      // cooldown
    CHECK_FALSE(a.evaluate(50, 2, t0 + 900ms).has_value());
    auto d2 = a.evaluate(50, 2, t0 + 1'200ms);                   // streak kept counting during cooldown
    REQUIRE(d2.has_value());
    CHECK(d2->to == 3);
}

TEST_CASE("autoscaler: no flapping inside the hysteresis band", "[autoscaler]") {
    autoscaler a{{.min_workers = 1, .max_workers = 4, .scale_up_depth = 10, .scale_down_depth = 2, .up_after = 1,
                  .down_after = 1, .cooldown = 0ms}};
    const autoscaler::clock::time_point t0{};
    for (int i = 0; i < 100; ++i) {
        // depth oscillates between 2 and 10, both inside [down, up]
        CHECK_FALSE(a.evaluate(i % 2 ? 2 : 10, 2, t0 + std::chrono::milliseconds(i)).has_value());
    }
}

TEST_CASE("autoscaler: scales down after sustained low depth, never below min", "[autoscaler]") {
    autoscaler a{{.min_workers = 2, .max_workers = 8, .scale_up_depth = 10, .scale_down_depth = 2, .up_after = 1,
                  .down_after = 2, .step = 4, .cooldown = 0ms}};
    const autoscaler::clock::time_point t0{};
    CHECK_FALSE(a.evaluate(0, 5, t0).has_value());
    auto d = a.evaluate(0, 5, t0 + 1ms);
    REQUIRE(d.has_value());
    CHECK(d->to == 2);  // step 4 clamped at min_workers
    CHECK_FALSE(a.evaluate(0, 2, t0 + 2ms).has_value());
    CHECK_FALSE(a.evaluate(0, 2, t0 + 3ms).has_value());
}

TEST_CASE("autoscaler: below min (dead worker) is replaced at once, ignoring cooldown", "[autoscaler]") {
    autoscaler a{{.min_workers = 3, .max_workers = 5, .scale_up_depth = 10, .scale_down_depth = 2, .cooldown = 1h}};
    const autoscaler::clock::time_point t0{};
    auto d = a.evaluate(0, 1, t0);
    REQUIRE(d.has_value());
    CHECK(d->to == 3);
    CHECK(d->reason == "below min_workers");
    auto again = a.evaluate(0, 2, t0 + 1ms);
    REQUIRE(again.has_value());
    CHECK(again->to == 3);
}

TEST_CASE("autoscaler: options are validated with the field named", "[autoscaler]") {
    CHECK_THROWS_WITH(autoscaler(autoscale_options{.min_workers = 5, .max_workers = 2}),
                      Catch::Contains("autoscale.min_workers") && Catch::Contains("5"));
    CHECK_THROWS_WITH(autoscaler(autoscale_options{.scale_up_depth = 4, .scale_down_depth = 4}),
                      Catch::Contains("autoscale.scale_down_depth"));
    CHECK_THROWS_AS(autoscaler(autoscale_options{.step = 0}), orchcore::invalid_argument);
}
