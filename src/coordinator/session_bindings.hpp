// Session affinity bindings: the worker each session key's tasks go to
// while it lives and has room. A session is bound at its first placement
// and forgotten when its worker leaves; beyond a limit, the least recently
// used bindings whose session has no task running are dropped, so sessions
// never used again do not stay for ever (a dropped session's next task
// goes to the best fit and binds there).
#pragma once

#include <cstddef>
#include <functional>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace orchcore::detail {

class session_bindings {
public:
    // Whether a task of `session` runs on worker `worker` now.
    using in_use_fn = std::function<bool(const std::string& session, const std::string& worker)>;

    static constexpr std::size_t default_limit = 4096;

    explicit session_bindings(std::size_t limit = default_limit) : limit_(limit) {}

    // The worker `session` is bound to (nullptr: none); marks it used.
    const std::string* find(std::string_view session);
    // Binds `session` to `worker` unless it is bound; then, while over the
    // limit, drops least recently used bindings not in use (a bounded look
    // from the least recent end: those in use count as used).
    void bind(std::string_view session, const std::string& worker, const in_use_fn& in_use);
    // Drops every binding to `worker`.
    void forget_worker(std::string_view worker);
    std::size_t size() const noexcept { return order_.size(); }

private:
    using entry = std::pair<std::string, std::string>;  // session, worker
    using position = std::list<entry>::iterator;
    void trim(position newest, const in_use_fn& in_use);

    std::size_t limit_;
    std::list<entry> order_;  // most recently used first; nodes never move
    std::unordered_map<std::string_view, position> index_;  // keys view order_'s sessions
};

}  // namespace orchcore::detail
