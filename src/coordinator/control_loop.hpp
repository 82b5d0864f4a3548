// The control loop on an executor of the user's.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <mutex>
#include <thread>

namespace orchcore::detail {

// The control loop on an executor of the user's: the timer and a lock that
// each tick holds while it runs, shared with the pending wait, so stop()
// can shut the loop without waiting for the executor to run again.
struct user_control {
    explicit user_control(const asio::any_io_executor& ex) : timer(ex) {}
    asio::steady_timer timer;
    std::mutex m;                          // held by a running tick and for every timer call
    bool closed = false;                   // m
    std::atomic<std::thread::id> ticking{};  // the thread running a tick
};

}  // namespace orchcore::detail
