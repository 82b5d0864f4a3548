// A handler for workflow tests: records which tasks started and completed,
// and whether any started before one of its dependencies had completed.
// A task's payload says what it does: "ok" (returns "<name>-done"), "fail"
// (throws non_retryable_error), "slow" (sleeps 1-3 ms, then as ok), "block"
// (waits on the gate, or until cancelled).
#pragma once

#include <orchcore/coordinator.hpp>
#include <orchcore/workflow/context.hpp>

#include "support/sync_helpers.hpp"

#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace orchcore::test {

/// The coordinator the in-process workflow tests run on: four workers,
/// quick maintenance, short grace for cancellation.
inline coordinator_options workflow_options() {
    using namespace std::chrono_literals;
    coordinator_options o;
    o.scaling.min_workers = 4;
    o.scaling.max_workers = 4;
    o.worker_timeout = 2000ms;
    o.cancel_grace = 500ms;
    o.maintenance_interval = 20ms;
    return o;
}

class workflow_probe {
public:
    void attach(coordinator& c, const std::string& type = "op") {
        c.register_handler(type, [this](task_context& ctx) { return run(ctx); });
    }

    std::map<std::string, int> starts() const {
        std::lock_guard lk(m_);
        return starts_;
    }
    int starts_of(const std::string& name) const {
        std::lock_guard lk(m_);
        auto it = starts_.find(name);
        return it == starts_.end() ? 0 : it->second;
    }
    std::vector<std::string> early() const {  ///< tasks that started before a dependency completed
        std::lock_guard lk(m_);
        return early_;
    }
    gate& blocker() noexcept { return gate_; }

private:
    std::string run(task_context& ctx) {
        const auto name = workflow::task_name(ctx);
        {
            std::lock_guard lk(m_);
            ++starts_[name];
            for (const auto& d : workflow::dependencies(ctx))
                if (!completed_.count(d)) early_.push_back(name);
        }
        const auto& p = ctx.payload();
        if (p == "fail") throw non_retryable_error("boom in " + name);
        if (p == "slow") std::this_thread::sleep_for(std::chrono::milliseconds(1 + name.size() % 3));
        if (p == "block") {
            while (!ctx.cancellation_requested() && !gate_.wait(std::chrono::milliseconds(5))) {
            }
            ctx.throw_if_cancelled();
        }
        std::lock_guard lk(m_);
        completed_.insert(name);
        return name + "-done";
    }

    mutable std::mutex m_;
    std::map<std::string, int> starts_;
    std::set<std::string> completed_;
    std::vector<std::string> early_;
    gate gate_;
};

}  // namespace orchcore::test
