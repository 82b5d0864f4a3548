// In-process event bus: every task and worker lifecycle change is published
// here; users subscribe to a channel. The Redis backend mirrors the same
// events on pub/sub channels <prefix>:tasks.events / <prefix>:workers.events.
//
// Delivery from a coordinator: outside its lock (a subscriber may call back
// into the coordinator), one event at a time and in the order the changes
// happened, on the thread that caused the change or on another coordinator
// thread that is already delivering. Subscribers should be quick. An exception thrown by a
// subscriber is caught, counted (handler_errors()) and does not reach the
// publisher or other subscribers.
#pragma once

#include <orchcore/error.hpp>
#include <orchcore/task_status.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace orchcore {

enum class event_channel { tasks, workers };

enum class event_kind {
    // tasks channel
    task_queued, task_started, task_progress, task_completed, task_failed, task_retried, task_cancelled,
    task_timed_out, task_continued, task_requeued, task_rejected, task_expired, stale_token_refused,
    // tasks channel, workflows (orchcore::workflow::workflow_runner): task_id is the workflow's id
    workflow_submitted, workflow_completed, workflow_failed, workflow_cancelled,
    // workers channel
    worker_started, worker_stopped, worker_dead, scaled,
};

constexpr std::string_view to_string(event_kind k) noexcept {
    switch (k) {
        case event_kind::task_queued: return "task.queued";
        case event_kind::task_started: return "task.started";
        case event_kind::task_progress: return "task.progress";
        case event_kind::task_completed: return "task.completed";
        case event_kind::task_failed: return "task.failed";
        case event_kind::task_retried: return "task.retried";
        case event_kind::task_cancelled: return "task.cancelled";
        case event_kind::task_timed_out: return "task.timed_out";
        case event_kind::task_continued: return "task.continued";
        case event_kind::task_requeued: return "task.requeued";
        case event_kind::task_rejected: return "task.rejected";
        case event_kind::task_expired: return "task.expired";
        case event_kind::stale_token_refused: return "task.stale_token_refused";
        case event_kind::workflow_submitted: return "workflow.submitted";
        case event_kind::workflow_completed: return "workflow.completed";
        case event_kind::workflow_failed: return "workflow.failed";
        case event_kind::workflow_cancelled: return "workflow.cancelled";
        case event_kind::worker_started: return "worker.started";
        case event_kind::worker_stopped: return "worker.stopped";
        case event_kind::worker_dead: return "worker.dead";
        case event_kind::scaled: return "worker.scaled";
    }
    return "unknown";
}

constexpr event_channel channel_of(event_kind k) noexcept {
    return k >= event_kind::worker_started ? event_channel::workers : event_channel::tasks;
}

struct event {
    event_kind kind{};
    std::string task_id{};
    std::string worker_id{};
    task_status status = task_status::pending;
    std::uint32_t attempt = 0;
    std::string detail{};  ///< error text, progress message, scaling reason...
    double progress = 0.0;
    std::size_t from = 0, to = 0;  ///< scaled: worker counts
    std::chrono::system_clock::time_point at = std::chrono::system_clock::now();
};

namespace detail {
struct event_bus_state {
    struct entry {
        event_channel channel;
        std::shared_ptr<std::function<void(const event&)>> fn;
    };
    using subscriber_map = std::map<std::uint64_t, entry>;

    std::mutex mutex;
    std::uint64_t next_id = 0;
    // Copy-on-write: publishing takes a snapshot, so subscribers may
    // subscribe or unsubscribe from inside a callback.
    std::shared_ptr<const subscriber_map> subscribers = std::make_shared<subscriber_map>();
    std::atomic<std::size_t> count{0};

    void remove(std::uint64_t id) {
        std::lock_guard lk(mutex);
        auto next = std::make_shared<subscriber_map>(*subscribers);
        next->erase(id);
        count.store(next->size(), std::memory_order_relaxed);
        subscribers = std::move(next);
    }
};
}  // namespace detail

class event_bus {
public:
    using handler = std::function<void(const event&)>;

    /// Unsubscribes when destroyed (or reset()).
    class subscription {
    public:
        subscription() = default;
        subscription(subscription&& o) noexcept : bus_(std::move(o.bus_)), id_(o.id_) {}
        subscription& operator=(subscription&& o) noexcept {
            if (this != &o) {
                reset();
                bus_ = std::move(o.bus_);
                id_ = o.id_;
            }
            return *this;
        }
        ~subscription() { reset(); }
        void reset() {
            if (auto b = bus_.lock()) b->remove(id_);
            bus_.reset();
        }

    private:
        friend class event_bus;
        subscription(std::weak_ptr<detail::event_bus_state> b, std::uint64_t id) : bus_(std::move(b)), id_(id) {}
        std::weak_ptr<detail::event_bus_state> bus_;
        std::uint64_t id_ = 0;
    };

    /// Throws orchcore::invalid_argument for an empty handler or a channel
    /// that is not an event_channel value (neither would ever be told).
    subscription subscribe(event_channel ch, handler h) {
        if (!h) throw invalid_argument("handler", "empty", "a subscriber must be callable");
        if (ch != event_channel::tasks && ch != event_channel::workers)
            throw invalid_argument("channel", std::to_string(static_cast<int>(ch)), "not an event_channel value");
        std::lock_guard lk(state_->mutex);
        const auto id = ++state_->next_id;
        auto next = std::make_shared<detail::event_bus_state::subscriber_map>(*state_->subscribers);
        (*next)[id] = detail::event_bus_state::entry{ch, std::make_shared<handler>(std::move(h))};
        state_->count.store(next->size(), std::memory_order_relaxed);
        state_->subscribers = std::move(next);
        return subscription(state_, id);
    }

    /// True if anyone listens (a cheap check so publishers can skip
    /// building events nobody reads).
    bool has_subscribers() const noexcept { return state_->count.load(std::memory_order_relaxed) != 0; }

    void publish(const event& e) {
        published_.fetch_add(1, std::memory_order_relaxed);
        if (!has_subscribers()) return;
        std::shared_ptr<const detail::event_bus_state::subscriber_map> subs;
        {
            std::lock_guard lk(state_->mutex);
            subs = state_->subscribers;
        }
        const auto ch = channel_of(e.kind);
        for (const auto& [id, sub] : *subs) {
            if (sub.channel != ch) continue;
            try {
                (*sub.fn)(e);
            } catch (...) {
                handler_errors_.fetch_add(1, std::memory_order_relaxed);
            }
        }
    }

    std::uint64_t published() const noexcept { return published_.load(std::memory_order_relaxed); }
    std::uint64_t handler_errors() const noexcept { return handler_errors_.load(std::memory_order_relaxed); }

private:
    std::shared_ptr<detail::event_bus_state> state_ = std::make_shared<detail::event_bus_state>();
    std::atomic<std::uint64_t> published_{0};
    std::atomic<std::uint64_t> handler_errors_{0};
};

}  // namespace orchcore
