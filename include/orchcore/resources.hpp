// Resources: what a worker has (resource_inventory), what a task asks for
// (resource_request), whether one fits the other, and holding/releasing
// resources on one worker (worker_resources). Pure values, no threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace orchcore {

/// One GPU of a worker.
struct gpu_device {
    std::string type{};          ///< e.g. "a100"; matched exactly
    std::uint64_t memory_mb = 0;

    friend bool operator==(const gpu_device&, const gpu_device&) = default;
};

/// What a worker has (or has free). CPU in millicores (1000 = one core).
struct resource_inventory {
    std::uint64_t cpu_millis = 0;
    std::uint64_t memory_mb = 0;
    std::vector<gpu_device> gpus{};
    std::vector<std::string> labels{};  ///< e.g. "zone=eu", "ssd"

    friend bool operator==(const resource_inventory&, const resource_inventory&) = default;
};

/// GPUs a task asks for: `count` GPUs, each of exactly `type` (empty: any
/// type) with at least `memory_mb` of memory.
struct gpu_request {
    std::uint32_t count = 0;
    std::string type{};
    std::uint64_t memory_mb = 0;

    friend bool operator==(const gpu_request&, const gpu_request&) = default;
};

/// What a task asks for. Every label must be present on the worker.
struct resource_request {
    std::uint64_t cpu_millis = 0;
    std::uint64_t memory_mb = 0;
    gpu_request gpu{};
    std::vector<std::string> labels{};

    /// True if it asks for nothing: such a request fits every worker.
    bool empty() const noexcept {
        return cpu_millis == 0 && memory_mb == 0 && gpu.count == 0 && labels.empty();
    }

    friend bool operator==(const resource_request&, const resource_request&) = default;
};

/// The request in words, for errors and events, e.g.
/// `cpu_millis=2000 memory_mb=0 gpu=2x"a100">=0MB labels=[]`.
std::string to_string(const resource_request& request);

/// Throws invalid_argument naming `field` (e.g. "resources.labels[0]") for
/// an empty label, a GPU type or memory asked for with gpu.count 0, or a
/// GPU count above 1024.
void validate(const resource_request& request, std::string_view field);
/// Throws invalid_argument naming `field` for an empty label or GPU type,
/// or more than 1024 GPUs.
void validate(const resource_inventory& inventory, std::string_view field);

/// True if `request` fits into `free`: enough CPU and memory, `gpu.count`
/// GPUs whose type equals `gpu.type` exactly (any type when it is empty) and
/// whose memory is at least `gpu.memory_mb`, and every requested label.
bool fits(const resource_inventory& free, const resource_request& request);

/// What one hold took from a worker: the GPUs by index into its inventory.
struct allocation {
    std::uint64_t cpu_millis = 0;
    std::uint64_t memory_mb = 0;
    std::vector<std::size_t> gpu_indices{};

    friend bool operator==(const allocation&, const allocation&) = default;
};

using hold_id = std::uint64_t;

/// One worker's inventory and what is held on it. Held resources never
/// exceed the inventory; releasing a hold returns exactly what it took.
class worker_resources {
public:
    explicit worker_resources(resource_inventory inventory);

    const resource_inventory& inventory() const noexcept { return inventory_; }
    /// What is free now (GPUs not held; labels as in the inventory).
    resource_inventory free() const;
    /// True if the request fits into what is free now.
    bool can_hold(const resource_request& request) const;
    /// True if the request fits into the whole inventory (when nothing is held).
    bool could_ever_hold(const resource_request& request) const;

    /// Holds the request's resources; empty if they are not free. Among the
    /// matching free GPUs, those with the least memory are taken.
    std::optional<hold_id> hold(const resource_request& request);
    /// Releases a hold and returns what it took; empty for an unknown id
    /// (never held here, or already released).
    std::optional<allocation> release(hold_id id);
    /// The allocation of a live hold, empty for an unknown id.
    std::optional<allocation> held(hold_id id) const;

    std::uint64_t held_cpu_millis() const noexcept { return held_cpu_; }
    std::uint64_t held_memory_mb() const noexcept { return held_memory_; }
    std::size_t held_gpus() const noexcept;
    std::size_t hold_count() const noexcept { return holds_.size(); }

private:
    std::optional<std::vector<std::size_t>> pick_gpus(const gpu_request& request) const;

    resource_inventory inventory_;
    std::vector<bool> gpu_held_;
    std::uint64_t held_cpu_ = 0;
    std::uint64_t held_memory_ = 0;
    std::map<hold_id, allocation> holds_;
    hold_id next_id_ = 1;
};

}  // namespace orchcore
