// Running workflows through a coordinator, with the same API in one process
// and in distributed mode.
//
//   orchcore::coordinator c;
//   orchcore::workflow::workflow_runner runner(c);   // registers its driver
//   c.register_handler("fetch", ...);                // the tasks' handlers
//   auto h = runner.submit_workflow(spec);
//   auto rec = h.get();                              // or co_await h.async_get()
//
// A workflow runs as a driver task (type "orchcore.workflow", id = the
// workflow id, payload = the spec as JSON) that the coordinator schedules
// like any other task; its record is the workflow's record. Each task of the
// graph is submitted when its dependencies have completed, with the id
// "<workflow id>/<task name>", so submitting it twice is refused as a
// duplicate. The graph's state is rebuilt from those records whenever the
// driver runs on a node that does not hold it, so a workflow whose node died
// is carried on by whichever node leases its driver next. See
// docs/workflows.md.
#pragma once

#include <orchcore/error.hpp>
#include <orchcore/workflow/spec.hpp>
#include <orchcore/workflow/state.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace orchcore {
class coordinator;
}

namespace orchcore::workflow {

class workflow_runner;
struct runner_impl;

/// One task of a workflow as its record tells (or, for tasks never
/// submitted, as the graph's state derives).
struct workflow_task_view {
    std::string name{};
    std::string id{};  ///< "<workflow id>/<name>" (a shard after round 1: task_id(workflow, name, round))
    task_state state = task_state::pending;
    std::string result{};  ///< completed
    std::string reason{};  ///< failed, cancelled, timed out: why
    std::string cause{};   ///< failed because of a dependency: its name
};

/// A snapshot of a workflow: its status is derived from its tasks.
struct workflow_record {
    std::string id{};
    std::string name{};
    workflow_status status = workflow_status::pending;
    std::vector<workflow_task_view> tasks{};  ///< in graph order
    std::chrono::system_clock::time_point created_at{};
    std::optional<std::chrono::system_clock::time_point> finished_at{};

    bool finished() const noexcept {
        return status != workflow_status::pending && status != workflow_status::running;
    }
    /// The task of that name; throws invalid_argument if there is none.
    const workflow_task_view& task(std::string_view name) const;
};

/// workflow_handle::get(): the workflow ended failed. what() names the
/// first task that failed, timed out or was cancelled, and why.
class workflow_failed_error : public error {
public:
    workflow_failed_error(workflow_record r, const std::string& what)
        : error(errc::task_failed, what), record_(std::move(r)) {}
    const workflow_record& record() const noexcept { return record_; }

private:
    workflow_record record_;
};

class workflow_handle {
public:
    workflow_handle() = default;
    const std::string& id() const noexcept { return id_; }
    bool valid() const noexcept { return impl_ != nullptr; }

    /// The workflow as it is now; empty if its record expired (or never existed).
    std::optional<workflow_record> record() const;
    /// pending, running, or how it ended (see workflow_state::status()).
    workflow_status status() const;

    /// Waits until the workflow has ended; empty on timeout (or if there is
    /// no such workflow).
    std::optional<workflow_record> wait_for(std::chrono::milliseconds timeout) const;
    /// Throws error(errc::not_found) if there is no such workflow (or its record expired).
    workflow_record wait() const;
    /// Waits, then returns the record of a completed workflow; throws
    /// workflow_failed_error or cancelled_error.
    workflow_record get() const;
    /// The same for coroutines (the waits suspend; reading the records
    /// after the end is a store read).
    boost::asio::awaitable<std::optional<workflow_record>> async_wait_for(std::chrono::milliseconds timeout) const;
    boost::asio::awaitable<workflow_record> async_get() const;

    /// Cancels the workflow: its driver, then every task of it that has not
    /// finished (a running one cooperatively, as coordinator::cancel).
    /// Tasks not yet submitted never will be. False if it had already ended.
    bool cancel() const;

private:
    friend class workflow_runner;
    friend struct runner_impl;
    workflow_handle(std::shared_ptr<runner_impl> impl, std::string id) : impl_(std::move(impl)), id_(std::move(id)) {}
    std::shared_ptr<runner_impl> impl_{};
    std::string id_{};
};

struct runner_options {
    /// How often the driver looks at the records of tasks that run on
    /// other nodes (and, at the latest, notices the end of a workflow).
    /// Tasks that end on this node advance the workflow at once.
    std::chrono::milliseconds poll_interval{20};
    spec_limits limits{};
    /// Priority of the driver task ([0, 20]).
    int driver_priority = 15;
};

struct workflow_submit_options {
    /// Empty: generated ("wf-<node id>-<random>"). Set: submitting the same
    /// id again returns a handle to the existing workflow (idempotent).
    std::optional<std::string> id{};
};

class workflow_runner {
public:
    /// Registers the driver handler ("orchcore.workflow") on `c` and
    /// watches its task events. Every node that may run drivers needs a
    /// runner; `c` must outlive the runner.
    explicit workflow_runner(coordinator& c, runner_options options = {});
    ~workflow_runner();
    workflow_runner(const workflow_runner&) = delete;
    workflow_runner& operator=(const workflow_runner&) = delete;

    /// Validates (spec_error naming the culprit) and submits a workflow.
    /// Throws orchcore::rejected_error if its driver is not admitted.
    workflow_handle submit_workflow(const workflow_spec& spec, workflow_submit_options options = {});
    /// A handle to a workflow submitted before (on any node).
    workflow_handle handle(std::string id);

private:
    std::shared_ptr<runner_impl> impl_;
};

/// The task id of `task` in workflow `workflow_id`.
std::string task_id(std::string_view workflow_id, std::string_view task);
/// The task id of a shard in round `round` of its fan-out (shard_spec::rounds):
/// task_id(workflow_id, task) in round 1, "<workflow id>/<task>@r<round>" after.
std::string task_id(std::string_view workflow_id, std::string_view task, std::uint32_t round);

}  // namespace orchcore::workflow
