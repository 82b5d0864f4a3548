// node_backend: a worker node's hot path over its transport and task store,
// in two batch operations.
//
// A node that runs tasks does, per task, a lease (transport), a record read
// and a "started" write (store), a finish write (store) and an ack or nack
// (transport). Done one interface at a time, that is five round trips per
// batch. A backend that keeps both in one place (Redis) can do each half
// of it in one atomic call:
//
// * lease_and_start: lease up to `max` tasks for one worker and mark their
//   records started (status running, attempts + 1, worker_id, started_at
//   if unset, worker_losses + 1 if the record still said running, i.e. the
//   task was recovered from a lost worker);
// * finish_and_fetch: record a batch of outcomes, settle their leases
//   (terminal: ack; queued: nack with its delay), then lease_and_start up
//   to `max_next` more for the slots the batch freed.
//
// Why one interface over transport + store, not a new transport call: the
// start and finish writes are record changes fenced by the lease, and only
// a backend holding both can make them atomic with the lease. Everything
// else (admission, recovery, dead letters, cancel, steering, list/get,
// expiry) keeps going through the transport and the store, over the same
// keys: a node_backend is built on a transport and a store and changes
// only what they would change.
//
// Semantics (both implementations; tests/unit/node_backend_conformance_test.cpp):
//
// * A leased task is started only if its record is queued (or running:
//   recovered), its type is in start_spec::types (empty: any), it needs no
//   worker tags beyond start_spec::tags, it carries none of
//   start_spec::hold_keys in its metadata, and its whole-task timeout (if
//   any) has not passed. Any other leased task is returned with
//   started = false and its record as stored (nullopt if there is none):
//   the caller decides (ack, cancel, time out, hand back) with the plain
//   transport and store calls.
// * An outcome is refused (fate::stale), changing nothing, if its token is
//   not the task's current lease or the lease has expired (as extend()
//   refuses: the holder must stop). Otherwise the record is written if its
//   stored status is the outcome's `expected` (compare-and-set, as
//   task_store::update) and the lease settled (fate::recorded); if the
//   stored status differs (a canceller or recoverer got there first), the
//   lease is left as it is (fate::conflict) for the caller's slow path. One
//   item's refusal never affects the others.
// * A backend may publish the finish notifications of the terminal
//   outcomes it records in the same call (node_batch::announced); the
//   composed one leaves them to the caller.
// * A finish write keeps the record's payload (written once at creation).
// * Bad arguments throw orchcore::invalid_argument naming the field.
#pragma once

#include <orchcore/error.hpp>
#include <orchcore/task.hpp>
#include <orchcore/task_store.hpp>
#include <orchcore/transport.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace orchcore {

/// Who starts the leased tasks, and which of them it can run.
struct start_spec {
    std::string worker;              ///< written as the records' worker_id
    std::vector<std::string> types;  ///< task types it has handlers for; empty: any
    std::vector<std::string> tags;   ///< the worker's tags
    std::vector<std::string> hold_keys;  ///< metadata keys that keep a task from starting
    std::chrono::milliseconds lease_duration{30'000};
};

/// One leased task.
struct node_task {
    transport_lease lease;
    std::optional<task_record> record;  ///< as stored after the call
    bool started = false;                ///< this call moved the record to running
};

/// One finished attempt to record.
struct node_outcome {
    task_record rec;  ///< with its new status: terminal, or queued (run again)
    task_status expected = task_status::running;
    std::uint64_t token = 0;
    std::chrono::milliseconds delay{0};  ///< queued: nack delay
};

struct node_batch {
    enum class fate : unsigned char { recorded, stale, conflict };
    std::vector<fate> settled;    ///< one per outcome, in order
    std::vector<node_task> next;  ///< newly leased tasks
    /// The backend itself published the finish notification
    /// (transport::publish_finished) of every terminal outcome it recorded,
    /// so the caller does not.
    bool announced = false;
};

class node_backend {
public:
    using time_point = std::chrono::system_clock::time_point;
    virtual ~node_backend() = default;

    virtual std::vector<node_task> lease_and_start(const start_spec& s, std::size_t max, time_point now) = 0;
    virtual node_batch finish_and_fetch(std::span<const node_outcome> outcomes, const start_spec& s,
                                        std::size_t max_next, time_point now) = 0;

