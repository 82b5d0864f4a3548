// One run at a time of a step that many threads ask for (the node's feed,
// its flush of finished attempts): a request made while a run is under way
// does not start a second run; it makes the run under way do one more
// round, so the work that arrived meanwhile is taken in one call and none
// is left behind. A pure state machine: no threads, no I/O; the caller
// holds its lock around every call and carries the runs out.
#pragma once

#include <mutex>

namespace orchcore::detail {

class serial_runs {
public:
    /// A run is wanted. True: none was under way, the caller starts one
    /// now; false: the run under way does one more round instead.
    [[nodiscard]] bool request() noexcept {
        if (running_) {
            again_ = true;
            return false;
        }
        running_ = true;
        again_ = false;
        return true;
    }

    /// The run's current round is over. True: a request came during it,
    /// the run does another round; false: the run is over (the next
    /// request starts a new one).
    [[nodiscard]] bool round_done() noexcept {
        if (again_) {
            again_ = false;
            return true;
        }
        running_ = false;
        return false;
    }

    /// The run ended before its round did (its step threw): the next
    /// request starts a new run.
    void abandon() noexcept { running_ = again_ = false; }

    /// Whether a run is under way.
    bool running() const noexcept { return running_; }

    /// Whether the run under way owes another round.
    bool owed() const noexcept { return again_; }

private:
    bool running_ = false;
    bool again_ = false;
};

/// Carries out a run that `runs` (guarded by `mu`) let the caller start:
/// `round()` (outside the lock) until no request came during the last
/// one. A round that throws ends the run and the exception goes on.
template <class Mutex, class Round>
void carry_out_run(Mutex& mu, serial_runs& runs, Round&& round) {
    for (;;) {
        try {
            round();
        } catch (...) {
            std::lock_guard lk(mu);
            runs.abandon();
            throw;
        }
        std::lock_guard lk(mu);
        if (!runs.round_done()) return;
    }
}

}  // namespace orchcore::detail
