// Placement at submission: a resource request no worker could ever hold is
// refused (unplaceable_error) unless placement_wait lets it wait.
#include "local_engine.hpp"
#include "node_engine.hpp"

#include <algorithm>

namespace orchcore::detail {

// A live worker of the shared registry that could hold `r` (with `tags`)
// when nothing is held on it.
bool registered_could_hold(const worker_record& w, const std::vector<std::string>& tags, const resource_request& r) {
    return w.status != worker_status::error && w.status != worker_status::stopped &&
           worker_filter{std::nullopt, tags}.matches(w) && fits(w.resources, r);
}

// Local mode decides on its own workers (and the template scaling may add),
// under the lock.
bool local_engine::placeable(const task_options& o, std::optional<std::vector<worker_record>>&) {
    std::lock_guard lk(c.mu);
    return c.could_ever_place(o.tags, o.resources);
}

// A node decides on the live workers in the shared registry, read without
// the lock (once per submission). No live worker registered anywhere: the
// task is admitted (a node may come).
bool node_engine::placeable(const task_options& o, std::optional<std::vector<worker_record>>& listed) {
    if (!listed) listed = c.registry->list({});
    const auto& all = *listed;
    const bool any_live = std::any_of(all.begin(), all.end(), [](const auto& w) {
        return w.status != worker_status::error && w.status != worker_status::stopped;
    });
    return !any_live || std::any_of(all.begin(), all.end(), [&](const auto& w) {
        return registered_could_hold(w, o.tags, o.resources);
    });
}

void coordinator_impl::require_placeable(const task_options& o, std::optional<std::vector<worker_record>>& listed) {
    if (o.resources.empty() || opt.placement_wait.count() > 0) return;
    if (!eng->placeable(o, listed))
        throw unplaceable_error("orchcore: unplaceable: no registered worker could ever hold resources " +
                                to_string(o.resources) +
                                (o.tags.empty() ? std::string{} : " with the task's tags"));
}

}  // namespace orchcore::detail
