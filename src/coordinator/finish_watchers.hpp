// Local mode: the callers of coordinator::watch_finished (told the ids of
// the tasks that ended) and of coordinator::watch_outcomes (told how they
// ended), outside the lock, after the change's events went out. Apart from
// the event bus, so that a watcher costs only the tasks that end: no event
// is built for it, none for tasks that start.
#pragma once

#include <orchcore/task.hpp>
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

/// The watchers told batches of `Note`s (one per task that ended).
template <class Note>
class watcher_list {
public:
    using callback = std::function<void(std::span<const Note>)>;

    /// Calls `f` with the notes of the tasks ended from now on (those told
    /// together in one call), until the watch is destroyed.
    std::unique_ptr<transport_watch> add(callback f) {
        std::lock_guard lk(state_->m);
        const auto id = ++state_->next;
        auto next_map = std::make_shared<watcher_map>(*state_->watchers);
        next_map->emplace(id, std::make_shared<const callback>(std::move(f)));
        state_->count.store(next_map->size(), std::memory_order_relaxed);
        state_->watchers = std::move(next_map);
        return std::make_unique<watch>(state_, id);
    }
    /// Lock held or not: whether anyone watches (notes are collected only then).
    bool any() const noexcept { return state_->count.load(std::memory_order_relaxed) != 0; }
    /// No lock held. A watcher's exception is caught and does not reach the others.
    void notify(const std::vector<Note>& notes) const {
        if (notes.empty() || !any()) return;
        std::shared_ptr<const watcher_map> snapshot;
        {
            std::lock_guard lk(state_->m);
            snapshot = state_->watchers;
        }
        for (const auto& [id, f] : *snapshot) {
            try {
                (*f)(notes);
            } catch (...) {
                // A watcher's failure is its own: the others are still told.
            }
        }
    }

private:
    using watcher_map = std::map<std::uint64_t, std::shared_ptr<const callback>>;
    struct state {
        std::mutex m;
        std::uint64_t next = 0;
        // Copy-on-write: notify takes a snapshot, so a watcher may be
        // removed from inside a callback.
        std::shared_ptr<const watcher_map> watchers = std::make_shared<const watcher_map>();
        std::atomic<std::size_t> count{0};
        void remove(std::uint64_t id) {
            std::lock_guard lk(m);
            auto next_map = std::make_shared<watcher_map>(*watchers);
            next_map->erase(id);
            count.store(next_map->size(), std::memory_order_relaxed);
            watchers = std::move(next_map);
        }
    };
    class watch final : public transport_watch {
    public:
        watch(std::weak_ptr<state> s, std::uint64_t id) : s_(std::move(s)), id_(id) {}
        ~watch() override {
            if (auto s = s_.lock()) s->remove(id_);
        }
        watch(const watch&) = delete;
        watch& operator=(const watch&) = delete;

    private:
        std::weak_ptr<state> s_;
        std::uint64_t id_;
    };
    std::shared_ptr<state> state_ = std::make_shared<state>();
};

/// coordinator::watch_finished: the ids of the tasks that ended.
using finish_watchers = watcher_list<std::string>;
/// coordinator::watch_outcomes: the tasks that ended and how.
using outcome_watchers = watcher_list<finished_task>;

}  // namespace orchcore::detail
