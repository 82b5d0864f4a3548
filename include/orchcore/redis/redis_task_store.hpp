// redis_task_store: the task_store interface (<orchcore/task_store.hpp>)
// over Redis.
//
// Keys (hash tag shared with the transport of the same queue):
//
//   {<prefix>:<queue>}:task:<id>       HASH  s (status), d (the rest of the
//                                            record as JSON, Boost.JSON), p
//                                            (payload bytes), r (result bytes)
//   {<prefix>:<queue>}:tasks           SET   ids of stored records
//   {<prefix>:<queue>}:finished:<s>    ZSET  terminal records by finished_at
//                                            (unix ms); <s> is completed,
//                                            failed (failed and timed_out) or
//                                            cancelled
//   {<prefix>:<queue>}:dead            HASH  dead letters: id -> reason
//   {<prefix>:<queue>}:dead:<id>       (any) the undecodable record, as found
//
// * create is SET-if-absent in one script: a duplicate id is refused, never
//   overwritten. update is compare-and-set on the status in one script.
// * TTL: expire(now, ttls...) removes terminal records whose finished_at +
//   ttl <= now (as the in-memory store). If redis_task_store_options sets
//   TTLs, a record that becomes terminal also gets a Redis expiry
//   (PEXPIREAT finished_at + ttl), so its key disappears even if nobody
//   calls expire(); expire() uses min(its argument, that TTL) per status,
//   so it still reports each such id once and removes its index entries.
//   size() counts the index (records that Redis already expired stay
//   counted until the next expire()).
// * A record that cannot be decoded (not a hash, unknown status, bad JSON,
//   missing fields, a field out of the range the library writes: priority
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

#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace orchcore {

struct redis_task_store_options {
    /// Redis-side expiry of terminal records (0: none; rely on expire()).
    std::chrono::milliseconds completed_ttl{0};
    std::chrono::milliseconds failed_ttl{0};  ///< failed and timed_out
    std::chrono::milliseconds cancelled_ttl{0};
};

struct dead_letter {
    std::string id;
    std::string reason;
};

class redis_task_store final : public task_store {
public:
    redis_task_store(std::shared_ptr<redis_client> client, std::string queue, redis_task_store_options o = {});

    bool create(const task_record& r) override;
    /// create() for many records in one pipeline (one round trip); result
    /// i belongs to rs[i]. Every record is checked (sizes, id) before
    /// anything is sent. Each create is atomic; the batch is not.
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

    /// Encoding of a record's fields other than status, payload and result
    /// (exposed for tests and tools).
    static std::string encode_meta(const task_record& r);

private:
    friend class redis_node_backend;  // writes records with write_args() in its own scripts

    std::optional<task_record> decode_or_bury(const std::string& id, const redis_reply& fields) const;
    void bury(const std::string& id, const std::string& raw_d, bool is_hash, const std::string& reason) const;
    void check_sizes(const task_record& r) const;
    std::vector<std::string> write_args(const task_record& r) const;
    const std::string& finished_key(task_status s) const;

    std::shared_ptr<redis_client> client_;
    std::string base_;
    redis_task_store_options options_;
    std::string index_key_, dead_key_;
    std::string finished_completed_, finished_failed_, finished_cancelled_;
};

}  // namespace orchcore
