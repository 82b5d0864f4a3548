#include "session_bindings.hpp"

#include <iterator>

namespace orchcore::detail {

namespace {
// Bindings looked at per trim beyond the excess: enough to pass over
// sessions still running without scanning the whole map under the lock.
constexpr std::size_t look_ahead = 16;
}  // namespace

const std::string* session_bindings::find(std::string_view session) {
    const auto it = index_.find(session);
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return &it->second->second;
}

void session_bindings::bind(std::string_view session, const std::string& worker, const in_use_fn& in_use) {
    if (index_.contains(session)) return;
    order_.emplace_front(std::string(session), worker);
    index_.emplace(order_.front().first, order_.begin());
    trim(order_.begin(), in_use);
}

// Walks from the least recently used binding towards `newest` (never
// dropped: its task is starting); one in use moves to the front.
void session_bindings::trim(std::list<entry>::iterator newest, const in_use_fn& in_use) {
    if (order_.size() <= limit_) return;
    std::size_t looks = order_.size() - limit_ + look_ahead;
    auto it = std::prev(order_.end());
    while (order_.size() > limit_ && looks-- > 0 && it != newest) {
        const auto prev = std::prev(it);
        if (in_use(it->first, it->second)) {
            order_.splice(order_.begin(), order_, it);
        } else {
            index_.erase(it->first);
            order_.erase(it);
        }
        it = prev;
    }
}

void session_bindings::forget_worker(std::string_view worker) {
    for (auto it = order_.begin(); it != order_.end();) {
        if (it->second != worker) {
            ++it;
            continue;
        }
        index_.erase(it->first);
        it = order_.erase(it);
    }
}

}  // namespace orchcore::detail
