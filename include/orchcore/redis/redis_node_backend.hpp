// redis_node_backend: node_backend (<orchcore/node_backend.hpp>) over one
// redis_transport and one redis_task_store of the same queue. Each
// operation is one Lua script (one round trip): lease_and_start leases and
// writes the starts; finish_and_fetch records the outcomes, acks or nacks
// their leases and leases the next tasks.
//
// The scripts change the keys the transport and the store use, as they
// would: the transport's :waiting/:bylevel/:delayed/:leases/:state/:wake
// and :m:<id>/:mb:<id> (fields a, t, w on lease; removed on ack/nack), and
// the store's record hash :task:<id>, state fields only (on start: status,
// attempts, worker id, started_at if unset, worker losses if it was
// running; on finish: the whole state part, with the store's own update
// code), its live set :tasks, its :finished:* buckets, registries and
// counts, and the record's expiry (redis_task_store_options' TTLs). They
// start with the transport's checks (key types, :state fields, per-task
// entries; an unusable entry is parked as an expired lease for recovery to
// dead-letter), so damaged keys are refused or repaired exactly as by
// redis_transport; the types of the queue's and the store's keys and the
// :state fields a call does not use, though, only on a backend's first
// call, after a failed call and every key_check_every (a key damaged in
// between fails a call part-way, before the task's lease is settled or
// before it leaves the set it is in: reported naming the key; the task is
// left to recovery). finish_and_fetch
// PUBLISHes the finish notification of each terminal record it writes
// (node_batch::announced).
//
// A record the script cannot start (its tags, metadata or options not
// readable there) is leased but not started (started = false); one that
// does not decode is read back with redis_task_store::get, which
// dead-letters it. The caller starts such tasks with the store's own calls.
#pragma once

#include <orchcore/node_backend.hpp>
#include <orchcore/redis/redis_task_store.hpp>
#include <orchcore/redis/redis_transport.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace orchcore {

class redis_node_backend final : public node_backend {
public:
    /// Both must be of one queue (same key base) on one server (same
    /// host, port and db); throws invalid_argument otherwise. Does not
    /// contact Redis.
    redis_node_backend(std::shared_ptr<redis_transport> t, std::shared_ptr<redis_task_store> s);

    /// The backend over `t` and `s` if `s` is a redis_task_store that fits
    /// `t` (as above), else nullptr (redis_transport::make_node_backend:
    /// what a coordinator node uses by default).
    static std::shared_ptr<redis_node_backend> combining(std::shared_ptr<redis_transport> t,
                                                         const std::shared_ptr<task_store>& s);

    std::vector<node_task> lease_and_start(const start_spec& s, std::size_t max, time_point now) override;
    node_batch finish_and_fetch(std::span<const node_outcome> outcomes, const start_spec& s, std::size_t max_next,
                                time_point now) override;

    const std::shared_ptr<orchcore::transport>& transport() const noexcept override { return tp_; }
    const std::shared_ptr<task_store>& store() const noexcept override { return store_; }

    /// Outcomes per script call (bounds how long one script blocks the server).
    static constexpr std::size_t batch_chunk = redis_transport::batch_chunk;
    /// How long the scripts trust the key types (and the :state fields
    /// they do not use) checked by a call that succeeded.
    static constexpr std::chrono::milliseconds key_check_every{1'000};

private:
    static bool fits(const redis_transport& t, const redis_task_store& s) noexcept;
    std::vector<std::string> spec_args(const start_spec& s, std::size_t max, time_point now) const;
    std::vector<node_task> decode_next(redis_reply& r, const start_spec& s, time_point now) const;
    redis_reply eval(std::vector<std::string>& args, const start_spec& s, time_point now);
    static constexpr std::size_t trust_arg = 6;  // ARGV[7] of the script

    std::shared_ptr<orchcore::transport> tp_;
    std::shared_ptr<task_store> store_;
    std::shared_ptr<redis_transport> rtp_;
    std::shared_ptr<redis_task_store> rstore_;
    std::vector<std::string> keys_;  // the transport's
    // steady_clock ticks of the last call that checked the key types and
    // succeeded; 0: the next call checks.
    std::atomic<std::chrono::steady_clock::rep> checked_at_{0};
};

}  // namespace orchcore
