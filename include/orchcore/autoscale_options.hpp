// Auto-scaling settings: worker bounds, the depth thresholds of the
// hysteresis band, the samples each direction needs, step and cooldown
// (autoscaler.hpp decides with them).
#pragma once

#include <orchcore/error.hpp>

#include <chrono>
#include <cstddef>
#include <string>

namespace orchcore {

/// Most workers a pool or a coordinator may be asked for (pool_options and
/// autoscale_options::max_workers): each worker has threads of its own, so
/// a larger count is refused with invalid_argument instead of creating
/// threads until the system runs out.
inline constexpr std::size_t max_worker_count = 4096;

struct autoscale_options {
    std::size_t min_workers = 1;
    std::size_t max_workers = 4;
    std::size_t scale_up_depth = 8;    ///< depth above this counts towards scaling up
    std::size_t scale_down_depth = 1;  ///< depth below this counts towards scaling down
    unsigned up_after = 2;             ///< consecutive samples needed to scale up
    unsigned down_after = 3;           ///< consecutive samples needed to scale down
    std::size_t step = 1;              ///< workers added or removed per decision
    std::chrono::milliseconds cooldown{2'000};

    void validate() const {
        if (min_workers > max_workers)
            throw invalid_argument("autoscale.min_workers", std::to_string(min_workers),
                                   "must be <= max_workers (" + std::to_string(max_workers) + ")");
        if (max_workers == 0) throw invalid_argument("autoscale.max_workers", "0", "must be at least 1");
        if (max_workers > max_worker_count)
            throw invalid_argument("autoscale.max_workers", std::to_string(max_workers),
                                   "must be at most " + std::to_string(max_worker_count));
        if (scale_down_depth >= scale_up_depth)
            throw invalid_argument("autoscale.scale_down_depth", std::to_string(scale_down_depth),
                                   "must be < scale_up_depth (" + std::to_string(scale_up_depth) +
                                       ") so that there is a hysteresis band");
        if (step == 0) throw invalid_argument("autoscale.step", "0", "must be at least 1");
        if (up_after == 0) throw invalid_argument("autoscale.up_after", "0", "must be at least 1");
        if (down_after == 0) throw invalid_argument("autoscale.down_after", "0", "must be at least 1");
        if (cooldown.count() < 0)
            throw invalid_argument("autoscale.cooldown", std::to_string(cooldown.count()) + "ms", "must be >= 0");
    }
};

}  // namespace orchcore
