// worker_status: the lifecycle state of a worker, shared by the worker pool
// (worker_pool.hpp) and the worker registry (worker_registry.hpp).
#pragma once

#include <string_view>

namespace orchcore {

enum class worker_status { idle, busy, draining, stopped, error };

constexpr std::string_view to_string(worker_status s) noexcept {
    switch (s) {
        case worker_status::idle: return "idle";
        case worker_status::busy: return "busy";
        case worker_status::draining: return "draining";
        case worker_status::stopped: return "stopped";
        case worker_status::error: return "error";
    }
    return "unknown";
}

}  // namespace orchcore
