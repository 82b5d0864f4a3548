// Auto-scaling decisions as a pure state machine: feed it a sample of the
// queue depth and the current worker count at each evaluation tick; it says
// whether to scale, to what, and why. No threads, no clock reads.
//
// Anti-flapping: a scale-up needs `up_after` consecutive samples with depth
// above `scale_up_depth`; a scale-down needs `down_after` consecutive samples
// below `scale_down_depth` (which must be lower: the gap is the hysteresis
// band); after any scaling, nothing happens again before `cooldown` passes.
// Below `min_workers` (a worker died) it scales up at once.
#pragma once

#include <orchcore/autoscale_options.hpp>
#include <orchcore/detail/saturating.hpp>
#include <orchcore/error.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace orchcore {

struct scale_decision {
    std::size_t from = 0;
    std::size_t to = 0;
    std::string_view reason{};  ///< static text: "below min_workers", "queue depth high", "queue depth low"
    bool changes() const noexcept { return from != to; }
};

class autoscaler {
public:
    using clock = std::chrono::steady_clock;

    explicit autoscaler(autoscale_options o = {}) : o_(o) { o_.validate(); }

    const autoscale_options& options() const noexcept { return o_; }

    /// One evaluation tick. Returns a decision when the worker count should
    /// change; the caller applies it and the cooldown starts now.
    std::optional<scale_decision> evaluate(std::size_t depth, std::size_t workers, clock::time_point now) {
        if (workers < o_.min_workers) return decide(workers, o_.min_workers, "below min_workers", now);
        if (workers > o_.max_workers) return decide(workers, o_.max_workers, "above max_workers", now);

        up_streak_ = depth > o_.scale_up_depth ? up_streak_ + 1 : 0;
        down_streak_ = depth < o_.scale_down_depth ? down_streak_ + 1 : 0;
        if (last_change_ && now - *last_change_ < detail::saturating_ceil<clock::duration>(o_.cooldown)) return std::nullopt;

        if (up_streak_ >= o_.up_after && workers < o_.max_workers)
            return decide(workers, std::min(o_.max_workers, workers + o_.step), "queue depth high", now);
        if (down_streak_ >= o_.down_after && workers > o_.min_workers)
            return decide(workers, workers - std::min(o_.step, workers - o_.min_workers), "queue depth low", now);
        return std::nullopt;
    }

private:
    scale_decision decide(std::size_t from, std::size_t to, std::string_view why, clock::time_point now) {
        last_change_ = now;
        up_streak_ = down_streak_ = 0;
        return scale_decision{from, to, why};
    }

    autoscale_options o_;
    unsigned up_streak_ = 0;
    unsigned down_streak_ = 0;
    std::optional<clock::time_point> last_change_{};
};

}  // namespace orchcore
