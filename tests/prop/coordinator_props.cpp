// Property: whatever mix of submissions (succeeding, failing, failing
// fatally, slow, blocking until cancelled, with and without turn
// timeouts), cancellations, scale changes and worker deaths (a worker whose
// heartbeats stop is declared dead and its tasks re-run) a coordinator goes
// through,
// after stop() every admitted task is in exactly one terminal state: its
// record is terminal, exactly one terminal event was published for it, it
// got no lifecycle event after that, and it was started exactly as many
// times as its record says.
#include <orchcore/coordinator.hpp>

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace oc = orchcore;
using namespace std::chrono_literals;

namespace {

using steady = std::chrono::steady_clock;

// rc::prop with at most `max_success` cases (RC_PARAMS may lower it).
template <class Testable>
void prop_limited(const std::string& description, int max_success, Testable&& testable) {
    SECTION(description) {
        auto params = rc::detail::configuration().testParams;
        params.maxSuccess = std::min(params.maxSuccess, max_success);
        rc::detail::TestMetadata metadata;
        metadata.id = description;
        metadata.description = description;
        const auto result = rc::detail::checkTestable(std::forward<Testable>(testable), metadata, params);
        if (result.template is<rc::detail::SuccessResult>()) {
            SUCCEED();
        } else {
            std::ostringstream ss;
            rc::detail::printResultMessage(result, ss);
            INFO(ss.str() << "\n");
            FAIL();
        }
    }
}

enum class behaviour { succeed, fail_then_succeed, fail_always, fail_fatal, sleep, block_until_cancelled };
constexpr int behaviour_count = 6;

bool is_terminal_kind(oc::event_kind k) {
    return k == oc::event_kind::task_completed || k == oc::event_kind::task_failed ||
           k == oc::event_kind::task_cancelled || k == oc::event_kind::task_timed_out;
}

oc::event_kind terminal_kind_of(oc::task_status s) {
    switch (s) {
        case oc::task_status::completed: return oc::event_kind::task_completed;
        case oc::task_status::failed: return oc::event_kind::task_failed;
        case oc::task_status::cancelled: return oc::event_kind::task_cancelled;
        default: return oc::event_kind::task_timed_out;
    }
}

std::string handler(oc::task_context& ctx) {
    const auto& p = ctx.payload();
    const auto b = static_cast<behaviour>(p[0] - '0');
    const int param = std::stoi(p.substr(2));
    switch (b) {
        case behaviour::succeed: return "ok";
        case behaviour::fail_then_succeed:
            if (ctx.attempt() <= static_cast<std::uint32_t>(param)) throw std::runtime_error("transient");
            return "ok after " + std::to_string(ctx.attempt());
        case behaviour::fail_always: throw std::runtime_error("broken");
        case behaviour::fail_fatal: throw oc::non_retryable_error("fatal");
        case behaviour::sleep: std::this_thread::sleep_for(std::chrono::milliseconds(param)); return "slept";
        case behaviour::block_until_cancelled: {
            const auto until = steady::now() + 3s;
            while (!ctx.cancellation_requested() && steady::now() < until) std::this_thread::sleep_for(1ms);
            return "stopped";
        }
    }
    return "?";
}

}  // namespace

