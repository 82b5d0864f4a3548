// The attempt outcome state machine (src/coordinator/attempt_outcome.hpp):
// what becomes of a task when its attempt returns, is judged by the tick,
// or loses its worker or lease. Both engines carry these decisions out.
#include "../../src/coordinator/attempt_outcome.hpp"

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include <chrono>
#include <string>

using namespace std::chrono_literals;
namespace od = orchcore::detail;
namespace ao = orchcore::detail::attempt_outcome;
using tp = std::chrono::steady_clock::time_point;
using facts = od::attempt_facts<tp>;

namespace {
const tp t0{std::chrono::hours(1)};

facts with_retries(std::uint32_t retries, std::uint32_t max) {
    facts f;
    f.retries = retries;
    f.max_retries = max;
    f.backoff = orchcore::backoff_policy{.base = 100ms, .cap = 1s};
    return f;
}

od::attempt_report failed(bool retryable = true) { return {false, retryable, false, 0ms}; }
}  // namespace

TEST_CASE("attempt outcome: a return completes, continues, retries or fails", "[attempt_outcome]") {
    const auto f = with_retries(0, 2);
    CHECK(ao::returned(f, {true, true, false, 0ms}, t0, 0.5).v == od::verdict::complete);

    const auto cont = ao::returned(f, {true, true, true, 250ms}, t0, 0.5);
    CHECK(cont.v == od::verdict::continue_later);
    CHECK(cont.delay == 250ms);

    const auto retry = ao::returned(f, failed(), t0, 0.999);
    CHECK(retry.v == od::verdict::retry);
    CHECK(retry.delay == f.backoff.delay(1, 0.999));  // the first retry's backoff
    CHECK(retry.delay > 0ms);

    CHECK(ao::returned(with_retries(2, 2), failed(), t0, 0.5).v == od::verdict::fail);  // retries used up
    CHECK(ao::returned(f, failed(false), t0, 0.5).v == od::verdict::fail);             // non-retryable
}

TEST_CASE("attempt outcome: past the task's deadline a failure is final", "[attempt_outcome]") {
    auto f = with_retries(0, 5);
    f.deadline = t0;
    CHECK(ao::returned(f, failed(), t0, 0.5).v == od::verdict::fail);
    CHECK(ao::returned(f, failed(), t0 - 1ms, 0.5).v == od::verdict::retry);
    // A success past the deadline still completes: the result is there.
    CHECK(ao::returned(f, {true, true, false, 0ms}, t0 + 1s, 0.5).v == od::verdict::complete);
}

TEST_CASE("attempt outcome: a cancel request wins over whatever the handler returned", "[attempt_outcome]") {
    auto f = with_retries(0, 3);
    f.cancel_requested = true;
    for (const auto& r : {od::attempt_report{true, true, false, 0ms}, od::attempt_report{true, true, true, 5ms},
                          failed(), failed(false)}) {
        const auto d = ao::returned(f, r, t0, 0.5);
        CHECK(d.v == od::verdict::cancel);
        CHECK(d.reason == "cancelled");
    }
}

TEST_CASE("attempt outcome: the tick cancels after the grace, times out, or retries a turn", "[attempt_outcome]") {
    auto f = with_retries(0, 1);
    CHECK(ao::judged(f, t0, 0.5).v == od::verdict::keep_running);

    f.cancel_requested = true;
    f.cancel_deadline = t0 + 1s;
    CHECK(ao::judged(f, t0, 0.5).v == od::verdict::keep_running);  // still within cancel_grace
    CHECK(ao::judged(f, t0 + 1s, 0.5).v == od::verdict::cancel);
    CHECK(ao::judged(f, t0 + 1s, 0.5).reason == "cancelled (handler did not stop within cancel_grace)");

    f.cancel_requested = false;
    f.deadline = t0 + 2s;
    f.turn_deadline = t0 + 1s;
    const auto turn = ao::judged(f, t0 + 1s, 0.5);
    CHECK(turn.v == od::verdict::retry);
    CHECK(turn.reason == "turn timeout");
    CHECK(ao::judged(with_retries(1, 1), t0, 0.5).v == od::verdict::keep_running);
    auto used_up = with_retries(1, 1);
    used_up.turn_deadline = t0;
    CHECK(ao::judged(used_up, t0, 0.5).v == od::verdict::time_out);
    CHECK(ao::judged(used_up, t0, 0.5).reason == "turn timeout");
    const auto whole = ao::judged(f, t0 + 2s, 0.5);  // the task's deadline comes before the turn's
    CHECK(whole.v == od::verdict::time_out);
    CHECK(whole.reason == "task timeout");
}

TEST_CASE("attempt outcome: a lost worker requeues (or cancels); a poison task is dead-lettered",
          "[attempt_outcome]") {
    auto f = with_retries(3, 3);
    CHECK(ao::worker_lost(f).v == od::verdict::requeue);  // no retry taken: the worker failed, not the task
    f.cancel_requested = true;
    CHECK(ao::worker_lost(f).v == od::verdict::cancel);
    CHECK(ao::lease_expired(false).v == od::verdict::requeue);
    CHECK(ao::lease_expired(true).v == od::verdict::dead_letter);
}

// Model: a task runs attempt after attempt, each returning at a random time
// with a random outcome, until a decision ends it. Whatever the script, the
// task never takes more than max_retries retries, never retries past its
// deadline, always ends, and ends the way the last return said.
TEST_CASE("attempt outcome: a task's life under random returns respects its retry budget",
          "[attempt_outcome][prop]") {
    rc::prop("retries stay within max_retries and past the deadline nothing is retried", [] {
        const auto max_retries = *rc::gen::inRange<std::uint32_t>(0, 6);
        const auto has_deadline = *rc::gen::arbitrary<bool>();
        const auto deadline_ms = *rc::gen::inRange(0, 2000);
        facts f = with_retries(0, max_retries);
        if (has_deadline) f.deadline = t0 + std::chrono::milliseconds(deadline_ms);
        auto now = t0;
        std::uint32_t turns = 0;
        for (int step = 0; step < 100; ++step) {
            now += std::chrono::milliseconds(*rc::gen::inRange(0, 300));
            const od::attempt_report r{*rc::gen::arbitrary<bool>(), *rc::gen::arbitrary<bool>(),
                                       *rc::gen::weightedElement<bool>({{1, true}, {4, false}}), 10ms};
            const double u = *rc::gen::inRange(0, 1000) / 1000.0;
            const auto d = ao::returned(f, r, now, u);
            switch (d.v) {
                case od::verdict::retry:
                    RC_ASSERT(!r.succeeded);
                    RC_ASSERT(r.retryable);
                    RC_ASSERT(f.retries < f.max_retries);
                    RC_ASSERT(!(f.deadline && now >= *f.deadline));
                    RC_ASSERT(d.delay <= f.backoff.cap);
                    ++f.retries;
                    break;
                case od::verdict::continue_later:
                    RC_ASSERT(r.succeeded && r.continue_requested);
                    ++turns;
                    RC_ASSERT(turns <= 100u);
                    break;
                case od::verdict::complete: RC_ASSERT(r.succeeded && !r.continue_requested); return;
                case od::verdict::fail:
                    RC_ASSERT(!r.succeeded);
                    RC_ASSERT(!r.retryable || f.retries == f.max_retries || (f.deadline && now >= *f.deadline));
                    return;
                default: RC_FAIL("a return decides retry, continue, complete or fail");
            }
            RC_ASSERT(f.retries <= f.max_retries);
        }
    });
}
