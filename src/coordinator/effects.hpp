// What a locked section leaves to do after the lock is released, and
// coroutines waiting for a task to end.
#pragma once

#include "attempt.hpp"

#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/container/small_vector.hpp>

namespace orchcore::detail {

// Events are not here: they go to coordinator_impl::outbox under the lock,
// so their order is the order of the changes (see flush_events).
// A locked section launches one task or two as a rule: those live inline.
struct effects {
    boost::container::small_vector<launch, 2> launches;
    bool wake_waiters = false;
};

// A coroutine waiting for a task to end (task_handle::async_wait_for). The
// channel is thread-safe, so whichever thread finishes the task can wake it.
struct async_waiter {
    explicit async_waiter(const asio::any_io_executor& ex) : wake_ch(ex, 1) {}
    asio::experimental::concurrent_channel<void(boost::system::error_code)> wake_ch;
    void wake() { (void)wake_ch.try_send(boost::system::error_code{}); }
};

}  // namespace orchcore::detail
