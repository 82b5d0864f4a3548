// The lease round state machine (src/coordinator/lease_round.hpp): how
// many leases a node asks for, what becomes of each leased task once its
// record is read, and whether another round may find more.
#include "../../src/coordinator/lease_round.hpp"

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include <chrono>
#include <vector>

using namespace std::chrono_literals;
namespace lr = orchcore::detail::lease_round;
using orchcore::task_status;
using wall_tp = std::chrono::system_clock::time_point;
using record = lr::leased_record<wall_tp>;

namespace {
const wall_tp t0{std::chrono::hours(24)};
}

TEST_CASE("lease round: asks for the free slots not promised elsewhere, at most a batch", "[lease_round]") {
    CHECK(lr::to_ask(8, 0, 64) == 8);
    CHECK(lr::to_ask(8, 3, 64) == 5);   // three slots promised to a lease call in flight
    CHECK(lr::to_ask(8, 10, 64) == 0);  // never negative
    CHECK(lr::to_ask(100, 0, 64) == 64);
    CHECK(lr::to_ask(0, 0, 64) == 0);
}

TEST_CASE("lease round: empty rounds back off from the tick to 50 ms; a grant polls again at once",
          "[lease_round]") {
    auto b = lr::next_backoff(0, 0ms, 10ms);
    CHECK(b == 10ms);
    b = lr::next_backoff(0, b, 10ms);
    CHECK(b == 20ms);
    b = lr::next_backoff(0, b, 10ms);
    b = lr::next_backoff(0, b, 10ms);
    CHECK(b == 50ms);
    CHECK(lr::next_backoff(0, b, 10ms) == 50ms);
    CHECK(lr::next_backoff(3, b, 10ms) == 0ms);
    CHECK(lr::next_backoff(0, std::chrono::milliseconds::max(), 10ms) == 50ms);  // no overflow
}

TEST_CASE("lease round: a leased task's record decides whether it starts", "[lease_round]") {
    CHECK(lr::read(record{false, task_status::queued, false, t0, 0ms}, t0) == lr::fate::leave);
    for (auto s : {task_status::completed, task_status::failed, task_status::cancelled, task_status::timed_out})
        CHECK(lr::read(record{true, s, true, t0, 1ms}, t0 + 1h) == lr::fate::leave);  // finished: just leaves
    CHECK(lr::read(record{true, task_status::queued, true, t0, 0ms}, t0) == lr::fate::cancel);
    CHECK(lr::read(record{true, task_status::queued, false, t0, 5s}, t0 + 5s) == lr::fate::time_out);
    CHECK(lr::read(record{true, task_status::queued, false, t0, 5s}, t0 + 4s) == lr::fate::start);
    // A recovered task (record still running) starts again here.
    CHECK(lr::read(record{true, task_status::running, false, t0, 0ms}, t0) == lr::fate::start);
    // A timeout up to the duration's maximum means a long time, not an overflow.
    CHECK(lr::read(record{true, task_status::queued, false, t0, std::chrono::milliseconds::max()}, t0 + 1h) ==
          lr::fate::start);
}

TEST_CASE("lease round: a task starts only on a node that takes work, has its handler and a fitting worker",
          "[lease_round]") {
    CHECK(lr::place(false, true, true) == lr::fate::start);
    CHECK(lr::place(true, true, true) == lr::fate::hand_back);
    CHECK(lr::place(false, false, true) == lr::fate::hand_back);
    CHECK(lr::place(false, true, false) == lr::fate::hand_back);
    CHECK(lr::another_round(8, 8, 3));
    CHECK_FALSE(lr::another_round(8, 5, 5));  // the queue ran dry
    CHECK_FALSE(lr::another_round(8, 8, 0));  // nothing could start here
}

// Model: a node with `slots` slots runs lease rounds against a queue of
// random tasks. Whatever the queue holds, it never leases more than its
// free slots, every leased task gets exactly one fate, a finished or
// cancelled task never starts, and the rounds end.
TEST_CASE("lease round: rounds never overfill the node and settle every lease once", "[lease_round][prop]") {
    rc::prop("leases within free slots; each lease has one fate", [] {
        const auto slots = *rc::gen::inRange<std::size_t>(0, 20);
        const auto batch = *rc::gen::inRange<std::size_t>(1, 10);
        const auto queue_len = *rc::gen::inRange<std::size_t>(0, 60);
        std::vector<record> queue;
        for (std::size_t i = 0; i < queue_len; ++i) {
            const auto status = *rc::gen::element(task_status::queued, task_status::running, task_status::completed,
                                                  task_status::cancelled);
            queue.push_back(record{*rc::gen::weightedElement<bool>({{9, true}, {1, false}}), status,
                                   *rc::gen::weightedElement<bool>({{1, true}, {5, false}}), t0,
                                   std::chrono::milliseconds(*rc::gen::inRange(0, 3) * 1000)});
        }
        const auto now = t0 + 1500ms;
        std::size_t busy = 0, next = 0, rounds = 0;
        auto backoff = 0ms;
        for (bool more = true; more; ++rounds) {
            RC_ASSERT(rounds <= queue_len + 1);
            const auto asked = lr::to_ask(slots - busy, 0, batch);
            RC_ASSERT(asked <= batch);
            RC_ASSERT(busy + asked <= slots);
            if (asked == 0) break;
            const std::size_t granted = std::min(asked, queue.size() - next);
            backoff = lr::next_backoff(granted, backoff, 10ms);
            RC_ASSERT(backoff <= 50ms);
            std::size_t launched = 0;
            for (std::size_t k = 0; k < granted; ++k) {
                const auto& r = queue[next++];
                const auto f = lr::read(r, now);
                if (!r.exists || orchcore::is_terminal(r.status)) RC_ASSERT(f == lr::fate::leave);
                if (f == lr::fate::start) {
                    RC_ASSERT(!r.cancel_marked);
                    if (lr::place(false, true, busy < slots) == lr::fate::start) {
                        ++busy;
                        ++launched;
                    }
                }
            }
            RC_ASSERT(busy <= slots);
            more = lr::another_round(asked, granted, launched);
        }
    });
}
