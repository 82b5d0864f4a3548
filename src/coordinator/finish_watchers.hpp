// Local mode: the callers of coordinator::watch_finished, told the ids of
// the tasks that ended (outside the lock, after the change's events went
// out). Apart from the event bus, so that a watcher costs only the ids of
// tasks that end: no event is built for it, none for tasks that start.
#pragma once

#include <orchcore/transport.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

namespace orchcore::detail {

class finish_watchers {
public:
    using callback = std::function<void(std::span<const std::string>)>;

    /// Calls `f` with the ids ended from now on (those told together in
    /// one call), until the watch is destroyed.
    std::unique_ptr<transport_watch> add(callback f);
    /// Lock held or not: whether anyone watches (ids are collected only then).
    bool any() const noexcept { return state_->count.load(std::memory_order_relaxed) != 0; }
    /// No lock held. A watcher's exception is caught and does not reach the others.
    void notify(const std::vector<std::string>& ids) const;

private:
    struct state {
        std::mutex m;
        std::uint64_t next = 0;
        // Copy-on-write: notify takes a snapshot, so a watcher may be
        // removed from inside a callback.
        std::shared_ptr<const std::map<std::uint64_t, std::shared_ptr<const callback>>> watchers =
            std::make_shared<const std::map<std::uint64_t, std::shared_ptr<const callback>>>();
        std::atomic<std::size_t> count{0};
        void remove(std::uint64_t id);
    };
    class watch;
    std::shared_ptr<state> state_ = std::make_shared<state>();
};

}  // namespace orchcore::detail
