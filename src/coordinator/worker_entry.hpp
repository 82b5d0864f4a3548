// A worker of the coordinator's and its heartbeat clock.
#pragma once

#include "attempt.hpp"
#include "clock.hpp"

#include <orchcore/resources.hpp>
#include <orchcore/worker_pool.hpp>

#include <boost/asio/steady_timer.hpp>

#include <mutex>
#include <optional>
#include <vector>

namespace orchcore::detail {

// A worker's heartbeat clock: a timer on the worker's own executor, so the
// worker proves it is alive by running it, whatever the control loop is
// busy with (in distributed mode the control loop waits for the backend,
// and a Redis pause must not make the node's own workers look dead).
struct heartbeat_clock {
    explicit heartbeat_clock(const asio::any_io_executor& ex) : timer(ex) {}
    asio::steady_timer timer;
    std::mutex m;         // held for every timer call
    bool closed = false;  // m
};

struct worker_entry {
    std::shared_ptr<worker> w;
    std::shared_ptr<const std::string> name;  // w->id(), shared by the records of its tasks
    std::size_t busy = 0;
    // Attempts occupying a slot, fenced ones included until their handler
    // returns (a retry of the same task may sit beside a fenced attempt).
    std::vector<std::shared_ptr<attempt_state>> running;
    steady::time_point last_heartbeat{};
    wall::time_point last_heartbeat_wall{};
    bool heartbeats_suspended = false;
    // Distributed mode: a heartbeat not yet written to the shared registry
    // (the control thread writes it, so a registry that hangs while Redis
    // is down never holds a worker thread).
    std::optional<std::chrono::system_clock::time_point> registry_due;
    // What its tasks' resource requests hold of its inventory (mu).
    worker_resources res{resource_inventory{}};
    std::optional<resource_inventory> published_free;  // distributed mode: as last written to the registry
    bool draining = false;
    std::uint64_t completed = 0, failed = 0;
};

}  // namespace orchcore::detail
