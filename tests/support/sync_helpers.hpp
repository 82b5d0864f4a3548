// Test-only synchronisation helpers shared by the engine tests.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace orchcore::test {

/// Polls `pred` until it holds or `timeout` passes; true if it held. Tests
/// use it for effects that arrive asynchronously (events, stats), never to
/// assert timing.
template <class Pred>
bool eventually(Pred&& pred, std::chrono::milliseconds timeout = std::chrono::seconds(5),
                std::chrono::milliseconds poll = std::chrono::milliseconds(2)) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (pred()) return true;
        if (std::chrono::steady_clock::now() >= until) return false;
        std::this_thread::sleep_for(poll);
    }
}

/// A one-shot gate that handlers block on until the test opens it. Waits are
/// capped so that a failing test cannot hang the suite.
class gate {
public:
    void open() {
        {
            std::lock_guard lk(m_);
            open_ = true;
        }
        cv_.notify_all();
    }
    bool wait(std::chrono::milliseconds max = std::chrono::seconds(10)) {
        std::unique_lock lk(m_);
        return cv_.wait_for(lk, max, [&] { return open_; });
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    bool open_ = false;
};

/// Declared after the coordinator or pool: opens the gate on scope exit
/// (also when a REQUIRE unwinds), before the destructor joins the workers.
struct gate_guard {
    gate& g;
    ~gate_guard() { g.open(); }
};

}  // namespace orchcore::test