    /// The transport and store it works over.
    virtual const std::shared_ptr<orchcore::transport>& transport() const noexcept = 0;
    virtual const std::shared_ptr<task_store>& store() const noexcept = 0;

    /// Whether lease_and_start may start `r` for `s` at `now` (see above).
    static bool startable(const task_record& r, const start_spec& s, time_point now) {
        if (r.status != task_status::queued && r.status != task_status::running) return false;
        if (!s.types.empty() && std::find(s.types.begin(), s.types.end(), r.type) == s.types.end()) return false;
        for (const auto& t : r.tags)
            if (std::find(s.tags.begin(), s.tags.end(), t) == s.tags.end()) return false;
        for (const auto& k : s.hold_keys)
            if (r.metadata.count(k)) return false;
        return r.timeout.count() <= 0 || detail::saturating_add(r.created_at, r.timeout) > now;
    }

    /// `r` as lease_and_start writes it when it starts it.
    static task_record started(task_record r, const start_spec& s, time_point now) {
        if (r.status == task_status::running) ++r.worker_losses;
        r.status = task_status::running;
        ++r.attempts;
        if (!r.started_at) r.started_at = now;
        r.worker_id = s.worker;
        return r;
    }

protected:
    static void check_args(const start_spec& s) {
        if (s.worker.empty()) throw invalid_argument("worker", "\"\"", "must not be empty");
        if (s.lease_duration.count() <= 0)
            throw invalid_argument("lease_duration", std::to_string(s.lease_duration.count()) + "ms", "must be > 0");
    }
};

/// node_backend from the plain transport and store calls (several round
/// trips, same results): the memory backend, and any user-provided pair.
class composed_node_backend final : public node_backend {
public:
    composed_node_backend(std::shared_ptr<orchcore::transport> t, std::shared_ptr<task_store> s)
        : tp_(std::move(t)), store_(std::move(s)) {
        if (!tp_) throw invalid_argument("transport", "null", "a node_backend needs a transport");
        if (!store_) throw invalid_argument("store", "null", "a node_backend needs a task store");
    }

    std::vector<node_task> lease_and_start(const start_spec& s, std::size_t max, time_point now) override {
        check_args(s);
        const auto got = tp_->lease(s.worker, max, s.lease_duration, now);
        std::vector<std::string> ids;
        for (const auto& l : got) ids.push_back(l.task_id);
        auto recs = store_->get_many(ids);
        std::vector<node_task> out;
        std::vector<task_record> writes;
        std::vector<task_status> expected;
        std::vector<std::size_t> idx;
        for (std::size_t i = 0; i < got.size(); ++i) {
            out.push_back({got[i], std::move(recs[i]), false});
            auto& rec = out.back().record;
            if (!rec || !startable(*rec, s, now)) continue;
            expected.push_back(rec->status);
            writes.push_back(started(*rec, s, now));
            idx.push_back(i);
        }
        const auto ok = store_->update_many(writes, expected);
        for (std::size_t k = 0; k < idx.size(); ++k) {
            if (!ok[k]) {
                out[idx[k]].record = store_->get(out[idx[k]].lease.task_id);
                continue;
            }
            out[idx[k]].record = std::move(writes[k]);
            out[idx[k]].started = true;
        }
        return out;
    }

    node_batch finish_and_fetch(std::span<const node_outcome> outcomes, const start_spec& s, std::size_t max_next,
                                time_point now) override {
        check_args(s);
        node_batch b;
        for (const auto& o : outcomes) b.settled.push_back(settle(o, s, now));
        b.next = lease_and_start(s, max_next, now);
        return b;
    }

    const std::shared_ptr<orchcore::transport>& transport() const noexcept override { return tp_; }
    const std::shared_ptr<task_store>& store() const noexcept override { return store_; }

private:
    node_batch::fate settle(const node_outcome& o, const start_spec& s, time_point now) {
        // extend() refuses a stale token and an expired lease without a change.
        if (!tp_->extend(o.rec.id, o.token, s.lease_duration, now)) return node_batch::fate::stale;
        if (!store_->update(o.rec, o.expected)) return node_batch::fate::conflict;
        if (is_terminal(o.rec.status)) tp_->ack(o.rec.id, o.token);
        else tp_->nack(o.rec.id, o.token, o.delay, now);
        return node_batch::fate::recorded;
    }

    std::shared_ptr<orchcore::transport> tp_;
    std::shared_ptr<task_store> store_;
};

}  // namespace orchcore
