// redis_task_store: the task_store interface (<orchcore/task_store.hpp>)
// over Redis.
//
// Keys (hash tag shared with the transport of the same queue; details in
// docs/redis.md, "Key layout"):
//
//   {<prefix>:<queue>}:task:<id>       HASH  the record: a write-once part
//                                            (create) and a state part (the
//                                            only fields update writes),
//                                            short field names, defaults
//                                            not stored
//   {<prefix>:<queue>}:tasks           SET   ids of non-terminal records
//   {<prefix>:<queue>}:finished:<c>:<second>
//                                      LIST  ids of class <c> (completed,
//                                            failed incl. timed_out,
//                                            cancelled) finished in <second>
//   {<prefix>:<queue>}:finished:<c>    ZSET  the class's buckets by second
//   {<prefix>:<queue>}:finished:<c>:count
//                                      HASH  ids per bucket, and total
//   {<prefix>:<queue>}:dead            HASH  dead letters: id -> reason
//   {<prefix>:<queue>}:dead:<id>       (any) the undecodable record, as found
//
// * create is SET-if-absent in one script: a duplicate id is refused, never
//   overwritten. update is compare-and-set on the status in one script and
//   sends the state part only (task_store::update).
// * TTL: a record that becomes terminal gets a Redis expiry (PEXPIREAT
//   finished_at + the TTL of its class in redis_task_store_options), and
//   its bucket list one a minute after the bucket's last record, so
//   finished records and their index go even if no node runs maintenance.
//   expire(now, ttls...) removes terminal records whose finished_at + ttl
//   <= now (as the in-memory store, to the millisecond); it uses min(its
//   argument, the Redis TTL) per class, so it reports each id once. list()
//   skips entries whose record Redis already expired; size() counts them
//   until the next expire().
// * A record that cannot be decoded (not a hash, unknown status or field,
//   bad JSON, missing status or creation time, a field out of the range the library writes: priority
//   outside [0, 20], a negative duration or counter, backoff cap below its
//   base, progress outside [0, 1]) met by get() or list() is moved
//   atomically to the dead-letter area with the reason (naming the key, the
//   field and the value) and skipped (get returns empty); see
//   dead_letters(). It is never silently dropped.
// * A store key of the wrong type (index, finished sets, dead letters)
//   fails the call with redis_error naming it, before anything is written;
//   size() too (it never reads such a key as 0).
// * Payloads and results larger than redis_options::max_payload_bytes are
//   refused with orchcore::invalid_argument (field "payload" / "result"),
//   and so is a record the decoder would refuse (priority, a negative
//   duration, backoff, progress NaN or outside [0, 1]), naming the field.
// * Calls throw redis_error (errc::backend_unavailable) when Redis cannot
//   answer.
#pragma once

#include <orchcore/redis/redis_client.hpp>
#include <orchcore/task_store.hpp>

#include <array>
#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace orchcore {

struct redis_task_store_options {
    /// Redis-side expiry of terminal records, per class, counted from
    /// finished_at (0: none; the record stays until expire() or erase()).
    /// The defaults are coordinator_options' TTLs; set both alike.
    std::chrono::milliseconds completed_ttl{std::chrono::hours(1)};
    std::chrono::milliseconds failed_ttl{std::chrono::hours(24)};  ///< failed and timed_out
    std::chrono::milliseconds cancelled_ttl{std::chrono::hours(1)};
};

struct dead_letter {
    std::string id;
    std::string reason;
};

class redis_task_store final : public task_store {
public:
    redis_task_store(std::shared_ptr<redis_client> client, std::string queue, redis_task_store_options o = {});

    bool create(const task_record& r) override;
    /// create() for many records: script calls of up to 100 records (the
    /// key types checked once per call), 10 calls per round trip; result
    /// i belongs to rs[i]. Every record is checked (sizes, id) before
    /// anything is sent. Each call is atomic; the batch is not.
    std::vector<bool> create_many(std::span<const task_record> rs) override;
    std::optional<task_record> get(const std::string& id) const override;
    std::vector<std::optional<task_record>> get_many(std::span<const std::string> ids) const override;
    std::vector<bool> update_many(std::span<const task_record> rs, std::span<const task_status> expected) override;
    bool update(const task_record& r, task_status expected) override;
    bool erase(const std::string& id) override;
    std::vector<task_record> list(const task_filter& f) const override;
    std::vector<std::string> expire(std::chrono::system_clock::time_point now, std::chrono::milliseconds completed_ttl,
                                    std::chrono::milliseconds failed_ttl,
                                    std::chrono::milliseconds cancelled_ttl) override;
    std::size_t size() const override;
    /// redis_options::max_payload_bytes.
    std::size_t max_value_bytes() const noexcept override;

    /// Dead letters (id and reason), at most `limit`.
    std::vector<dead_letter> dead_letters(std::size_t limit = 1000) const;
    /// Deletes a dead letter and its preserved record. False if absent.
    bool drop_dead_letter(const std::string& id);

    const std::string& key_base() const noexcept { return base_; }
    std::string record_key(const std::string& id) const { return base_ + ":task:" + id; }

private:
    friend class redis_node_backend;  // runs the store's state write in its own script

    std::optional<task_record> decode_or_bury(const std::string& id, const redis_reply& reply) const;
    void bury(const std::string& id, const std::vector<redis_reply>* fields, const std::string& reason) const;
    void check_sizes(const task_record& r, bool whole) const;
    std::vector<std::string> write_keys(const task_record& r) const;
    std::vector<std::string> index_keys_all(const std::string& id) const;
    std::vector<std::string> index_args(const task_record& r) const;
    std::vector<std::string> create_args(const task_record& r) const;
    redis_script_call create_many_call(std::span<const task_record> rs, std::size_t from, std::size_t to) const;
    std::vector<std::string> update_args(const task_record& r, task_status expected) const;
    std::vector<std::pair<std::string, std::string>> index_page(std::size_t source, std::string& cursor) const;
    bool filed_in(const task_record& r, std::size_t source, const std::string& bucket) const;
    std::chrono::milliseconds ttl_of(task_status s) const;

    std::shared_ptr<redis_client> client_;
    std::string base_;
    redis_task_store_options options_;
    std::string live_key_, dead_key_;
    std::string finished_prefix_;
    std::array<std::string, 3> registry_, counts_;  ///< per class: completed, failed, cancelled
};

}  // namespace orchcore
