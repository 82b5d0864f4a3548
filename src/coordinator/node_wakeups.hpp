// A distributed node's wake-ups (internal to the coordinator):
//
// * work_waker: while the node has free slots and found nothing to lease,
//   a thread blocks in transport::wait_for_work and calls `wake` (which
//   leases) as soon as work may be there, instead of polling.
// * finish_watch: the node's waits for tasks run elsewhere are woken by
//   the transport's finish notifications (transport::watch_finished),
//   subscribed on the first such wait; each notification bumps a
//   generation that waiters compare against.
#pragma once

#include <orchcore/transport.hpp>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>

namespace orchcore::detail {

class work_waker {
public:
    /// `wake` is called on the waker's thread, with no lock held.
    work_waker(transport& tp, std::function<void()> wake, std::chrono::milliseconds timeout);
    ~work_waker();
    work_waker(const work_waker&) = delete;
    work_waker& operator=(const work_waker&) = delete;

    /// The node has free slots and the queue gave it nothing: wait for work.
    void idle();
    /// Ends the thread (interrupting a wait). Idempotent.
    void stop();

private:
    void run();

    transport& tp_;
    std::function<void()> wake_;
    std::chrono::milliseconds timeout_;
    std::mutex m_;
    std::condition_variable cv_;
    bool idle_ = false, stop_ = false;
    std::thread thread_;
};

class finish_watch {
public:
    /// `notify` is called (no lock of the watch held) for every finish
    /// notification, with the task id ("" if some may have been missed).
    explicit finish_watch(std::function<void(const std::string&)> notify) : notify_(std::move(notify)) {}

    /// Subscribes on first use. True if notifications arrive (waiters may
    /// then wait long between looks), false if the transport has none or
    /// the watch was closed.
    bool ensure(transport& tp);
    /// Unsubscribes for good (waits for a notification in progress).
    void close();

private:
    std::function<void(const std::string&)> notify_;
    std::mutex m_;
    std::unique_ptr<transport_watch> watch_;
    bool tried_ = false, closed_ = false;
};

/// Publishes finish notifications; a backend failure is swallowed (waiters
/// fall back on their slow safety look).
void announce_finished(transport& tp, std::span<const std::string> ids) noexcept;

/// How long a remote wait sleeps between looks at the shared store: with
/// notifications, a slow safety look (a notification may be lost when the
/// subscriber reconnects); without, a doubling backoff from 1 to 50 ms.
std::chrono::milliseconds remote_wait_step(bool notified, std::chrono::milliseconds& backoff);

}  // namespace orchcore::detail
