// Placement at submission: a resource request no worker could ever hold is
// refused (unplaceable_error) unless placement_wait lets it wait.
#include "coordinator_impl.hpp"

#include <algorithm>

namespace orchcore::detail {

// A live worker of the shared registry that could hold `r` (with `tags`)
// when nothing is held on it.
bool registered_could_hold(const worker_record& w, const std::vector<std::string>& tags, const resource_request& r) {
    return w.status != worker_status::error && w.status != worker_status::stopped &&
           worker_filter{std::nullopt, tags}.matches(w) && fits(w.resources, r);
}

// Local mode decides on its own workers (and the template scaling may add),
// under the lock; distributed mode on the live workers in the shared
// registry, read without the lock. No live worker registered anywhere: the
// task is admitted (a node may come). `listed`: the registry as read for an
// earlier task of the same submission (read once per submission).
void coordinator_impl::require_placeable(const task_options& o, std::optional<std::vector<worker_record>>& listed) {
    if (o.resources.empty() || opt.placement_wait.count() > 0) return;
    bool placeable = true;
    if (!opt.transport) {
        std::lock_guard lk(mu);
        placeable = could_ever_place(o.tags, o.resources);
    } else {
        if (!listed) listed = registry->list({});
        const auto& all = *listed;
        const bool any_live = std::any_of(all.begin(), all.end(), [](const auto& w) {
            return w.status != worker_status::error && w.status != worker_status::stopped;
        });
        placeable = !any_live || std::any_of(all.begin(), all.end(), [&](const auto& w) {
            return registered_could_hold(w, o.tags, o.resources);
        });
    }
    if (!placeable)
        throw unplaceable_error("orchcore: unplaceable: no registered worker could ever hold resources " +
                                to_string(o.resources) +
                                (o.tags.empty() ? std::string{} : " with the task's tags"));
}

}  // namespace orchcore::detail
