// The coordinator's engine: what depends on where tasks wait and how their
// records are kept. One engine per mode, picked once at construction:
// local_engine (the in-process admission queue and task table) and
// node_engine (a node of a deployment sharing a transport, a store and a
// registry). The shared components (task table, worker set, outbox,
// control loop, launcher) call it and never ask which mode they are in.
#pragma once

#include "attempt.hpp"
#include "clock.hpp"
#include "effects.hpp"
#include "task_entry.hpp"
#include "worker_entry.hpp"

#include <orchcore/coordinator.hpp>
#include <orchcore/worker_registry.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>
#include <string>
#include <vector>

namespace orchcore::detail {

class engine {
public:
    virtual ~engine() = default;

    // ------------------------------------------------ the public operations
    /// Admits tasks whose options the facade validated, in order, each as if
    /// alone; handles belong to `owner`.
    virtual std::vector<submit_result> submit_many(std::vector<task_request>& tasks, coordinator* owner) = 0;
    virtual submit_result submit_one(task_request& task, coordinator* owner) = 0;
    virtual bool cancel(const std::string& id) = 0;
    /// A delayed task becomes due now; false if it is not delayed.
    virtual bool promote(const std::string& id) = 0;
    virtual void steer(const std::string& id, std::vector<std::string> messages) = 0;
    virtual std::optional<task_record> get(const std::string& id) const = 0;
    /// coordinator::get_status: the status alone (an engine that holds the
    /// record copies none of it).
    virtual std::optional<task_status> status(const std::string& id) const {
        auto r = get(id);
        if (!r) return std::nullopt;
        return r->status;
    }
    virtual std::vector<std::optional<task_record>> get_many(std::span<const std::string> ids) const {
        std::vector<std::optional<task_record>> out;
        out.reserve(ids.size());
        for (const auto& id : ids) out.push_back(get(id));
        return out;
    }
    virtual std::vector<std::optional<task_outcome>> get_outcomes(std::span<const std::string> ids) const {
        auto records = get_many(ids);
        std::vector<std::optional<task_outcome>> out(records.size());
        for (std::size_t i = 0; i < records.size(); ++i)
            if (records[i]) out[i] = task_outcome::of(std::move(*records[i]));
        return out;
    }
    virtual std::optional<task_record> wait_until(const std::string& id, steady::time_point deadline) = 0;
    virtual boost::asio::awaitable<std::optional<task_record>> async_wait_until(std::string id,
                                                                               steady::time_point deadline) = 0;
    virtual coordinator_stats stats() const = 0;
    /// coordinator::watch_finished_many: notifications of tasks that ended.
    virtual std::unique_ptr<transport_watch> watch_finished(
        std::function<void(std::span<const std::string>)> on_finished) = 0;
    /// coordinator::watch_outcomes: tasks that ended, with how; nullptr
    /// where tasks end elsewhere.
    virtual std::unique_ptr<transport_watch> watch_outcomes(
        std::function<void(std::span<const finished_task>)> on_finished) = 0;
    /// Placement at submission (no lock held): whether a worker could ever
    /// hold the task's resource request with its tags. `listed`: the
    /// registry as read for an earlier task of the same submission.
    virtual bool placeable(const task_options& o, std::optional<std::vector<worker_record>>& listed) = 0;
    /// stop(), first part: closes admission, lets work finish per `mode`,
    /// settles or hands back the rest; true if nothing had to be. Ends with
    /// the coordinator marked stopped; empty if it was already.
    virtual std::optional<bool> drain(stop_mode mode, std::chrono::milliseconds deadline) = 0;
    /// stop(), after the control loop ended: the engine's own threads.
    virtual void join_io() {}

    // ------------------------------------------------ from the components
    /// An attempt's handler returned (any thread, no lock held).
    virtual void attempt_ended(const std::shared_ptr<attempt_state>& a, outcome o) = 0;
    /// One control tick (the control loop's thread or executor).
    virtual void tick() = 0;
    /// Lock held. Workers were added or freed: place what waits for them.
    virtual void capacity_changed(effects& fx) = 0;
    /// Lock held. stop() from inside: admission closes at once.
    virtual void close_admission() = 0;
    /// Lock held. stop(), at the end: attempts still running were fenced.
    virtual void settle_fenced(effects& fx) = 0;
    /// Whether the calling thread is one of the engine's own.
    virtual bool runs_here() const = 0;
    /// Lock held. Whether a coroutine awaiting `task_id` is to be woken.
    virtual bool async_waiter_due(const std::string& task_id) const = 0;

    // Steering reads and progress of an attempt (task_context).
    virtual std::vector<std::string> receive(attempt_state& a) = 0;
    virtual std::vector<std::string> receive_for(attempt_state& a, steady::time_point deadline) = 0;
    virtual boost::asio::awaitable<std::vector<std::string>> async_receive_for(std::shared_ptr<attempt_state> a,
                                                                              steady::time_point deadline) = 0;
    /// Lock held. The task's progress changed (record it).
    virtual void progress_changed(task_entry& t) = 0;

    // The worker set's bookkeeping in the registry (lock held).
    virtual std::string worker_name(std::uint64_t seq) const = 0;
    virtual void worker_added(const worker& w) = 0;
    virtual void worker_retired(const std::string& id) = 0;
    virtual void worker_beat(worker_entry& w, const std::string& id, wall::time_point at) = 0;
};

}  // namespace orchcore::detail
