// task_handle: waits and results of one task.
#include "coordinator_impl.hpp"

namespace orchcore {

// ------------------------------------------------------------------ handle

namespace detail {
// A finished task's result, or the exception get() throws for it.
std::string result_or_throw(task_record r);
}  // namespace detail

std::optional<task_record> task_handle::wait_for(std::chrono::milliseconds timeout) const {
    if (!owner_) throw error(errc::not_found, "orchcore: empty task_handle");
    return owner_->wait_for(id_, timeout);
}

std::optional<task_record> task_handle::wait_until(std::chrono::steady_clock::time_point deadline) const {
    if (!owner_) throw error(errc::not_found, "orchcore: empty task_handle");
    return owner_->wait_until(id_, deadline);
}

asio::awaitable<std::optional<task_record>> task_handle::async_wait_for(std::chrono::milliseconds timeout) const {
    if (!owner_) throw error(errc::not_found, "orchcore: empty task_handle");
    co_return co_await owner_->async_wait_for(id_, timeout);
}

asio::awaitable<std::optional<task_record>> task_handle::async_wait_until(
    std::chrono::steady_clock::time_point deadline) const {
    if (!owner_) throw error(errc::not_found, "orchcore: empty task_handle");
    co_return co_await owner_->async_wait_until(id_, deadline);
}

asio::awaitable<std::string> task_handle::async_get() const {
    std::optional<task_record> r;
    while (!r) r = co_await async_wait_for(std::chrono::hours(1));
    co_return detail::result_or_throw(std::move(*r));
}

task_record task_handle::wait() const {
    for (;;) {
        if (auto r = wait_for(std::chrono::hours(1))) return std::move(*r);
    }
}

std::string task_handle::get() const { return detail::result_or_throw(wait()); }

namespace detail {
std::string result_or_throw(task_record r) {
    switch (r.status) {
        case task_status::completed: return r.result;
        case task_status::cancelled: throw cancelled_error("orchcore: task " + r.id + " was cancelled: " + r.error);
        default: {
            std::string what = "orchcore: task " + r.id + " " + std::string(to_string(r.status)) + ": " + r.error;
            throw task_failed_error(std::move(r), what);
        }
    }
}
}  // namespace detail

}  // namespace orchcore
