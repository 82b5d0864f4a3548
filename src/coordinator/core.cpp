// The coordinator's state: construction and event helpers.
#include "coordinator_impl.hpp"
#include "local_engine.hpp"
#include "node_engine.hpp"

#include <unistd.h>

#include <cstdio>

namespace orchcore::detail {

coordinator_impl::coordinator_impl(coordinator_options o)
    : opt(std::move(o)),
      scaler(scaler_options(opt)),
      store(opt.store ? opt.store : std::make_shared<memory_task_store>()),
      registry(opt.registry ? opt.registry : std::make_shared<memory_worker_registry>()),
      rng(std::random_device{}()),
      node("local"),
      write_through(opt.store != nullptr),
      tick_timer(ctl) {
    // The one place the mode is decided: a node writes every change through
    // to the shared store, under its own name.
    if (opt.node) {
        node = make_node_id(*opt.node);
        write_through = true;
        eng = std::make_unique<node_engine>(*this, *opt.node);
    } else {
        eng = std::make_unique<local_engine>(*this);
    }
}

autoscale_options coordinator_impl::scaler_options(const coordinator_options& o) {
    auto s = o.scaling;
    if (s.max_workers == 0) s.max_workers = 1;  // producer-only node: never scales anyway
    return s;
}

std::string coordinator_impl::make_node_id(const node_options& o) {
    if (!o.id.empty()) return o.id;
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::snprintf(host, sizeof host, "host");
    char suffix[16];
    std::snprintf(suffix, sizeof suffix, "%04x",
                  static_cast<unsigned>(std::random_device{}() & 0xffffu));
    return std::string(host) + "-" + std::to_string(::getpid()) + "-" + suffix;
}

// ---------------------------------------------------------------- helpers

event coordinator_impl::make_event(event_kind k, const task_entry& t, std::string detail) {
    event e;
    e.kind = k;
    e.task_id = t.rec.id;
    e.worker_id = t.rec.worker_id;
    e.status = t.rec.status;
    e.attempt = t.rec.attempts;
    e.detail = std::move(detail);
    e.progress = t.rec.progress;
    return e;
}

coordinator_impl::~coordinator_impl() {
    // The stopper holds this object: it ends here only as its last owner.
    if (stopper.joinable()) {
        if (stopper.get_id() == std::this_thread::get_id()) stopper.detach(); else stopper.join();
    }
}

// ======================================================= distributed mode
//
// Local state holds only the tasks running on this node (tasks map) and
// this node's workers; the queue is the transport and the records are in
// the shared store. Transport and store calls never run under `mu`:
// decisions are made under the lock, then carried out (run_op, feed,
// renewals, recovery), then their outcome is recorded under the lock.
// Every record change made by this node is made as the holder of the
// task's lease (checked with extend() when less than half of it is left),
// which is what fences a node presumed dead.

event coordinator_impl::make_event_rec(event_kind k, const task_record& r, std::string detail) {
    event e;
    e.kind = k;
    e.task_id = r.id;
    e.worker_id = r.worker_id;
    e.status = r.status;
    e.attempt = r.attempts;
    e.detail = std::move(detail);
    e.progress = r.progress;
    return e;
}

task_handle coordinator_impl::make_handle(coordinator* owner, std::string id) { return task_handle(owner, std::move(id)); }

bool coordinator_impl::has_handler(const std::string& type) const {
    return handlers.count(type) > 0 || async_handlers.count(type) > 0;
}
}  // namespace orchcore::detail
