#include <orchcore/workflow/resources.hpp>

#include <algorithm>
#include <numeric>

namespace orchcore::workflow {

namespace {

bool gpu_matches(const gpu_device& gpu, const gpu_request& request) {
    return (request.type.empty() || gpu.type == request.type) && gpu.memory_mb >= request.memory_mb;
}

bool has_labels(const std::vector<std::string>& have, const std::vector<std::string>& want) {
    return std::all_of(want.begin(), want.end(), [&](const std::string& label) {
        return std::find(have.begin(), have.end(), label) != have.end();
    });
}

}  // namespace

bool fits(const resource_inventory& free, const resource_request& request) {
    if (request.cpu_millis > free.cpu_millis || request.memory_mb > free.memory_mb) return false;
    if (!has_labels(free.labels, request.labels)) return false;
    const auto matching = std::count_if(free.gpus.begin(), free.gpus.end(),
                                        [&](const gpu_device& gpu) { return gpu_matches(gpu, request.gpu); });
    return static_cast<std::uint64_t>(matching) >= request.gpu.count;
}

worker_resources::worker_resources(resource_inventory inventory)
    : inventory_(std::move(inventory)), gpu_held_(inventory_.gpus.size(), false) {}

resource_inventory worker_resources::free() const {
    resource_inventory out;
    out.cpu_millis = inventory_.cpu_millis - held_cpu_;
    out.memory_mb = inventory_.memory_mb - held_memory_;
    for (std::size_t i = 0; i < inventory_.gpus.size(); ++i) {
        if (!gpu_held_[i]) out.gpus.push_back(inventory_.gpus[i]);
    }
    out.labels = inventory_.labels;
    return out;
}

bool worker_resources::can_hold(const resource_request& request) const {
    return request.cpu_millis <= inventory_.cpu_millis - held_cpu_ &&
           request.memory_mb <= inventory_.memory_mb - held_memory_ &&
           has_labels(inventory_.labels, request.labels) && pick_gpus(request.gpu).has_value();
}

bool worker_resources::could_ever_hold(const resource_request& request) const { return fits(inventory_, request); }

std::optional<std::vector<std::size_t>> worker_resources::pick_gpus(const gpu_request& request) const {
    std::vector<std::size_t> candidates;
    for (std::size_t i = 0; i < inventory_.gpus.size(); ++i) {
        if (!gpu_held_[i] && gpu_matches(inventory_.gpus[i], request)) candidates.push_back(i);
    }
    if (candidates.size() < request.count) return std::nullopt;
    // Smallest sufficient GPUs first: larger ones stay free for larger requests.
    std::stable_sort(candidates.begin(), candidates.end(), [&](std::size_t a, std::size_t b) {
        return inventory_.gpus[a].memory_mb < inventory_.gpus[b].memory_mb;
    });
    candidates.resize(request.count);
    std::sort(candidates.begin(), candidates.end());
    return candidates;
}

std::optional<hold_id> worker_resources::hold(const resource_request& request) {
    if (!can_hold(request)) return std::nullopt;
    allocation a{request.cpu_millis, request.memory_mb, *pick_gpus(request.gpu)};
    for (const auto i : a.gpu_indices) gpu_held_[i] = true;
    held_cpu_ += a.cpu_millis;
    held_memory_ += a.memory_mb;
    const auto id = next_id_++;
    holds_.emplace(id, std::move(a));
    return id;
}

std::optional<allocation> worker_resources::release(hold_id id) {
    const auto it = holds_.find(id);
    if (it == holds_.end()) return std::nullopt;
    allocation a = std::move(it->second);
    holds_.erase(it);
    for (const auto i : a.gpu_indices) gpu_held_[i] = false;
    held_cpu_ -= a.cpu_millis;
    held_memory_ -= a.memory_mb;
    return a;
}

std::optional<allocation> worker_resources::held(hold_id id) const {
    const auto it = holds_.find(id);
    if (it == holds_.end()) return std::nullopt;
    return it->second;
}

std::size_t worker_resources::held_gpus() const noexcept {
    return static_cast<std::size_t>(std::count(gpu_held_.begin(), gpu_held_.end(), true));
}

}  // namespace orchcore::workflow
