#include "finish_watchers.hpp"

namespace orchcore::detail {

class finish_watchers::watch final : public transport_watch {
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

void finish_watchers::state::remove(std::uint64_t id) {
    std::lock_guard lk(m);
    auto next_map = std::make_shared<std::map<std::uint64_t, std::shared_ptr<const callback>>>(*watchers);
    next_map->erase(id);
    count.store(next_map->size(), std::memory_order_relaxed);
    watchers = std::move(next_map);
}

std::unique_ptr<transport_watch> finish_watchers::add(callback f) {
    std::lock_guard lk(state_->m);
    const auto id = ++state_->next;
    auto next_map = std::make_shared<std::map<std::uint64_t, std::shared_ptr<const callback>>>(*state_->watchers);
    next_map->emplace(id, std::make_shared<const callback>(std::move(f)));
    state_->count.store(next_map->size(), std::memory_order_relaxed);
    state_->watchers = std::move(next_map);
    return std::make_unique<watch>(state_, id);
}

void finish_watchers::notify(const std::vector<std::string>& ids) const {
    if (ids.empty() || !any()) return;
    std::shared_ptr<const std::map<std::uint64_t, std::shared_ptr<const callback>>> snapshot;
    {
        std::lock_guard lk(state_->m);
        snapshot = state_->watchers;
    }
    for (const auto& [id, f] : *snapshot) {
        try {
            (*f)(ids);
        } catch (...) {
            // A watcher's failure is its own: the others are still told.
        }
    }
}

}  // namespace orchcore::detail
