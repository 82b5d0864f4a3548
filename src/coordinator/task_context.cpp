// task_context: what a handler sees of its attempt.
#include "coordinator_impl.hpp"

#include <algorithm>
#include <cmath>

namespace orchcore {

// ------------------------------------------------------------------ context

const std::string& task_context::id() const noexcept { return s_->id; }
const std::string& task_context::type() const noexcept { return s_->type; }
const std::string& task_context::payload() const noexcept { return s_->payload; }
const std::map<std::string, std::string>& task_context::metadata() const noexcept {
    return detail::metadata_of(s_->metadata);
}
std::uint32_t task_context::attempt() const noexcept { return s_->attempt; }
std::uint32_t task_context::turn() const noexcept { return s_->turn; }
const std::string& task_context::worker_id() const noexcept { return s_->worker_id; }
std::uint64_t task_context::fencing_token() const noexcept { return s_->token; }
bool task_context::cancellation_requested() const noexcept { return s_->cancel.load(); }

void task_context::throw_if_cancelled() const {
    if (cancellation_requested()) throw cancelled_error("orchcore: task " + s_->id + " was cancelled");
}

namespace {

// The attempt's coordinator, held for one call: a context copied out of its
// handler and used after the coordinator was destroyed is refused (its
// attempt holds nothing any more) instead of reaching freed state.
std::shared_ptr<detail::coordinator_impl> coordinator_of(const detail::attempt_state& a) {
    auto c = a.owner.lock();
    if (!c)
        throw error(errc::stale_token, "orchcore: attempt " + std::to_string(a.attempt) + " of task " + a.id +
                                           " no longer holds it (its coordinator is gone)");
    return c;
}

}  // namespace

std::vector<std::string> task_context::receive() { return coordinator_of(*s_)->eng->receive(*s_); }

std::vector<std::string> task_context::receive_for(std::chrono::milliseconds timeout) {
    return coordinator_of(*s_)->eng->receive_for(*s_, detail::deadline_after(timeout));
}

asio::awaitable<std::vector<std::string>> task_context::async_receive_for(std::chrono::milliseconds timeout) {
    auto s = s_;  // the attempt outlives this frame's suspension
    // Checked, not held across the suspension: a running coroutine's
    // coordinator outlives it (stop() ends it, or keep_alive holds it).
    (void)coordinator_of(*s);
    co_return co_await s->c->eng->async_receive_for(s, detail::deadline_after(timeout));
}

void task_context::report_progress(double fraction, std::string message) {
    if (std::isnan(fraction)) throw invalid_argument("progress fraction", "nan", "must be a number within [0, 1]");
    const auto held = coordinator_of(*s_);
    auto& c = *held;
    detail::effects fx;
    {
        std::lock_guard lk(c.mu);
        auto it = c.tasks.find(s_->id);
        if (it == c.tasks.end() || it->second.attempt != s_) {
            // A fenced attempt's progress is ignored (counted and announced).
            c.refuse_stale(s_->id, s_->worker_id, s_->attempt, "progress of a fenced attempt");
        } else {
            it->second.rec.progress = std::clamp(fraction, 0.0, 1.0);
            it->second.rec.set_progress_message(message);
            c.eng->progress_changed(it->second);
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
