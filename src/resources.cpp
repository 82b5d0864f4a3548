#include <orchcore/resources.hpp>

#include <orchcore/error.hpp>

#include <algorithm>
#include <numeric>

namespace orchcore {

namespace {

bool gpu_matches(const gpu_device& gpu, const gpu_request& request) {
    return (request.type.empty() || gpu.type == request.type) && gpu.memory_mb >= request.memory_mb;
}

bool has_labels(const std::vector<std::string>& have, const std::vector<std::string>& want) {
    return std::all_of(want.begin(), want.end(), [&](const std::string& label) {
        return std::find(have.begin(), have.end(), label) != have.end();
    });
}

void require_labels(const std::vector<std::string>& labels, std::string_view field) {
    for (std::size_t i = 0; i < labels.size(); ++i)
        if (labels[i].empty())
            throw invalid_argument(std::string(field) + ".labels[" + std::to_string(i) + "]", "\"\"",
                                   "a label must not be empty");
}

constexpr std::uint64_t max_gpus = 1024;

}  // namespace

std::string to_string(const resource_request& r) {
    std::string out = "cpu_millis=" + std::to_string(r.cpu_millis) + " memory_mb=" + std::to_string(r.memory_mb) +
                      " gpu=" + std::to_string(r.gpu.count) + "x\"" + r.gpu.type + "\">=" +
                      std::to_string(r.gpu.memory_mb) + "MB labels=[";
    for (std::size_t i = 0; i < r.labels.size(); ++i) out += (i ? ",\"" : "\"") + r.labels[i] + "\"";
    return out + "]";
}

void validate(const resource_request& r, std::string_view field) {
    const std::string f(field);
    require_labels(r.labels, field);
    if (r.gpu.count > max_gpus)
        throw invalid_argument(f + ".gpu.count", std::to_string(r.gpu.count), "must be at most 1024");
    if (r.gpu.count == 0 && !r.gpu.type.empty())
        throw invalid_argument(f + ".gpu.type", "\"" + r.gpu.type + "\"", "needs gpu.count >= 1");
    if (r.gpu.count == 0 && r.gpu.memory_mb != 0)
        throw invalid_argument(f + ".gpu.memory_mb", std::to_string(r.gpu.memory_mb), "needs gpu.count >= 1");
}

void validate(const resource_inventory& inv, std::string_view field) {
    const std::string f(field);
    require_labels(inv.labels, field);
    if (inv.gpus.size() > max_gpus)
        throw invalid_argument(f + ".gpus", std::to_string(inv.gpus.size()) + " GPUs", "must be at most 1024");
    for (std::size_t i = 0; i < inv.gpus.size(); ++i)
        if (inv.gpus[i].type.empty())
            throw invalid_argument(f + ".gpus[" + std::to_string(i) + "].type", "\"\"",
                                   "a GPU type must not be empty");
}

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

}  // namespace orchcore
