// redis_transport: the transport interface (<orchcore/transport.hpp>) over
// Redis, shared by every process that opens the same prefix and queue name.
//
// Key layout (all under one hash tag, so every script touches one slot;
// ready for Redis Cluster with one queue per slot):
//
//   {<prefix>:<queue>}:waiting   ZSET  waiting ids; score = sequence (FIFO
//                                      policies) or (20 - priority) * 2^46 +
//                                      sequence (priority policy)
//   {<prefix>:<queue>}:bylevel   ZSET  drop-lru only: priority * 2^46 + sequence
//   {<prefix>:<queue>}:delayed   ZSET  nacked ids; score = due time (unix ms)
//   {<prefix>:<queue>}:leases    ZSET  leased ids; score = deadline (unix ms)
//   {<prefix>:<queue>}:state     HASH  policy, sequence and token counters,
//                                      dequeue-interval estimate, statistics
//   {<prefix>:<queue>}:m:<id>    HASH  per task while it is in the transport:
//                                      p (priority), s (sequence), a (leases so
//                                      far), t (current token), w (worker),
//                                      x (lease expiries so far)
//   {<prefix>:<queue>}:poisoned  HASH  dead letters: id -> reason ("lease
//                                      expired N times"; see
//                                      transport_options::max_lease_expiries;
//                                      or "corrupted entry <key>: <why>")
//
// {<prefix>:<queue>}:mb:<id>  list: the task's steering mailbox (RPUSH by
//                              post_messages, taken whole by take_messages)
// {<prefix>:<queue>}:wake     list: wake tokens, one LPUSHed per task that
//                              became waiting (admit, nack without delay,
//                              recovery), at most 256 kept, expiring 60 s
//                              after the last push, dropped by a lease that
//                              empties :waiting; idle consumers BLPOP it
//                              (wait_for_work)
// {<prefix>:<queue>}:wake:<r> list: interrupt_waits() of one transport
//                              object (expires after 60 s)
// {<prefix>:<queue>}:finished pub/sub channel: ids of tasks whose record
//                              became terminal (publish_finished)
//
// Only :state (and :poisoned, until its entries are dropped; :wake, until it
// expires) outlives the tasks; a task's :m:<id> and :mb:<id> keys and its
// set entries are deleted when it is acked, cancelled, evicted or
// dead-lettered.
//
// Every state change is one Lua script (EVALSHA), so admission (capacity +
// policy + enqueue), leasing (move to :leases + new token), ack / nack /
// extend (token check + change), cancel, promote and recovery are atomic; racing
// recoverers each get disjoint orphans. Ids and every other value travel as
// ARGV, never inside script text; per-task keys are built inside the script
// from the hash-tagged base, so an id (even one containing '}', quotes,
// spaces or newlines) stays inside its key and cannot change the slot.
//
// Damaged keys: every script checks the queue keys' types and the fields of
// :state before it changes anything (a bad one fails the call with
// redis_error naming the key, the field and the value; so does a mailbox
// that is not a list), and checks each task's :m:<id> entry as it meets
// it. A task whose entry is unusable (not a hash, missing, a field out of
// range) is never left in no set: lease and admission move it to :leases
// as expired long ago; ack, nack, extend and take_messages refuse it and
// change nothing; recover_expired() moves it to :poisoned with the reason
// and returns it with dead_lettered = true (worker "", attempt, token and
// expiries 0), as it does a poison task.
//
// Policies: reject-new, drop-lru, priority. The policy is stored in :state
// at the first admission; a process configured with another policy for the
// same queue gets redis_error (server) from admit.
//
// Scale-out: one queue lives in one slot. To spread load over a Redis
// Cluster, use several queues (names), each a separate transport.
#pragma once

#include <orchcore/redis/redis_client.hpp>
#include <orchcore/transport.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

namespace orchcore {

class redis_transport final : public transport, public std::enable_shared_from_this<redis_transport> {
public:
    /// `queue` must be non-empty without '{' or '}'. Does not contact Redis.
    redis_transport(std::shared_ptr<redis_client> client, std::string queue, transport_options o = {});

    transport_admission admit(const transport_request& r) override;
    std::vector<transport_admission> admit_many(std::span<const transport_request> rs) override;
    std::vector<transport_lease> lease(std::string_view worker, std::size_t max, std::chrono::milliseconds duration,
                                       time_point now) override;
    bool ack(const std::string& id, std::uint64_t token) override;
    std::vector<bool> ack_many(std::span<const lease_ref> refs) override;
    bool nack(const std::string& id, std::uint64_t token, std::chrono::milliseconds delay, time_point now) override;
    bool extend(const std::string& id, std::uint64_t token, std::chrono::milliseconds duration,
                time_point now) override;
    bool cancel(const std::string& id) override;
    bool promote(const std::string& id) override;
    bool post_messages(const std::string& id, std::span<const std::string> messages) override;
    std::optional<std::vector<std::string>> take_messages(const std::string& id, std::uint64_t token) override;
    std::vector<transport_lease> recover_expired(time_point now, std::size_t max) override;
    std::vector<transport_dead_letter> dead_letters(std::size_t limit = 1000) override;
    bool drop_dead_letter(const std::string& id) override;
    std::size_t size_approx() override;
    std::size_t leased_count() override;
    transport_stats stats() override;
    const transport_options& options() const noexcept override { return options_; }

    /// BLPOP on :wake (and this object's interrupt key) on a connection of
    /// its own, at most until the next delayed task is due and at most half
    /// the client's command_timeout at a time.
    bool wait_for_work(std::chrono::milliseconds timeout) override;
    void interrupt_waits() override;
    /// PUBLISH of each id on :finished.
    void publish_finished(std::span<const std::string> ids) override;
    /// A subscriber to :finished on a connection (and thread) of its own,
    /// reconnecting with the client's backoff; calls on_finished("") after
    /// each (re)subscription.
    std::unique_ptr<transport_watch> watch_finished(std::function<void(const std::string&)> on_finished) override;
    /// A redis_node_backend if `store` is a redis_task_store of this queue
    /// on the same server, this transport is owned by a shared_ptr and
    /// options().combined_node_calls is set; else nullptr.
    std::shared_ptr<node_backend> make_node_backend(const std::shared_ptr<task_store>& store) override;

    /// "{<prefix>:<queue>}": the hash-tagged start of every key.
    const std::string& key_base() const noexcept { return base_; }
    const std::shared_ptr<redis_client>& client() const noexcept { return client_; }

    /// Ids per script call in admit_many / ack_many (bounds how long one
    /// script blocks the server).
    static constexpr std::size_t batch_chunk = 512;

private:
    std::vector<transport_admission> admit_chunk(std::span<const transport_request> rs);
    redis_client& blocking_client();
    std::chrono::milliseconds block_for(std::chrono::milliseconds timeout);

    std::shared_ptr<redis_client> client_;
    std::string base_;
    transport_options options_;
    std::vector<std::string> keys_;  // waiting, bylevel, delayed, leases, state, poisoned, wake
    std::string meta_prefix_;        // "{p:q}:m:"
    std::string interrupt_key_;      // "{p:q}:wake:<random>": interrupt_waits() of this object
    std::string finished_channel_;   // "{p:q}:finished"
    std::mutex blocking_mutex_;
    std::unique_ptr<redis_client> blocking_;  // blocking waits only (lazily connected)
    std::atomic<std::size_t> waiters_{0};     // in wait_for_work now
};

}  // namespace orchcore
