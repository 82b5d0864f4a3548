// What makes a coordinator one node of a deployment (distributed mode):
// the shared queue it leases from, its name, its leases and, optionally,
// its combined hot-path calls. coordinator_options::node holds it.
//
//   orchcore::coordinator_options o;
//   o.store    = redis_store;
//   o.registry = redis_registry;
//   o.node     = orchcore::node_options{.transport = redis_queue, .id = "node-a"};
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

namespace orchcore {

// Held by std::shared_ptr only (transport.hpp, node_backend.hpp define them).
class transport;
class node_backend;

struct node_options {
    /// The shared queue (required; e.g. redis_transport). The deployment's
    /// nodes share it with coordinator_options::store and ::registry.
    std::shared_ptr<orchcore::transport> transport{};
    /// This node's name (worker ids and generated task ids start with it;
    /// leases are taken in its name). Empty: generated from the host name,
    /// the process id and a random suffix.
    std::string id{};
    /// How long one lease lasts without renewal. A node that dies (SIGKILL,
    /// power loss) holds its tasks this long at most; then any node puts
    /// them back in the queue. Keep it well above the clock skew between
    /// hosts and the latency of one store write.
    std::chrono::milliseconds lease_duration{30'000};
    /// How often running attempts' leases are extended (and remote
    /// cancellation requests looked for). 0: lease_duration / 3. Must be
    /// shorter than lease_duration. A lease with less than half of
    /// lease_duration left is extended at the next tick whatever this says
    /// (after the backend paused, say).
    std::chrono::milliseconds lease_renew_interval{0};
    /// Most leases taken in one round trip.
    std::size_t lease_batch = 64;
    /// Optional: the node's hot path over `transport` and the coordinator's
    /// store in combined calls (<orchcore/node_backend.hpp>; e.g.
    /// redis_node_backend): a lease and its start writes in one call, and
    /// finished tasks' records, acks and the next leases in one call. Must
    /// be built on this `transport` and that store. Empty: the one the
    /// transport offers (transport::make_node_backend; redis_transport with
    /// a redis_task_store of its queue), else separate calls.
    std::shared_ptr<orchcore::node_backend> backend{};
};

}  // namespace orchcore
