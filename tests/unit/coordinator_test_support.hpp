// Shared helpers of the coordinator tests (coordinator_*_test.cpp):
// admission, dispatch, events, cancellation, steering, retries, timeouts,
// health and fencing, stop, scaling, tag routing, TTL, distributed mode.
//
// Timing: every wait is bounded (eventually(), wait_for, gates with a cap),
// and no sleep is used as an assertion. A few tests sleep to *create* a
// situation (a task waiting longer than its turn timeout) or to give a
// wrong behaviour the chance to show (an observation window), never to
// decide an outcome on their own.
#pragma once

#include <orchcore/coordinator.hpp>

#include "unit/distributed_scenarios.hpp"

#include <catch2/catch.hpp>

#include "support/sync_helpers.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace oc = orchcore;
using namespace std::chrono_literals;

namespace {

using steady = std::chrono::steady_clock;
using orchcore::test::eventually;
using orchcore::test::gate;
using orchcore::test::gate_guard;


// Records events. Declare it before the coordinator so that it outlives it.
class recorder {
public:
    void attach(oc::coordinator& c, oc::event_channel ch = oc::event_channel::tasks) {
        subs_.push_back(c.events().subscribe(ch, [this](const oc::event& e) {
            std::lock_guard lk(m_);
            events_.push_back(e);
        }));
    }
    std::vector<oc::event> all() const {
        std::lock_guard lk(m_);
        return events_;
    }
    std::vector<oc::event> of(const std::string& task_id) const {
        std::vector<oc::event> out;
        for (auto& e : all())
            if (e.task_id == task_id) out.push_back(e);
        return out;
    }
    /// Kinds of the events of one task, in delivery order.
    std::vector<std::string> kinds(const std::string& task_id) const {
        std::vector<std::string> out;
        for (auto& e : of(task_id)) out.emplace_back(oc::to_string(e.kind));
        return out;
    }
    std::size_t count(oc::event_kind k, const std::string& task_id = {}) const {
        std::size_t n = 0;
        for (auto& e : all())
            if (e.kind == k && (task_id.empty() || e.task_id == task_id)) ++n;
        return n;
    }
    std::size_t count_worker(oc::event_kind k, const std::string& worker_id) const {
        std::size_t n = 0;
        for (auto& e : all())
            if (e.kind == k && e.worker_id == worker_id) ++n;
        return n;
    }

private:
    mutable std::mutex m_;
    std::vector<oc::event> events_;
    std::vector<oc::event_bus::subscription> subs_;
};

inline oc::coordinator_options fast_options(std::size_t min_workers = 2, std::size_t max_workers = 4) {
    oc::coordinator_options o;
    o.worker_template.heartbeat_interval = 20ms;
    // Generous except in the health tests, so that a slow (sanitized) run
    // never declares a healthy worker dead.
    o.worker_timeout = 1000ms;
    o.default_backoff = {.base = 1ms, .cap = 5ms};
    o.autoscale_interval = 20ms;
    o.maintenance_interval = 10ms;
    o.cancel_grace = 200ms;
    o.scaling.min_workers = min_workers;
    o.scaling.max_workers = max_workers;
    o.scaling.cooldown = 20ms;
    return o;
}

inline std::string st(const std::optional<oc::task_record>& r) {
    return r ? std::string(oc::to_string(r->status)) : std::string("<none>");
}
inline std::string st(const std::optional<oc::task_status>& s) {
    return s ? std::string(oc::to_string(*s)) : std::string("<none>");
}

inline oc::task_options with_id(std::string id) {
    oc::task_options o;
    o.id = std::move(id);
    return o;
}
inline oc::task_options with_retries(std::uint32_t n) {
    oc::task_options o;
    o.max_retries = n;
    return o;
}

// A handler body that runs until its attempt is asked to cancel (bounded),
// counts that it saw the request, then returns normally.
inline std::string run_until_cancelled(oc::task_context& ctx, std::atomic<int>& saw_cancel) {
    const auto until = steady::now() + 5s;
    while (!ctx.cancellation_requested() && steady::now() < until) std::this_thread::sleep_for(1ms);
    if (ctx.cancellation_requested()) ++saw_cancel;
    return "returned after cancel";
}

template <class F>
std::string error_text(F&& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "<no exception>";
}

}  // namespace

