// A task's record as the task table keeps it: the fields every task uses
// inline, the rarely set ones (owner, metadata, tags, timeouts, progress
// message, result, error, a backoff other than the default) in one block allocated
// when the first of them is set. Converts to and from task_record.
// The metadata is an immutable block shared with the task's attempts
// (and with copies of the record): a change replaces the block.
#pragma once

#include "clock.hpp"
#include "shared_text.hpp"

#include <orchcore/task.hpp>

#include <cstdint>
#include <memory>
#include <optional>

namespace orchcore::detail {

// An optional time point in the size of one: the clock's minimum means
// none (a time point of exactly that value is kept one tick later).
template <class TimePoint>
class opt_time {
public:
    opt_time() = default;
    opt_time(TimePoint t) noexcept : t_(t == none() ? t + typename TimePoint::duration(1) : t) {}  // NOLINT
    opt_time(const std::optional<TimePoint>& t) noexcept : opt_time() {                            // NOLINT
        if (t) *this = opt_time(*t);
    }
    explicit operator bool() const noexcept { return t_ != none(); }
    const TimePoint& operator*() const noexcept { return t_; }
    void reset() noexcept { t_ = none(); }
    std::optional<TimePoint> get() const {
        if (!*this) return std::nullopt;
        return t_;
    }

private:
    static constexpr TimePoint none() noexcept { return TimePoint::min(); }
    TimePoint t_ = none();
};

using metadata_map = std::map<std::string, std::string>;

/// The metadata of a shared block; an empty map for none.
const metadata_map& metadata_of(const std::shared_ptr<const metadata_map>& m) noexcept;

class entry_record {
public:
    std::string id, type;
    shared_text payload;  ///< shared with the task's attempts
    shared_text worker_id;
    wall::time_point created_at{};
    opt_time<wall::time_point> started_at, finished_at;
    double progress = 0.0;
    std::int32_t priority = priority::normal;
    std::uint32_t max_retries = 0, attempts = 0, retries = 0, turns = 0, worker_losses = 0;
    task_status status = task_status::pending;

    entry_record() = default;
    entry_record(const entry_record& o);
    entry_record(entry_record&&) noexcept = default;
    entry_record& operator=(const entry_record& o);
    entry_record& operator=(entry_record&&) noexcept = default;
    ~entry_record() = default;

    entry_record& operator=(task_record r);
    operator task_record() const;  // NOLINT: records convert where a task_record is expected

    const std::string& owner() const noexcept;
    const std::map<std::string, std::string>& metadata() const noexcept;
    /// The metadata block itself (null: none), for an attempt to share.
    const std::shared_ptr<const metadata_map>& shared_metadata() const noexcept { return view().metadata; }
    const std::vector<std::string>& tags() const noexcept;
    const resource_request& resources() const noexcept { return view().resources; }
    const std::string& session() const noexcept { return view().session; }
    const std::string& progress_message() const noexcept;
    const std::string& result() const noexcept;
    const std::string& error() const noexcept;
    const backoff_policy& backoff() const noexcept;
    std::chrono::milliseconds timeout() const noexcept { return view().timeout; }
    std::chrono::milliseconds turn_timeout() const noexcept { return view().turn_timeout; }

    // Setting an empty value (or the default backoff) allocates nothing.
    void set_owner(std::string v);
    void set_metadata(std::map<std::string, std::string> v);
    void erase_metadata(const std::string& key);
    void set_tags(std::vector<std::string> v);
    void set_placement(resource_request r, std::string session);
    void set_progress_message(std::string v);
    void set_result(std::string v);
    void set_error(std::string v);
    void set_backoff(const backoff_policy& v);
    void set_timeout(std::chrono::milliseconds v);
    void set_turn_timeout(std::chrono::milliseconds v);

private:
    struct extras {
        std::string owner;
        std::shared_ptr<const metadata_map> metadata;  ///< null or not empty
        std::vector<std::string> tags;
        resource_request resources;
        std::string session;
        std::string progress_message, result, error;
        backoff_policy backoff{};
        std::chrono::milliseconds timeout{0}, turn_timeout{0};
    };
    extras& more();
    static const extras& none() noexcept;
    const extras& view() const noexcept { return x_ ? *x_ : none(); }

    std::unique_ptr<extras> x_;
};

}  // namespace orchcore::detail
