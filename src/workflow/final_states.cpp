#include "runner_impl.hpp"

#include <algorithm>

namespace orchcore::workflow {

namespace {

// What a final state holds beyond its shared graph: a progress per task and its texts.
std::size_t bytes_of(const final_state& f) {
    const auto& s = f.state;
    std::size_t n = 0;
    for (std::size_t i = 0; i < s.graph().size(); ++i) {
        const auto& p = s.task_at(i);
        n += sizeof(task_progress) + p.result.size() + p.reason.size() + p.cause.size();
    }
    return n;
}

}  // namespace

void final_states::put(std::string id, std::shared_ptr<const final_state> s) {
    const auto bytes = bytes_of(*s);
    std::lock_guard lk(m_);
    if (const auto it = std::find_if(entries_.begin(), entries_.end(), [&](const entry& e) { return e.id == id; });
        it != entries_.end())
        erase_at(it);
    if (bytes > max_bytes) return;
    while (!entries_.empty() && (entries_.size() >= capacity || bytes_ + bytes > max_bytes)) erase_at(entries_.begin());
    bytes_ += bytes;
    entries_.push_back({std::move(id), std::move(s), bytes});
}

std::shared_ptr<const final_state> final_states::find(std::string_view id) const {
    std::lock_guard lk(m_);
    const auto it = std::find_if(entries_.begin(), entries_.end(), [&](const entry& e) { return e.id == id; });
    return it == entries_.end() ? nullptr : it->state;
}

void final_states::erase(std::string_view id, const final_state* which) {
    std::lock_guard lk(m_);
    const auto it = std::find_if(entries_.begin(), entries_.end(), [&](const entry& e) { return e.id == id; });
    if (it != entries_.end() && (which == nullptr || it->state.get() == which)) erase_at(it);
}

std::vector<std::pair<std::string, time_point>> final_states::entries() const {
    std::lock_guard lk(m_);
    std::vector<std::pair<std::string, time_point>> out;
    out.reserve(entries_.size());
    for (const auto& e : entries_) out.emplace_back(e.id, e.state->driver_created);
    return out;
}

void final_states::erase_at(std::deque<entry>::iterator it) {
    bytes_ -= it->bytes;
    entries_.erase(it);
}

}  // namespace orchcore::workflow
