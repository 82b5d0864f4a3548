// One attempt of a task on a worker: its state shared with the handler
// (task_context), how it is launched, and what it returned.
#pragma once

#include "counted_cv.hpp"
#include "shared_text.hpp"

#include <orchcore/coordinator.hpp>
#include <orchcore/worker_pool.hpp>

#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace orchcore {
namespace asio = boost::asio;
}  // namespace orchcore

namespace orchcore::detail {

struct coordinator_impl;

struct attempt_state {
    coordinator_impl* c = nullptr;
    // The same coordinator, for a task_context kept past its handler (a
    // copy): once the coordinator is gone, its calls are refused.
    std::weak_ptr<coordinator_impl> owner;
    // Coroutine attempts on an executor of the user's: the coordinator's
    // state stays alive until the coroutine is done with it, since stop()
    // cannot wait for an executor that may no longer be run. Reset when the
    // attempt ends (no cycle outlives stop(), which drops every attempt).
    std::shared_ptr<coordinator_impl> keep_alive;
    std::string id, type, worker_id;
    shared_text payload;  ///< shared with the task's record
    // The task's metadata block, shared with its record (never changed in place).
    std::shared_ptr<const std::map<std::string, std::string>> metadata;
    std::uint32_t attempt = 0, turn = 0;
    std::uint64_t token = 0;
    hold_id hold = 0;  // its resources on its worker (worker_entry::res); 0: none (mu)
    std::atomic<bool> cancel{false};
    // Written and read by the handler's own thread (or strand) only.
    bool continue_requested = false;
    std::chrono::milliseconds continue_delay{0};
    // Guarded by the coordinator mutex.
    lazy_counted_cv mailbox_cv;
    asio::steady_timer* waiting_timer = nullptr;
    // Async handlers: their strand and cancellation signal.
    std::optional<asio::strand<asio::any_io_executor>> strand;
    asio::cancellation_signal signal;
    // Plain handlers: the handler, kept alive for the attempt.
    std::shared_ptr<const task_handler> sync_handler;
    // Set at launch, read by the thread that ends the attempt: a plain
    // handler on a worker's own threads, so that thread is one of the
    // worker's task slots, and the worker's spare thread carries its
    // heartbeats whatever the slot waits for.
    bool ends_on_slot = false;
};

/// The attempt whose plain handler runs on this thread, while it runs
/// (null elsewhere): a handler's blocking wait for its own task is refused.
const attempt_state*& attempt_on_this_thread() noexcept;

/// Marks this thread as running `a`'s handler while it lives.
class running_attempt {
public:
    explicit running_attempt(const attempt_state* a) noexcept : outer_(attempt_on_this_thread()) {
        attempt_on_this_thread() = a;
    }
    ~running_attempt() { attempt_on_this_thread() = outer_; }
    running_attempt(const running_attempt&) = delete;
    running_attempt& operator=(const running_attempt&) = delete;

private:
    const attempt_state* outer_;
};

struct launch {
    std::shared_ptr<worker> w;
    std::shared_ptr<attempt_state> a;
    std::shared_ptr<const task_handler> sync;
    std::shared_ptr<const async_task_handler> async;
};

struct outcome {
    enum kind_t { success, failure } kind = success;
    std::string result;
    std::string error;
    bool retryable = true;
};

}  // namespace orchcore::detail