TEST_CASE("coordinator property: every admitted task ends in exactly one terminal state",
          "[coordinator][prop]") {
    prop_limited("random submits, cancels, scale changes and worker deaths, then stop", 20, [] {
        oc::coordinator_options o;
        o.worker_template.heartbeat_interval = 10ms;
        // Short, so that killed workers die within a case. A slow
        // (sanitized) run may also declare a healthy worker dead: the
        // property must hold then too.
        o.worker_timeout = 80ms;
        o.default_backoff = {.base = 1ms, .cap = 5ms};
        o.maintenance_interval = 10ms;
        o.cancel_grace = 100ms;
        o.scaling.min_workers = 1;
        o.scaling.max_workers = 3;
        const int policy = *rc::gen::inRange(0, 4);
        o.policy = static_cast<oc::queue_policy>(policy);
        o.queue.capacity = static_cast<std::size_t>(*rc::gen::inRange(2, 40));
        o.worker_template.max_concurrent = static_cast<std::size_t>(*rc::gen::inRange(1, 3));

        std::mutex m;
        std::vector<oc::event> events;
        std::vector<std::string> admitted;
        std::size_t rejected = 0;

        oc::coordinator c{o};
        auto sub = c.events().subscribe(oc::event_channel::tasks, [&](const oc::event& e) {
            std::lock_guard lk(m);
            events.push_back(e);
        });
        c.register_handler("p", handler);

        const int n_ops = *rc::gen::inRange(1, 48);
        int submits = 0;
        // rc's ranges favour small values in early cases, so a death is
        // also scheduled outright in half of the cases: mid-way, a worker
        // stops heartbeating, and the case then lasts past worker_timeout.
        const bool scheduled_death = n_ops >= 4 && n_ops % 2 == 0;
        auto kill_one = [&](std::size_t pick) {
            auto ws = c.get_workers();
            if (ws.empty()) return;
            // A busy worker if there is one: its tasks must be re-run.
            std::stable_partition(ws.begin(), ws.end(), [](const oc::worker_info& w) { return !w.current_tasks.empty(); });
            const auto busy = static_cast<std::size_t>(
                std::count_if(ws.begin(), ws.end(), [](const oc::worker_info& w) { return !w.current_tasks.empty(); }));
            try {
                c.suspend_heartbeats(ws[pick % (busy > 0 ? busy : ws.size())].id);  // dead after worker_timeout
            } catch (const oc::error&) {
                // declared dead or retired meanwhile
            }
        };
        for (int i = 0; i < n_ops; ++i) {
            if (scheduled_death && i == n_ops / 2) kill_one(static_cast<std::size_t>(i));
            const int kind = *rc::gen::inRange(0, 12);
            if (kind < 7 && submits < 40) {
                ++submits;
                const auto b = static_cast<behaviour>(*rc::gen::inRange(0, behaviour_count));
                const int param = b == behaviour::sleep ? *rc::gen::inRange(1, 6) : *rc::gen::inRange(0, 3);
                oc::task_options to;
                to.max_retries = static_cast<std::uint32_t>(*rc::gen::inRange(0, 3));
                to.priority = *rc::gen::inRange(0, 21);
                if (*rc::gen::inRange(0, 4) == 0) to.turn_timeout = std::chrono::milliseconds(*rc::gen::inRange(5, 40));
                auto r = c.submit_async("p", std::to_string(static_cast<int>(b)) + ":" + std::to_string(param), to);
                if (r) admitted.push_back(r.handle.id()); else ++rejected;
            } else if (kind < 9) {
                if (!admitted.empty()) {
                    const auto idx = static_cast<std::size_t>(*rc::gen::inRange<int>(0, static_cast<int>(admitted.size())));
                    (void)c.cancel(admitted[idx]);
                }
            } else if (kind == 9) {
                (void)c.scale(static_cast<std::size_t>(*rc::gen::inRange(0, 5)));
            } else if (kind == 10) {
                kill_one(static_cast<std::size_t>(*rc::gen::inRange(0, 8)));
            } else {
                std::this_thread::sleep_for(std::chrono::milliseconds(*rc::gen::inRange(0, 120)));
            }
        }
        if (scheduled_death) std::this_thread::sleep_for(200ms);
        (void)c.stop(oc::stop_mode::graceful, 100ms);

        // After stop() every worker has been joined: all events are in.
        std::map<std::string, std::vector<oc::event>> by_task;
        {
            std::lock_guard lk(m);
            for (auto& e : events) by_task[e.task_id].push_back(e);
        }
        const auto s = c.get_stats();
        RC_ASSERT(s.submitted == admitted.size());
        RC_ASSERT(s.rejected == rejected);
        RC_ASSERT(s.completed + s.failed + s.cancelled + s.timed_out == admitted.size());
        RC_ASSERT(s.running == 0u);
        RC_ASSERT(s.queued == 0u);
        RC_ASSERT(s.delayed == 0u);
        for (const auto& id : admitted) {
            const auto rec = c.get_task(id);
            RC_ASSERT(rec.has_value());
            const auto& evs = by_task[id];
            RC_LOG() << id << ": " << oc::to_string(rec->status) << " attempts=" << rec->attempts << " events:";
            for (const auto& e : evs) RC_LOG() << " " << oc::to_string(e.kind);
            RC_LOG() << "\n";
            RC_ASSERT(oc::is_terminal(rec->status));
            std::size_t terminal = 0, started = 0, after_terminal = 0;
            oc::event_kind last_terminal{};
            for (const auto& e : evs) {
                if (terminal > 0 && e.kind != oc::event_kind::stale_token_refused &&
                    e.kind != oc::event_kind::task_expired)
                    ++after_terminal;
                if (is_terminal_kind(e.kind)) {
                    ++terminal;
                    last_terminal = e.kind;
                }
                if (e.kind == oc::event_kind::task_started) ++started;
            }
            RC_ASSERT(terminal == 1u);
            RC_ASSERT(last_terminal == terminal_kind_of(rec->status));
            RC_ASSERT(after_terminal == 0u);
            RC_ASSERT(started == rec->attempts);
            RC_ASSERT(!evs.empty() && evs.front().kind == oc::event_kind::task_queued);
            if (rec->status == oc::task_status::completed) RC_ASSERT(c.get_result(id).has_value());
        }
    });
}
