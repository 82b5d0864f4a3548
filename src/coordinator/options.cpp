// Validation of coordinator and task options.
#include "coordinator_impl.hpp"

#include <orchcore/any_admission_queue.hpp>

namespace orchcore {

namespace {

// The node's own fields, and how they go with the rest of the options.
void validate_node(const node_options& n, queue_policy policy, const std::shared_ptr<task_store>& store) {
    if (!n.transport)
        throw invalid_argument("node.transport", "null", "a node needs the shared queue (e.g. redis_transport)");
    if (n.lease_duration.count() <= 0)
        throw invalid_argument("node.lease_duration", std::to_string(n.lease_duration.count()) + "ms", "must be > 0");
    if (n.lease_renew_interval.count() < 0 || n.lease_renew_interval >= n.lease_duration)
        throw invalid_argument("node.lease_renew_interval", std::to_string(n.lease_renew_interval.count()) + "ms",
                               "must be >= 0 and shorter than node.lease_duration (" +
                                   std::to_string(n.lease_duration.count()) + "ms)");
    if (n.lease_batch == 0) throw invalid_argument("node.lease_batch", "0", "must be at least 1");
    if (n.backend && (n.backend->transport() != n.transport || n.backend->store() != store))
        throw invalid_argument("node.backend", "set", "must be built on node.transport and store");
    if (policy != queue_policy::fail_fast && policy != n.transport->options().policy)
        throw invalid_argument("policy", std::string(to_string(policy)),
                               "must equal the transport's policy (" +
                                   std::string(to_string(n.transport->options().policy)) +
                                   ") in distributed mode (or be fail-fast)");
}

}  // namespace

void coordinator_options::validate() const {
    detail::validate_queue_options(queue);
    worker_template.validate();
    if (node && scaling.max_workers == 0) {
        // Distributed mode allows a producer-only node (no workers at all).
        if (scaling.min_workers > 0)
            throw invalid_argument("autoscale.min_workers", std::to_string(scaling.min_workers),
                                   "must be <= max_workers (0)");
        auto s = scaling;
        s.max_workers = 1;
        s.validate();
    } else {
        scaling.validate();
    }
    default_backoff.validate();
    auto positive = [](const char* field, std::chrono::milliseconds v) {
        if (v.count() <= 0) throw invalid_argument(field, std::to_string(v.count()) + "ms", "must be > 0");
    };
    positive("autoscale_interval", autoscale_interval);
    positive("worker_timeout", worker_timeout);
    positive("maintenance_interval", maintenance_interval);
    positive("completed_ttl", completed_ttl);
    positive("failed_ttl", failed_ttl);
    positive("cancelled_ttl", cancelled_ttl);
    if (worker_entry_grace.count() < 0)
        throw invalid_argument("worker_entry_grace", std::to_string(worker_entry_grace.count()) + "ms",
                               "must be >= 0");
    if (placement_wait.count() < 0)
        throw invalid_argument("placement_wait", std::to_string(placement_wait.count()) + "ms", "must be >= 0");
    if (cancel_grace.count() < 0)
        throw invalid_argument("cancel_grace", std::to_string(cancel_grace.count()) + "ms", "must be >= 0");
    if (worker_timeout <= worker_template.heartbeat_interval)
        throw invalid_argument("worker_timeout", std::to_string(worker_timeout.count()) + "ms",
                               "must be longer than worker_template.heartbeat_interval (" +
                                   std::to_string(worker_template.heartbeat_interval.count()) + "ms)");
    if (default_max_retries > 1000)
        throw invalid_argument("default_max_retries", std::to_string(default_max_retries), "must be at most 1000");
    if (node) validate_node(*node, policy, store);
}

namespace detail {

void validate_task_options(const task_options& o) {
    auto non_negative = [](const char* field, std::chrono::milliseconds v) {
        if (v.count() < 0) throw invalid_argument(field, std::to_string(v.count()) + "ms", "must be >= 0");
    };
    non_negative("timeout", o.timeout);
    non_negative("turn_timeout", o.turn_timeout);
    if (o.max_retries && *o.max_retries > 1000)
        throw invalid_argument("max_retries", std::to_string(*o.max_retries), "must be at most 1000");
    if (o.backoff) o.backoff->validate();
    if (o.id && o.id->empty()) throw invalid_argument("id", "\"\"", "a task id must not be empty");
    validate(o.resources, "resources");
}

}  // namespace detail

}  // namespace orchcore
