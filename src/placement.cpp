#include <orchcore/placement.hpp>

#include <orchcore/error.hpp>

#include <tuple>

namespace orchcore {

void placement_table::add_worker(const std::string& worker, resource_inventory inventory) {
    if (worker.empty()) throw invalid_argument("worker", "\"\"", "a worker id must not be empty");
    if (workers_.contains(worker)) throw invalid_argument("worker", worker, "already registered");
    workers_.emplace(worker, worker_resources(std::move(inventory)));
}

bool placement_table::remove_worker(std::string_view worker) {
    const auto it = workers_.find(worker);
    if (it == workers_.end()) return false;
    workers_.erase(it);
    std::erase_if(sessions_, [&](const auto& entry) { return entry.second == worker; });
    return true;
}

bool placement_table::has_worker(std::string_view worker) const { return workers_.find(worker) != workers_.end(); }

const worker_resources* placement_table::worker(std::string_view worker) const {
    const auto it = workers_.find(worker);
    return it == workers_.end() ? nullptr : &it->second;
}

std::optional<std::string> placement_table::session_worker(std::string_view session) const {
    const auto it = sessions_.find(session);
    if (it == sessions_.end()) return std::nullopt;
    return it->second;
}

std::optional<std::string> placement_table::best_fit(const resource_request& request) const {
    const std::string* best = nullptr;
    std::tuple<std::size_t, std::uint64_t, std::uint64_t> best_key{};
    for (const auto& [id, w] : workers_) {
        if (!w.can_hold(request)) continue;
        const auto spare_gpus = w.inventory().gpus.size() - w.held_gpus() - request.gpu.count;
        const auto spare_memory = w.inventory().memory_mb - w.held_memory_mb() - request.memory_mb;
        const auto spare_cpu = w.inventory().cpu_millis - w.held_cpu_millis() - request.cpu_millis;
        const std::tuple key{spare_gpus, spare_memory, spare_cpu};
        // Workers are visited in id order, so ties go to the smallest id.
        if (best == nullptr || key < best_key) {
            best = &id;
            best_key = key;
        }
    }
    if (best == nullptr) return std::nullopt;
    return *best;
}

std::optional<placement> placement_table::place(const resource_request& request, std::string_view session) {
    std::optional<std::string> target;
    const auto bound = session.empty() ? sessions_.end() : sessions_.find(session);
    if (bound != sessions_.end()) {
        const auto w = workers_.find(bound->second);
        if (w != workers_.end() && w->second.can_hold(request)) target = bound->second;
    }
    if (!target) target = best_fit(request);
    if (!target) return std::nullopt;
    auto& resources = workers_.find(*target)->second;
    const auto id = resources.hold(request);
    if (!id) return std::nullopt;  // unreachable: can_hold() held above
    if (!session.empty() && bound == sessions_.end()) sessions_.emplace(std::string(session), *target);
    return placement{*target, *id};
}

bool placement_table::release(const placement& where) {
    const auto it = workers_.find(where.worker);
    if (it == workers_.end()) return false;
    return it->second.release(where.hold).has_value();
}

bool placement_table::could_ever_place(const resource_request& request) const {
    for (const auto& [id, w] : workers_) {
        if (w.could_ever_hold(request)) return true;
    }
    return false;
}

}  // namespace orchcore
