// What a worker is made of: its id, task slots, tags, heartbeat interval,
// default per-attempt timeout and where it runs its callables.
#pragma once

#include <orchcore/error.hpp>
#include <orchcore/resources.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace orchcore {

struct worker_options {
    std::string id{};                   ///< empty: generated ("worker-<n>")
    std::size_t max_concurrent = 1;   ///< task slots, and threads
    std::vector<std::string> tags{};    ///< a task runs only where its tags are all present
    std::chrono::milliseconds heartbeat_interval{200};
    std::chrono::milliseconds task_timeout{0};  ///< default per-attempt timeout for tasks on it; 0 = none
    /// Where the worker runs its callables. Empty (default): threads of its
    /// own, one per slot (plus any extra the owner asks for). Set: the
    /// worker creates no thread and runs on this executor (an io_context of
    /// the application, say); max_concurrent then bounds how many of its
    /// callables run at once, and the executor's threads bound it too.
    /// The execution context must outlive the worker, and something must
    /// run it, or the worker's callables wait.
    std::optional<boost::asio::any_io_executor> executor{};
    /// What the worker offers to tasks' resource requests (CPU, memory,
    /// GPUs, labels). Empty (default): nothing, so only tasks that ask for
    /// no resources run on it. Held resources never exceed it.
    resource_inventory resources{};

    void validate() const {
        if (max_concurrent == 0) throw invalid_argument("worker.max_concurrent", "0", "must be at least 1");
        if (max_concurrent > 1024)
            throw invalid_argument("worker.max_concurrent", std::to_string(max_concurrent), "must be at most 1024");
        if (heartbeat_interval.count() <= 0)
            throw invalid_argument("worker.heartbeat_interval", std::to_string(heartbeat_interval.count()) + "ms",
                                   "must be > 0");
        if (task_timeout.count() < 0)
            throw invalid_argument("worker.task_timeout", std::to_string(task_timeout.count()) + "ms", "must be >= 0");
        orchcore::validate(resources, "worker.resources");
    }

    /// True if every tag in `required` is among this worker's tags.
    bool satisfies(const std::vector<std::string>& required) const {
        return std::all_of(required.begin(), required.end(), [&](const std::string& t) {
            return std::find(tags.begin(), tags.end(), t) != tags.end();
        });
    }
};

}  // namespace orchcore
