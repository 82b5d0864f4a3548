// Placement of resource requests on registered workers, with session
// affinity. Pure bookkeeping: no threads, no clock, no I/O; the caller
// serialises access.
//
// Choice among the workers a request fits on: best fit. The worker left with
// the fewest free GPUs wins, then the least free memory, then the least free
// CPU, then the smallest worker id. Small requests fill up partly used
// workers first and large workers (GPU machines above all) stay free for the
// requests that need them.
#pragma once

#include <orchcore/resources.hpp>

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace orchcore {

/// Where a request was placed, and the hold to release when it is done.
struct placement {
    std::string worker{};
    hold_id hold = 0;

    friend bool operator==(const placement&, const placement&) = default;
};

class placement_table {
public:
    /// Registers a worker. Throws invalid_argument for an empty id or one
    /// that is already registered.
    void add_worker(const std::string& worker, resource_inventory inventory);
    /// Forgets a worker, its holds and the sessions bound to it (they move
    /// to another worker at their next placement). False if unknown.
    bool remove_worker(std::string_view worker);
    bool has_worker(std::string_view worker) const;
    std::size_t worker_count() const noexcept { return workers_.size(); }

    /// Places a request and holds its resources; empty if no worker has
    /// room now. With a session key: the worker the session is bound to,
    /// while it is registered and has room; otherwise the best fit, and the
    /// session is bound to it if it was unbound (a session keeps its worker
    /// while that worker lives, even when a request spills elsewhere).
    std::optional<placement> place(const resource_request& request, std::string_view session = {});
    /// Releases a placement's hold. False if the worker or hold is unknown.
    bool release(const placement& where);

    /// True if some registered worker could hold the request when nothing
    /// is held on it (false: the request is impossible here).
    bool could_ever_place(const resource_request& request) const;

    /// The worker a session is bound to, if any.
    std::optional<std::string> session_worker(std::string_view session) const;
    /// The resources of a registered worker, or nullptr.
    const worker_resources* worker(std::string_view worker) const;

private:
    std::optional<std::string> best_fit(const resource_request& request) const;

    std::map<std::string, worker_resources, std::less<>> workers_;
    std::map<std::string, std::string, std::less<>> sessions_;
};

}  // namespace orchcore
