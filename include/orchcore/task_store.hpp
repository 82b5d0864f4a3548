// task_store: where task records live. The coordinator writes every
// lifecycle change through it; the in-memory store is the default and the
// Redis adapter implements the same interface, checked by one conformance
// suite (tests/unit/backend_conformance_test.cpp).
//
// Implementations must be thread-safe. Status changes are compare-and-set:
// a writer states the status it expects, so two coordinators racing on one
// task cannot both win.
#pragma once

#include <orchcore/detail/saturating.hpp>
#include <orchcore/error.hpp>
#include <orchcore/task.hpp>
#include <orchcore/task_status.hpp>

#include <chrono>
#include <cstddef>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace orchcore {

struct task_filter {
    std::optional<task_status> status{};
    std::optional<std::string> type{};
    std::optional<std::string> owner{};
    std::optional<std::string> worker_id{};
    std::size_t limit = 1000;

    bool matches(const task_record& r) const {
        return (!status || r.status == *status) && (!type || r.type == *type) && (!owner || r.owner == *owner) &&
               (!worker_id || r.worker_id == *worker_id);
    }
};

/// The state part of a record: what task_store::update() writes (status,
/// timestamps but created_at, counters, worker, progress, result, error,
/// and metadata, which holds the coordinator's cancellation marker).
inline void copy_task_state(task_record& to, const task_record& from) {
    to.status = from.status;
    to.started_at = from.started_at;
    to.finished_at = from.finished_at;
    to.attempts = from.attempts;
    to.retries = from.retries;
    to.turns = from.turns;
    to.worker_losses = from.worker_losses;
    to.worker_id = from.worker_id;
    to.progress = from.progress;
    to.progress_message = from.progress_message;
    to.result = from.result;
    to.error = from.error;
    to.metadata = from.metadata;
}

class task_store {
public:
    virtual ~task_store() = default;

    /// Stores a new record. Returns false (and changes nothing) if the id exists.
    virtual bool create(const task_record& r) = 0;
    /// create() for many records; result i belongs to rs[i]. Each create is
    /// atomic, the batch is not. Stores with round trips (Redis) send the
    /// batch in one pipeline.
    virtual std::vector<bool> create_many(std::span<const task_record> rs) {
        std::vector<bool> out;
        out.reserve(rs.size());
        for (const auto& r : rs) out.push_back(create(r));
        return out;
    }
    virtual std::optional<task_record> get(const std::string& id) const = 0;
    /// get() for many ids (one pipeline for Redis); result i belongs to ids[i].
    virtual std::vector<std::optional<task_record>> get_many(std::span<const std::string> ids) const {
        std::vector<std::optional<task_record>> out;
        out.reserve(ids.size());
        for (const auto& id : ids) out.push_back(get(id));
        return out;
    }
    /// Writes the state part of `r` (see copy_task_state) over the stored
    /// record if its stored status is `expected`; the write-once part (type,
    /// payload, priority, owner, tags, timeouts, retries, backoff,
    /// created_at) is set by create() alone and `r`'s copy of it is ignored.
    /// The new status must be `expected` itself or a legal transition from
    /// it (otherwise throws error(errc::illegal_transition)). Returns false
    /// if the record is missing or its status is not `expected`.
    virtual bool update(const task_record& r, task_status expected) = 0;
    /// update() for many records (one pipeline for Redis); result i belongs
    /// to rs[i], which expects expected[i]. Each update is atomic, the batch
    /// is not. Throws invalid_argument if the spans differ in length.
    virtual std::vector<bool> update_many(std::span<const task_record> rs, std::span<const task_status> expected) {
        check_batch(rs.size(), expected.size());
        std::vector<bool> out;
        out.reserve(rs.size());
        for (std::size_t i = 0; i < rs.size(); ++i) out.push_back(update(rs[i], expected[i]));
        return out;
    }
    /// Removes a record. Returns false if absent.
    virtual bool erase(const std::string& id) = 0;
    /// Records matching the filter, at most filter.limit, in no set order.
    virtual std::vector<task_record> list(const task_filter& f) const = 0;
    /// Removes terminal records whose finished_at + ttl(status) <= now.
    /// Returns the ids removed.
    virtual std::vector<std::string> expire(std::chrono::system_clock::time_point now,
                                            std::chrono::milliseconds completed_ttl,
                                            std::chrono::milliseconds failed_ttl,
                                            std::chrono::milliseconds cancelled_ttl) = 0;
    virtual std::size_t size() const = 0;
    /// The largest payload or result (bytes) the store accepts; a larger
    /// one is refused with orchcore::invalid_argument. The coordinator
    /// checks a handler's result against it before writing, and fails that
    /// task alone ("result of N bytes exceeds max_payload_bytes = M",
    /// without retries: the same result would be refused again). No limit
    /// by default.
    virtual std::size_t max_value_bytes() const noexcept { return std::numeric_limits<std::size_t>::max(); }

protected:
    static void check_batch(std::size_t records, std::size_t expected) {
        if (records != expected)
            throw invalid_argument("expected", std::to_string(expected) + " statuses",
                                   "update_many needs one expected status per record (" + std::to_string(records) +
                                       ")");
    }
};

/// The default store: a hash map under a mutex.
class memory_task_store final : public task_store {
public:
    bool create(const task_record& r) override {
        std::lock_guard lk(mutex_);
        return records_.try_emplace(r.id, r).second;
    }

    std::optional<task_record> get(const std::string& id) const override {
        std::lock_guard lk(mutex_);
        auto it = records_.find(id);
        if (it == records_.end()) return std::nullopt;
        return it->second;
    }

    bool update(const task_record& r, task_status expected) override {
        if (r.status != expected) check_transition(expected, r.status);
        std::lock_guard lk(mutex_);
        auto it = records_.find(r.id);
        if (it == records_.end() || it->second.status != expected) return false;
        copy_task_state(it->second, r);
        return true;
    }

    bool erase(const std::string& id) override {
        std::lock_guard lk(mutex_);
        return records_.erase(id) == 1;
    }

    std::vector<task_record> list(const task_filter& f) const override {
        std::lock_guard lk(mutex_);
        std::vector<task_record> out;
        for (const auto& [id, r] : records_) {
            if (out.size() >= f.limit) break;
            if (f.matches(r)) out.push_back(r);
        }
        return out;
    }

    std::vector<std::string> expire(std::chrono::system_clock::time_point now, std::chrono::milliseconds completed_ttl,
                                    std::chrono::milliseconds failed_ttl,
                                    std::chrono::milliseconds cancelled_ttl) override {
        std::lock_guard lk(mutex_);
        std::vector<std::string> out;
        for (auto it = records_.begin(); it != records_.end();) {
            const task_record& r = it->second;
            if (is_terminal(r.status) && r.finished_at) {
                const auto ttl = r.status == task_status::completed   ? completed_ttl
                                 : r.status == task_status::cancelled ? cancelled_ttl
                                                                      : failed_ttl;
                if (detail::saturating_add(*r.finished_at, ttl) <= now) {
                    out.push_back(it->first);
                    it = records_.erase(it);
                    continue;
                }
            }
            ++it;
        }
        return out;
    }

    std::size_t size() const override {
        std::lock_guard lk(mutex_);
        return records_.size();
    }

private:
    mutable std::mutex mutex_;
    std::unordered_map<std::string, task_record> records_;
};

}  // namespace orchcore
