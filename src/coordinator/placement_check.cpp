// Placement at submission: a resource request no worker could ever hold is
// refused (unplaceable_error) unless placement_wait lets it wait.
#include "coordinator_impl.hpp"

#include <algorithm>

namespace orchcore::detail {

namespace {

bool registered_fit(const worker_record& w, const task_options& o) {
    return worker_filter{std::nullopt, o.tags}.matches(w) && fits(w.resources, o.resources);
}

bool alive(worker_status s) { return s != worker_status::error && s != worker_status::stopped; }

}  // namespace

// Local mode decides on its own workers (and the template scaling may add),
// under the lock; distributed mode on the live workers in the shared
// registry, read without the lock. No live worker registered anywhere: the
// task is admitted (a node may come).
void coordinator_impl::require_placeable(const task_options& o) {
    if (o.resources.empty() || opt.placement_wait.count() > 0) return;
    bool placeable = true;
    if (!opt.transport) {
        std::lock_guard lk(mu);
        placeable = could_ever_place(o.tags, o.resources);
    } else {
        const auto all = registry->list({});
        const bool any_live = std::any_of(all.begin(), all.end(), [](const auto& w) { return alive(w.status); });
        placeable = !any_live || std::any_of(all.begin(), all.end(), [&](const auto& w) {
            return alive(w.status) && registered_fit(w, o);
        });
    }
    if (!placeable)
        throw unplaceable_error("orchcore: unplaceable: no registered worker could ever hold resources " +
                                to_string(o.resources) +
                                (o.tags.empty() ? std::string{} : " with the task's tags"));
}

}  // namespace orchcore::detail
