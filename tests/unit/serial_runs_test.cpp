// One run at a time of a requested step (src/coordinator/serial_runs.hpp),
// as the node runs its feed and its flush: a request never starts a second
// run, and never goes unserved.
#include "../../src/coordinator/serial_runs.hpp"

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include <mutex>
#include <stdexcept>
#include <vector>

using orchcore::detail::serial_runs;

TEST_CASE("serial runs: the first request starts a run; one made during it adds a round", "[serial_runs]") {
    serial_runs r;
    CHECK_FALSE(r.running());
    REQUIRE(r.request());  // the caller runs
    CHECK(r.running());
    CHECK_FALSE(r.request());  // a second thread: no second run
    CHECK_FALSE(r.request());  // a third: still one more round, not two
    CHECK(r.owed());
    CHECK(r.round_done());  // the round owed
    CHECK_FALSE(r.owed());
    CHECK(r.running());
    CHECK_FALSE(r.round_done());  // nothing came meanwhile: over
    CHECK_FALSE(r.running());
    CHECK(r.request());  // a new run
}

TEST_CASE("serial runs: an abandoned run lets the next request start one", "[serial_runs]") {
    serial_runs r;
    REQUIRE(r.request());
    CHECK_FALSE(r.request());
    r.abandon();
    CHECK_FALSE(r.running());
    CHECK_FALSE(r.owed());
    CHECK(r.request());
}

// Model: requests arrive between the steps of the runs. Each request must be
// served by a round that starts after it (the work it brings is taken), and
// no two runs are ever under way at once.
TEST_CASE("serial runs: every request is served by a later round; never two runs", "[serial_runs][property]") {
    rc::prop("requests and round ends in any order", [](const std::vector<bool>& steps) {
        serial_runs r;
        int runs = 0;              // runs under way
        bool round_started = false;
        bool unserved = false;     // a request not yet followed by the start of a round
        for (const bool is_request : steps) {
            if (is_request) {
                unserved = true;
                if (r.request()) {
                    RC_ASSERT(runs == 0);
                    ++runs;
                    round_started = true;
                    unserved = false;  // this round takes it
                }
            } else if (runs == 1 && round_started) {
                if (r.round_done()) {
                    unserved = false;  // the next round starts now and takes it
                } else {
                    RC_ASSERT(!unserved);
                    --runs;
                    round_started = false;
                }
            }
            RC_ASSERT(r.running() == (runs == 1));
        }
    });
}

TEST_CASE("serial runs: carry_out_run does a round per request made during a round; a throw ends the run",
          "[serial_runs]") {
    std::mutex mu;
    serial_runs r;
    REQUIRE(r.request());
    int rounds = 0;
    orchcore::detail::carry_out_run(mu, r, [&] {
        if (++rounds < 3) {
            std::lock_guard lk(mu);
            CHECK_FALSE(r.request());  // asked during the round: one more
        }
    });
    CHECK(rounds == 3);
    CHECK_FALSE(r.running());
    REQUIRE(r.request());
    CHECK_THROWS_AS(orchcore::detail::carry_out_run(mu, r, [] { throw std::runtime_error("round failed"); }),
                    std::runtime_error);
    CHECK_FALSE(r.running());
    CHECK(r.request());  // the next request starts a new run
}
