// task_context: what a handler sees of its attempt.
#include "coordinator_impl.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cmath>

namespace orchcore {

// ------------------------------------------------------------------ context

const std::string& task_context::id() const noexcept { return s_->id; }
const std::string& task_context::type() const noexcept { return s_->type; }
const std::string& task_context::payload() const noexcept { return s_->payload; }
const std::map<std::string, std::string>& task_context::metadata() const noexcept { return s_->metadata; }
std::uint32_t task_context::attempt() const noexcept { return s_->attempt; }
std::uint32_t task_context::turn() const noexcept { return s_->turn; }
const std::string& task_context::worker_id() const noexcept { return s_->worker_id; }
std::uint64_t task_context::fencing_token() const noexcept { return s_->token; }
bool task_context::cancellation_requested() const noexcept { return s_->cancel.load(); }

void task_context::throw_if_cancelled() const {
    if (cancellation_requested()) throw cancelled_error("orchcore: task " + s_->id + " was cancelled");
}

namespace {
// Lock held. Takes the mailbox if this attempt still holds the task.
// Lock held. Counts a steering read by an attempt that no longer holds its
// task and returns the error to throw.
error stale_read(detail::coordinator_impl& c, const detail::attempt_state& a) {
    c.refuse_stale(a.id, a.worker_id, a.attempt, "steering read of a fenced attempt");
    return error(errc::stale_token, "orchcore: attempt " + std::to_string(a.attempt) + " of task " + a.id +
                                        " no longer holds it (stale fencing token)");
}

std::vector<std::string> drain_mailbox(detail::coordinator_impl& c, detail::attempt_state& a) {
    auto it = c.tasks.find(a.id);
    if (it == c.tasks.end() || it->second.attempt.get() != &a) throw stale_read(c, a);
    std::vector<std::string> out;
    out.swap(it->second.mailbox);
    return out;
}

// Distributed mode: the mailbox is the transport's, shared by every node;
// the take is fenced by the attempt's lease token in the transport.
std::vector<std::string> take_remote(detail::coordinator_impl& c, detail::attempt_state& a) {
    {
        std::lock_guard lk(c.mu);
        auto it = c.tasks.find(a.id);
        if (it == c.tasks.end() || it->second.attempt.get() != &a) throw stale_read(c, a);
    }
    auto msgs = c.tp->take_messages(a.id, a.token);
    if (!msgs) {
        std::lock_guard lk(c.mu);
        throw stale_read(c, a);
    }
    return std::move(*msgs);
}

// How long a distributed receive_for sleeps between looks at the shared
// mailbox (a steer() on this node wakes it at once).
std::chrono::milliseconds next_poll(std::chrono::milliseconds& backoff) {
    const auto b = backoff;
    backoff = std::min(backoff * 2, std::chrono::milliseconds(50));
    return b;
}
}  // namespace

std::vector<std::string> task_context::receive() {
    if (s_->c->dist()) return take_remote(*s_->c, *s_);
    std::lock_guard lk(s_->c->mu);
    return drain_mailbox(*s_->c, *s_);
}

std::vector<std::string> task_context::receive_for(std::chrono::milliseconds timeout) {
    auto& c = *s_->c;
    const auto deadline = detail::deadline_after(timeout);
    if (c.dist()) {
        auto backoff = std::chrono::milliseconds(1);
        for (;;) {
            auto msgs = take_remote(c, *s_);
            const auto now = detail::steady::now();
            if (!msgs.empty() || s_->cancel.load() || now >= deadline) return msgs;
            std::unique_lock lk(c.mu);
            s_->mailbox_cv.wait_until(lk, std::min(deadline, now + next_poll(backoff)));
        }
    }
    std::unique_lock lk(c.mu);
    for (;;) {
        auto msgs = drain_mailbox(c, *s_);
        if (!msgs.empty() || s_->cancel.load()) return msgs;
        if (s_->mailbox_cv.wait_until(lk, deadline) == std::cv_status::timeout) return drain_mailbox(c, *s_);
    }
}

asio::awaitable<std::vector<std::string>> task_context::async_receive_for(std::chrono::milliseconds timeout) {
    auto s = s_;
    auto& c = *s->c;
    const auto deadline = detail::deadline_after(timeout);
    asio::steady_timer timer(co_await asio::this_coro::executor);
    auto backoff = std::chrono::milliseconds(1);
    for (;;) {
        auto wake_at = deadline;
        if (c.dist()) {
            auto msgs = take_remote(c, *s);
            const auto now = detail::steady::now();
            if (!msgs.empty() || s->cancel.load() || now >= deadline) co_return msgs;
            wake_at = std::min(deadline, now + next_poll(backoff));
            std::lock_guard lk(c.mu);
            s->waiting_timer = &timer;
        } else {
            std::lock_guard lk(c.mu);
            auto msgs = drain_mailbox(c, *s);
            if (!msgs.empty() || s->cancel.load() || detail::steady::now() >= deadline) co_return msgs;
            s->waiting_timer = &timer;
        }
        timer.expires_at(wake_at);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        std::lock_guard lk(c.mu);
        s->waiting_timer = nullptr;
    }
}

void task_context::report_progress(double fraction, std::string message) {
    if (std::isnan(fraction)) throw invalid_argument("progress fraction", "nan", "must be a number within [0, 1]");
    auto& c = *s_->c;
    detail::effects fx;
    {
        std::lock_guard lk(c.mu);
        auto it = c.tasks.find(s_->id);
        if (it == c.tasks.end() || it->second.attempt != s_) {
            // A fenced attempt's progress is ignored (counted and announced).
            c.refuse_stale(s_->id, s_->worker_id, s_->attempt, "progress of a fenced attempt");
        } else {
            it->second.rec.progress = std::clamp(fraction, 0.0, 1.0);
            it->second.rec.progress_message = message;
            // Distributed mode: written with the next lease renewal.
            if (c.dist()) it->second.progress_dirty = true;
            else c.persist(it->second, task_status::running);
            c.emit_task(event_kind::task_progress, it->second, message);
        }
    }
    c.apply(fx);
}

void task_context::continue_later(std::chrono::milliseconds delay) {
    s_->continue_requested = true;
    s_->continue_delay = delay;
}

}  // namespace orchcore
