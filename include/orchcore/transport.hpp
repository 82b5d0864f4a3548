// transport: the queue that every process of one deployment shares.
//
// The coordinator admits task ids into a transport, workers lease them, and
// each lease ends with ack (done), nack (run again, possibly later) or
// expiry (its holder vanished; recover_expired() puts it back). Payloads
// and records live in the task_store; a transport holds only ids, their
// priority, and their lease state.
//
// Two implementations share these semantics, checked by one conformance
// suite (tests/unit/transport_conformance_test.cpp): memory_transport below,
// and redis_transport (<orchcore/redis/redis_transport.hpp>, component
// orchcore::redis).
//
// States of an id in a transport:
//
//   admit ──> waiting ──lease──> leased ──ack──> (gone)
//               ^  ^               │
//               │  └──nack(0)──────┤
//   delayed ────┘   (when due)     ├──nack(d>0)──> delayed
//      ^                           ├──lease expired + recover_expired──> waiting
//      │                           └──lease expired for the Nth time──> dead letter
//   cancel(): waiting or delayed ──> (gone)             (max_lease_expiries = N)
//   promote(): delayed ──> waiting (at once, not waiting for its due time)
//
// Semantics (identical for every implementation):
//
// * Admission applies the queue policy and the capacity in one atomic step.
//   Supported policies: reject_new, drop_lru and priority, with the same
//   decision table as admission_core (README, "Policies"). fail_fast needs a
//   consumer blocked on the queue, which a shared queue cannot know, so it
//   is refused at construction (the coordinator implements fail-fast itself
//   by checking for a free worker before admitting).
// * Capacity bounds the number of *waiting* tasks (not delayed, not leased)
//   at the moment of admission. Tasks coming back (nack, recovery) are never
//   refused, so the waiting count may exceed the capacity for a while; only
//   new admissions are held to it. Eviction (drop_lru, priority) picks its
//   victim among waiting tasks only and returns it in the result.
// * Order: reject_new and drop_lru hand tasks out in admission order;
//   priority hands out the highest priority first, admission order within
//   one priority. A task that comes back (nack, recovery) keeps its original
//   admission sequence number, so it goes ahead of tasks admitted after it.
// * Ids are non-empty strings. An id that is waiting, delayed or leased is a
//   duplicate (invalid_request); once acked or cancelled, the id may be
//   admitted again (the task_store is what rejects ids forever).
// * Every lease gets a fencing token, strictly greater than every token the
//   transport granted before (so monotonic per task attempt). ack, nack and
//   extend present the token; a token that is not the task's current lease
//   is refused (false), atomically, and counted in stats().stale_refusals.
//   A lease whose deadline passed may still be acked or nacked until someone
//   recovers it (the work was done; nothing else holds the task). extend
//   refuses an expired lease: its holder must stop.
// * recover_expired(now) puts every lease whose deadline < now back into the
//   waiting set and returns those leases; with several recoverers racing,
//   each orphan is returned to exactly one of them.
// * Poison tasks: with options().max_lease_expiries = N > 0, a task whose
//   lease has expired N times (its worker died N times while holding it)
//   is not requeued by recover_expired(): it leaves the queue for the
//   transport's dead-letter set with the reason "lease expired N times",
//   is returned with dead_lettered = true, and is counted in
//   stats().dead_lettered (not in recovered). nack() (a handler failure)
//   does not count as an expiry. dead_letters() lists the set,
//   drop_dead_letter() removes an entry; a dead-lettered id is no longer in
//   the transport, so it may be admitted again. 0 (the default): unlimited.
// * nack(delay > 0) parks the task in the delayed set; it becomes waiting
//   (visible to lease) once `now >= due` at a later lease() call.
// * promote(id) makes a delayed task waiting at once (its due time is
//   dropped; it keeps its admission sequence number) and wakes a consumer
//   blocked in wait_for_work; false, changing nothing, for a task that is
//   not delayed (waiting, leased, unknown).
// * ack / nack / extend / cancel are idempotent in effect: repeating one
//   changes nothing and returns false.
// * Steering mailbox: post_messages() appends messages, in order, to the
//   mailbox of a task that is in the transport (waiting, delayed or leased);
//   take_messages(id, token) returns and removes them all, atomically
//   checking that `token` is the task's current lease (a stale token gets
//   nothing, is refused and counted in stats().stale_refusals). Messages not
//   taken by one attempt wait for the next (nack, recovery). The mailbox
//   goes with the task: ack, cancel, eviction and dead-lettering delete it.
// * Time is passed in (`now`), as everywhere in orchcore's state machines.
//   For Redis, processes on several hosts must have NTP-synchronised clocks;
//   keep lease durations well above the clock skew.
// * Every member is thread-safe. Backends that can fail (Redis) throw
//   orchcore::error with errc::backend_unavailable when they cannot answer.
#pragma once

#include <orchcore/admission_policy.hpp>
#include <orchcore/admission_result.hpp>
#include <orchcore/detail/saturating.hpp>
#include <orchcore/error.hpp>
#include <orchcore/priority.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <iterator>
#include <list>
#include <memory>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace orchcore {

class node_backend;  // <orchcore/node_backend.hpp>
class task_store;    // <orchcore/task_store.hpp>

/// One admission into a transport.
struct transport_request {
    std::string id;                  ///< required, non-empty
    int priority = priority::normal;  ///< [0, 20]
};

/// The library's admission result shape, for id-only queues. `evicted`, if
/// set, holds the evicted task's id and priority (its value is empty).
using transport_admission = admission_result<std::monostate, std::string>;

/// One attempt's claim on a task.
struct transport_lease {
    std::string task_id;
    std::string worker_id;
    std::uint32_t attempt = 0;  ///< 1 on the first lease of this id, +1 on every lease after
    std::uint64_t token = 0;    ///< fencing token
    std::chrono::system_clock::time_point deadline{};
    /// Set by recover_expired() only: how many times this task's lease has
    /// expired, this one included.
    std::uint32_t expiries = 0;
    /// Set by recover_expired() only: the task was moved to the dead-letter
    /// set (options().max_lease_expiries reached) instead of being requeued.
    bool dead_lettered = false;
};

/// An entry of a transport's dead-letter set (poison tasks).
struct transport_dead_letter {
    std::string id;
    std::string reason;  ///< "lease expired N times"
};

/// recover_expired() split by outcome (see transport::recover_expired_ex).
struct transport_recovery {
    std::vector<transport_lease> requeued;
    std::vector<transport_lease> dead_lettered;
};

/// What ack_many() needs of a lease.
struct lease_ref {
    std::string task_id;
    std::uint64_t token = 0;
};

/// A watch_finished() registration: the callback is not called once this
/// is destroyed (nor while its destructor runs, when it returns). It must
/// not outlive its transport.
class transport_watch {
public:
    virtual ~transport_watch() = default;
};

/// Construction options of a transport. Invalid values throw
/// orchcore::invalid_argument (naming the field) from the constructor.
struct transport_options {
    queue_policy policy = queue_policy::reject_new;
    std::size_t capacity = 1024;  ///< waiting tasks; 0 admits nothing
    /// Bounds of the retry-after hint (the smoothed interval between
    /// dequeues), and its value before any dequeue was measured.
    std::chrono::milliseconds min_retry_after{1};
    std::chrono::milliseconds max_retry_after{60'000};
    std::chrono::milliseconds default_retry_after{1'000};
    /// A task whose lease expired this many times (its holder vanished each
    /// time) goes to the dead-letter set instead of back to the queue.
    /// 0: unlimited (always requeued).
    std::uint32_t max_lease_expiries = 0;
    /// Whether make_node_backend() may offer combined calls (a transport
    /// that has them: redis_transport). false: a coordinator node on this
    /// transport makes the separate transport and store calls.
    bool combined_node_calls = true;

    void validate() const {
        if (policy == queue_policy::fail_fast)
            throw invalid_argument("policy", "fail-fast",
                                   "not supported by a transport (a shared queue cannot see waiting consumers); "
                                   "use reject-new, drop-lru or priority");
        if (capacity > max_queue_capacity)
            throw invalid_argument("capacity", std::to_string(capacity),
                                   "must be at most " + std::to_string(max_queue_capacity));
        if (min_retry_after.count() < 0)
            throw invalid_argument("min_retry_after", std::to_string(min_retry_after.count()) + "ms", "must be >= 0");
        if (max_retry_after < min_retry_after)
            throw invalid_argument("max_retry_after", std::to_string(max_retry_after.count()) + "ms",
                                   "must be >= min_retry_after");
        if (default_retry_after < min_retry_after || default_retry_after > max_retry_after)
            throw invalid_argument("default_retry_after", std::to_string(default_retry_after.count()) + "ms",
                                   "must be within [min_retry_after, max_retry_after]");
    }
};

/// Counters and sizes of a transport (for the shared Redis queue: of every
/// process using it).
struct transport_stats {
    std::size_t waiting = 0;
    std::size_t delayed = 0;
    std::size_t leased = 0;
    std::uint64_t accepted = 0;
    std::array<std::uint64_t, rejection_reason_count> rejected_by_reason{};
    std::uint64_t evicted = 0;
    std::uint64_t cancelled = 0;
    std::uint64_t leases_granted = 0;
    std::uint64_t acked = 0;
    std::uint64_t nacked = 0;
    std::uint64_t recovered = 0;
    std::uint64_t stale_refusals = 0;
    /// Tasks moved to the dead-letter set by recover_expired() (poison
    /// tasks; handler failures are not counted here).
    std::uint64_t dead_lettered = 0;
    std::size_t dead = 0;  ///< entries currently in the dead-letter set

    std::uint64_t rejected(rejection_reason r) const noexcept {
        return rejected_by_reason[static_cast<std::size_t>(r)];
    }
};

class transport {
public:
    using clock = std::chrono::system_clock;
    using time_point = clock::time_point;

    virtual ~transport() = default;

    /// Admits one id (policy and capacity applied atomically).
    virtual transport_admission admit(const transport_request& r) = 0;
    /// Admits many ids, in order, each decided as if admitted alone. One
    /// round trip per chunk for Redis.
    virtual std::vector<transport_admission> admit_many(std::span<const transport_request> rs) {
        std::vector<transport_admission> out;
        out.reserve(rs.size());
        for (const auto& r : rs) out.push_back(admit(r));
        return out;
    }

    /// Makes due delayed tasks waiting, then leases up to `max` waiting
    /// tasks in dequeue order to `worker`, each until `now + duration`.
    /// Never blocks; an empty result means nothing is waiting.
    virtual std::vector<transport_lease> lease(std::string_view worker, std::size_t max,
                                               std::chrono::milliseconds duration, time_point now) = 0;
    /// Ends a lease: the task leaves the transport. False if `token` is not
    /// the task's current lease.
    virtual bool ack(const std::string& id, std::uint64_t token) = 0;
    /// ack() for many leases in one step; result i belongs to refs[i].
    virtual std::vector<bool> ack_many(std::span<const lease_ref> refs) {
        std::vector<bool> out;
        out.reserve(refs.size());
        for (const auto& r : refs) out.push_back(ack(r.task_id, r.token));
        return out;
    }
    /// Ends a lease and puts the task back: waiting at once if `delay` <= 0,
    /// else delayed until `now + delay`. False if the token is stale.
    virtual bool nack(const std::string& id, std::uint64_t token, std::chrono::milliseconds delay,
                      time_point now) = 0;
    /// Moves the lease's deadline to `now + duration`. False if the token is
    /// stale or the lease already expired (deadline < now).
    virtual bool extend(const std::string& id, std::uint64_t token, std::chrono::milliseconds duration,
                        time_point now) = 0;
    /// Removes a waiting or delayed task. False if it is not there (leased
    /// tasks are not cancelled here: the coordinator fences their lease).
    virtual bool cancel(const std::string& id) = 0;
    /// Makes a delayed task waiting now. False if it is not delayed. The
    /// default (a transport that cannot) throws
    /// orchcore::error(errc::invalid_argument).
    virtual bool promote(const std::string& id) {
        throw error(errc::invalid_argument, "orchcore: this transport cannot promote delayed tasks (task " + id + ")");
    }
    /// Appends steering messages to the mailbox of a task that is in the
    /// transport. False (nothing stored) if the task is not there (unknown,
    /// finished, cancelled). The default (a transport without mailboxes)
    /// throws orchcore::error(errc::invalid_argument).
    virtual bool post_messages(const std::string& id, std::span<const std::string> messages) {
        (void)messages;
        throw error(errc::invalid_argument, "orchcore: this transport has no steering mailboxes (task " + id + ")");
    }
    /// Takes every message waiting for `id`, if `token` is its current
    /// lease; std::nullopt (and a stale refusal counted) if it is not.
    virtual std::optional<std::vector<std::string>> take_messages(const std::string& id, std::uint64_t token) {
        (void)token;
        throw error(errc::invalid_argument, "orchcore: this transport has no steering mailboxes (task " + id + ")");
    }
    /// Puts up to `max` leases whose deadline < now back into the waiting
    /// set and returns them (each orphan to exactly one caller). With
    /// options().max_lease_expiries set, an orphan that reached it goes to
    /// the dead-letter set instead and is returned with dead_lettered = true.
    virtual std::vector<transport_lease> recover_expired(time_point now, std::size_t max) = 0;
    /// recover_expired(), split into requeued and dead-lettered leases.
    transport_recovery recover_expired_ex(time_point now, std::size_t max) {
        transport_recovery out;
        for (auto& l : recover_expired(now, max))
            (l.dead_lettered ? out.dead_lettered : out.requeued).push_back(std::move(l));
        return out;
    }
    /// Dead letters (poison tasks), ordered by id, at most `limit`. The
    /// default (for transports without a dead-letter set) is empty.
    virtual std::vector<transport_dead_letter> dead_letters(std::size_t limit = 1000) {
        (void)limit;
        return {};
    }
    /// Removes a dead letter. False if absent.
    virtual bool drop_dead_letter(const std::string& id) {
        (void)id;
        return false;
    }

    /// Blocks until work may be there or `timeout` passed (also returns
    /// early when a delayed task becomes due). True: woken (lease to find
    /// out); false: timed out. The default, for transports that cannot
    /// block, sleeps min(timeout, 20 ms) and returns false (the caller
    /// polls).
    virtual bool wait_for_work(std::chrono::milliseconds timeout) {
        std::this_thread::sleep_for(std::clamp(timeout, std::chrono::milliseconds(0), std::chrono::milliseconds(20)));
        return false;
    }
    /// Makes every wait_for_work() on this object return soon (stop).
    virtual void interrupt_waits() {}
    /// Announces that the tasks `ids` reached a terminal status (call after
    /// their records were written). The default does nothing.
    virtual void publish_finished(std::span<const std::string> ids) { (void)ids; }
    /// Calls `on_finished(id)` (on a background or publishing thread,
    /// never under a lock of the caller's) for every id published on this
    /// queue from now on; an empty id: some may have been missed. nullptr:
    /// not supported (the default), so the caller polls.
    virtual std::unique_ptr<transport_watch> watch_finished(std::function<void(const std::string&)> on_finished) {
        (void)on_finished;
        return nullptr;
    }
    /// The node_backend (<orchcore/node_backend.hpp>) a coordinator node
    /// uses over this transport and `store` when coordinator_options::
    /// node_backend is not set, asked once when the node starts. nullptr
    /// (the default; also with options().combined_node_calls false, or a
    /// store this transport cannot combine with): separate calls.
    virtual std::shared_ptr<node_backend> make_node_backend(const std::shared_ptr<task_store>& store) {
        (void)store;
        return nullptr;
    }

    /// Waiting + delayed tasks (racy for shared backends).
    virtual std::size_t size_approx() = 0;
    virtual std::size_t leased_count() = 0;
    virtual transport_stats stats() = 0;
    virtual const transport_options& options() const noexcept = 0;
};

namespace detail {

/// The part of the admission decision shared by the transports: static
/// rejection texts, identical on every backend.
inline constexpr std::string_view transport_text_empty_id = "empty id";
inline constexpr std::string_view transport_text_bad_priority = "priority out of range [0, 20]";
inline constexpr std::string_view transport_text_duplicate = "duplicate id: a task with this id is in the transport";
inline constexpr std::string_view transport_text_full = "queue is full";
inline constexpr std::string_view transport_text_capacity_zero = "queue capacity is 0";
inline constexpr std::string_view transport_text_not_outranked =
    "queue is full and no queued task has a lower priority";

/// Smoothed interval between dequeues (ms), as both transports keep it.
struct dequeue_interval {
    std::optional<double> ewma_ms{};
    std::optional<std::int64_t> last_ms{};

    void record(std::int64_t now_ms, std::size_t n) {
        if (n == 0) return;
        if (last_ms) {
            const double interval = std::max(0.0, static_cast<double>(now_ms - *last_ms) / static_cast<double>(n));
            ewma_ms = ewma_ms ? 0.8 * *ewma_ms + 0.2 * interval : interval;
        }
        last_ms = now_ms;
    }
};

inline std::chrono::milliseconds retry_after_from(std::optional<double> ewma_ms, const transport_options& o) {
    if (!ewma_ms) return o.default_retry_after;
    const double lo = static_cast<double>(o.min_retry_after.count());
    const double hi = static_cast<double>(o.max_retry_after.count());
    return std::chrono::milliseconds{static_cast<std::int64_t>(std::clamp(std::ceil(*ewma_ms), lo, hi))};
}

inline std::int64_t to_unix_ms(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

inline std::chrono::system_clock::time_point from_unix_ms(std::int64_t ms) {
    return saturating_add(std::chrono::system_clock::time_point{}, std::chrono::milliseconds{ms});
}

// `ms + d` in milliseconds since the epoch, stopping at the largest value.
inline std::int64_t unix_ms_after(std::int64_t ms, std::chrono::milliseconds d) {
    return saturating_add(std::chrono::milliseconds{ms}, d).count();
}

/// The dead-letter reason of a task whose lease expired `n` times.
inline std::string lease_expired_reason(std::uint32_t n) {
    return "lease expired " + std::to_string(n) + (n == 1 ? " time" : " times");
}

/// Fills in a rejection.
inline transport_admission transport_reject(transport_admission r, rejection_reason why, std::string_view text,
                                            std::chrono::milliseconds retry_after = std::chrono::milliseconds{0}) {
    r.is_accepted = false;
    r.reason = why;
    r.detail = text;
    r.retry_after = retry_after;
    return r;
}

}  // namespace detail

/// The in-process transport: a mutex around ordered sets. Lease deadlines
/// and delays are kept with millisecond resolution, like Redis.
class memory_transport final : public transport {
public:
    explicit memory_transport(transport_options o = {}) : options_(o) { options_.validate(); }

    transport_admission admit(const transport_request& r) override {
        std::unique_lock lk(mutex_);
        auto out = admit_locked(r);
        lk.unlock();
        if (out.is_accepted) work_cv_.notify_all();
        return out;
    }

    std::vector<transport_admission> admit_many(std::span<const transport_request> rs) override {
        std::lock_guard lk(mutex_);
        std::vector<transport_admission> out;
        out.reserve(rs.size());
        for (const auto& r : rs) out.push_back(admit_locked(r));
        work_cv_.notify_all();
        return out;
    }

    std::vector<transport_lease> lease(std::string_view worker, std::size_t max, std::chrono::milliseconds duration,
                                       time_point now) override {
        if (duration.count() <= 0)
            throw invalid_argument("lease duration", std::to_string(duration.count()) + "ms", "must be > 0");
        const auto now_ms = detail::to_unix_ms(now);
        std::lock_guard lk(mutex_);
        // Promote due delayed tasks.
        while (!delayed_.empty() && delayed_.begin()->first <= now_ms) {
            auto node = delayed_.extract(delayed_.begin());
            make_waiting(node.value().second, tasks_.at(node.value().second));
        }
        std::vector<transport_lease> out;
        const auto deadline_ms = detail::unix_ms_after(now_ms, duration);
        while (out.size() < max && !waiting_.empty()) {
            const std::string id = std::get<2>(*waiting_.begin());
            task& t = tasks_.at(id);
            remove_waiting(id, t);
            t.where = place::leased;
            t.at_ms = deadline_ms;
            t.token = ++last_token_;
            ++t.attempt;
            t.worker.assign(worker);
            leases_.emplace(deadline_ms, id);
            out.push_back({id, t.worker, t.attempt, t.token, detail::from_unix_ms(deadline_ms)});
        }
        stats_.leases_granted += out.size();
        interval_.record(now_ms, out.size());
        return out;
    }

    bool ack(const std::string& id, std::uint64_t token) override {
        std::lock_guard lk(mutex_);
        return ack_locked(id, token);
    }

    std::vector<bool> ack_many(std::span<const lease_ref> refs) override {
        std::lock_guard lk(mutex_);
        std::vector<bool> out;
        out.reserve(refs.size());
        for (const auto& r : refs) out.push_back(ack_locked(r.task_id, r.token));
        return out;
    }

    bool nack(const std::string& id, std::uint64_t token, std::chrono::milliseconds delay, time_point now) override {
        std::lock_guard lk(mutex_);
        auto* t = current(id, token);
        if (!t) return false;
        leases_.erase({t->at_ms, id});
        t->token = 0;
        t->worker.clear();
        if (delay.count() > 0) {
            t->where = place::delayed;
            t->at_ms = detail::unix_ms_after(detail::to_unix_ms(now), delay);
            delayed_.emplace(t->at_ms, id);
        } else {
            make_waiting(id, *t);
        }
        work_cv_.notify_all();  // a waiter cuts its wait at the new first due time
        ++stats_.nacked;
        return true;
    }

    bool extend(const std::string& id, std::uint64_t token, std::chrono::milliseconds duration,
                time_point now) override {
        const auto now_ms = detail::to_unix_ms(now);
        std::lock_guard lk(mutex_);
        auto* t = current(id, token);
        if (!t) return false;
        if (t->at_ms < now_ms) {
            ++stats_.stale_refusals;
            return false;
        }
        leases_.erase({t->at_ms, id});
        t->at_ms = now_ms + duration.count();
        leases_.emplace(t->at_ms, id);
        return true;
    }

    bool post_messages(const std::string& id, std::span<const std::string> messages) override {
        std::lock_guard lk(mutex_);
        auto it = tasks_.find(id);
        if (it == tasks_.end()) return false;
        it->second.mailbox.insert(it->second.mailbox.end(), messages.begin(), messages.end());
        return true;
    }

    std::optional<std::vector<std::string>> take_messages(const std::string& id, std::uint64_t token) override {
        std::lock_guard lk(mutex_);
        auto* t = current(id, token);
        if (!t) return std::nullopt;
        std::vector<std::string> out;
        out.swap(t->mailbox);
        return out;
    }

    bool cancel(const std::string& id) override {
        std::lock_guard lk(mutex_);
        auto it = tasks_.find(id);
        if (it == tasks_.end() || it->second.where == place::leased) return false;
        if (it->second.where == place::waiting) remove_waiting(id, it->second);
        else delayed_.erase({it->second.at_ms, id});
        tasks_.erase(it);
        ++stats_.cancelled;
        return true;
    }

    bool promote(const std::string& id) override {
        {
            std::lock_guard lk(mutex_);
            auto it = tasks_.find(id);
            if (it == tasks_.end() || it->second.where != place::delayed) return false;
            delayed_.erase({it->second.at_ms, id});
            make_waiting(id, it->second);
        }
        work_cv_.notify_all();
        return true;
    }

    std::vector<transport_lease> recover_expired(time_point now, std::size_t max) override {
        const auto now_ms = detail::to_unix_ms(now);
        std::lock_guard lk(mutex_);
        std::vector<transport_lease> out;
        while (out.size() < max && !leases_.empty() && leases_.begin()->first < now_ms) {
            auto node = leases_.extract(leases_.begin());
            const std::string& id = node.value().second;
            auto it = tasks_.find(id);
            task& t = it->second;
            ++t.expiries;
            transport_lease l{id, t.worker, t.attempt, t.token, detail::from_unix_ms(t.at_ms), t.expiries, false};
            if (options_.max_lease_expiries != 0 && t.expiries >= options_.max_lease_expiries) {
                l.dead_lettered = true;
                dead_[id] = detail::lease_expired_reason(t.expiries);
                tasks_.erase(it);
                ++stats_.dead_lettered;
            } else {
                t.token = 0;
                t.worker.clear();
                make_waiting(id, t);
                work_cv_.notify_all();
                ++stats_.recovered;
            }
            out.push_back(std::move(l));
        }
        return out;
    }

    std::vector<transport_dead_letter> dead_letters(std::size_t limit = 1000) override {
        std::lock_guard lk(mutex_);
        std::vector<transport_dead_letter> out;
        for (auto it = dead_.begin(); it != dead_.end() && out.size() < limit; ++it)
            out.push_back({it->first, it->second});
        return out;
    }

    bool drop_dead_letter(const std::string& id) override {
        std::lock_guard lk(mutex_);
        return dead_.erase(id) != 0;
    }

    bool wait_for_work(std::chrono::milliseconds timeout) override {
        using steady = std::chrono::steady_clock;
        const auto until = detail::deadline_after(std::max(timeout, std::chrono::milliseconds(0)));
        std::unique_lock lk(mutex_);
        for (;;) {
            if (interrupts_ > 0) {
                --interrupts_;
                return true;
            }
            if (!waiting_.empty()) return true;
            auto wake = until;
            if (!delayed_.empty()) {
                const auto due_in = delayed_.begin()->first - detail::to_unix_ms(clock::now());
                if (due_in <= 0) return true;
                wake = std::min(wake, detail::deadline_after(std::chrono::milliseconds(due_in)));
            }
            if (steady::now() >= until) return false;
            ++waiters_;
            work_cv_.wait_until(lk, wake);
            --waiters_;
        }
    }

    void interrupt_waits() override {
        {
            std::lock_guard lk(mutex_);
            interrupts_ = std::max<std::size_t>(1, waiters_);
        }
        work_cv_.notify_all();
    }

    void publish_finished(std::span<const std::string> ids) override {
        std::lock_guard lk(watch_mutex_);
        for (const auto& fn : watches_)
            for (const auto& id : ids) fn(id);
    }

    std::unique_ptr<transport_watch> watch_finished(std::function<void(const std::string&)> on_finished) override {
        std::lock_guard lk(watch_mutex_);
        watches_.push_back(std::move(on_finished));
        return std::make_unique<watch>(*this, std::prev(watches_.end()));
    }

    std::size_t size_approx() override {
        std::lock_guard lk(mutex_);
        return waiting_.size() + delayed_.size();
    }

    std::size_t leased_count() override {
        std::lock_guard lk(mutex_);
        return leases_.size();
    }

    transport_stats stats() override {
        std::lock_guard lk(mutex_);
        transport_stats s = stats_;
        s.waiting = waiting_.size();
        s.delayed = delayed_.size();
        s.leased = leases_.size();
        s.dead = dead_.size();
        return s;
    }

    const transport_options& options() const noexcept override { return options_; }

private:
    using watch_list = std::list<std::function<void(const std::string&)>>;
    class watch final : public transport_watch {
    public:
        watch(memory_transport& t, watch_list::iterator it) : t_(t), it_(it) {}
        ~watch() override {
            std::lock_guard lk(t_.watch_mutex_);
            t_.watches_.erase(it_);
        }

    private:
        memory_transport& t_;
        watch_list::iterator it_;
    };

    enum class place { waiting, delayed, leased };
    struct task {
        int priority = priority::normal;
        std::uint64_t seq = 0;
        std::uint32_t attempt = 0;
        std::uint32_t expiries = 0;  // leases of this task that expired
        std::uint64_t token = 0;
        std::string worker{};
        place where = place::waiting;
        std::int64_t at_ms = 0;  // delayed: due; leased: deadline
        std::vector<std::string> mailbox{};  // steering messages, oldest first
    };
    // (order key, admission sequence, id); the order key is 0 for FIFO
    // policies and 20 - priority for the priority policy.
    using waiting_key = std::tuple<int, std::uint64_t, std::string>;

    bool by_priority() const noexcept { return options_.policy == queue_policy::priority; }

    int order_key(int p) const noexcept { return by_priority() ? priority::max - p : 0; }

    void make_waiting(const std::string& id, task& t) {
        t.where = place::waiting;
        waiting_.emplace(order_key(t.priority), t.seq, id);
        if (options_.policy == queue_policy::drop_lru) by_level_.emplace(t.priority, t.seq, id);
        ++level_count_[static_cast<std::size_t>(t.priority)];
    }

    void remove_waiting(const std::string& id, const task& t) {
        waiting_.erase({order_key(t.priority), t.seq, id});
        if (options_.policy == queue_policy::drop_lru) by_level_.erase({t.priority, t.seq, id});
        --level_count_[static_cast<std::size_t>(t.priority)];
    }

    // The task whose current lease has `token`, or null (counted as stale).
    task* current(const std::string& id, std::uint64_t token) {
        auto it = tasks_.find(id);
        if (it == tasks_.end() || it->second.where != place::leased || it->second.token != token) {
            ++stats_.stale_refusals;
            return nullptr;
        }
        return &it->second;
    }

    bool ack_locked(const std::string& id, std::uint64_t token) {
        auto* t = current(id, token);
        if (!t) return false;
        leases_.erase({t->at_ms, id});
        tasks_.erase(id);
        ++stats_.acked;
        return true;
    }

    transport_admission admit_locked(const transport_request& r) {
        transport_admission out;
        out.id = r.id;
        auto reject = [&](rejection_reason why, std::string_view text, std::chrono::milliseconds ra) {
            ++stats_.rejected_by_reason[static_cast<std::size_t>(why)];
            return detail::transport_reject(std::move(out), why, text, ra);
        };
        const auto zero = std::chrono::milliseconds{0};
        if (r.id.empty()) return reject(rejection_reason::invalid_request, detail::transport_text_empty_id, zero);
        if (!priority::is_valid(r.priority))
            return reject(rejection_reason::invalid_request, detail::transport_text_bad_priority, zero);
        if (tasks_.count(r.id)) return reject(rejection_reason::invalid_request, detail::transport_text_duplicate, zero);
        if (waiting_.size() >= options_.capacity) {
            const auto ra = detail::retry_after_from(interval_.ewma_ms, options_);
            if (options_.policy == queue_policy::reject_new)
                return reject(rejection_reason::queue_full, detail::transport_text_full, ra);
            if (waiting_.empty())
                return reject(rejection_reason::queue_full, detail::transport_text_capacity_zero, ra);
            std::string victim;
            if (options_.policy == queue_policy::drop_lru) {
                victim = std::get<2>(*by_level_.begin());
            } else {
                victim = std::get<2>(*std::prev(waiting_.end()));
                if (r.priority <= tasks_.at(victim).priority)
                    return reject(rejection_reason::queue_full, detail::transport_text_not_outranked, ra);
            }
            auto vit = tasks_.find(victim);
            remove_waiting(victim, vit->second);
            out.evicted.emplace(queue_entry<std::monostate, std::string>{victim, {}, vit->second.priority, {}});
            tasks_.erase(vit);
            ++stats_.evicted;
        }
        task t;
        t.priority = r.priority;
        t.seq = ++seq_;
        std::size_t ahead = waiting_.size();
        if (by_priority()) {
            ahead = 0;
            for (int q = priority::max; q >= r.priority; --q) ahead += level_count_[static_cast<std::size_t>(q)];
        }
        auto [it, inserted] = tasks_.emplace(r.id, std::move(t));
        make_waiting(r.id, it->second);
        out.is_accepted = true;
        out.position = ahead;
        ++stats_.accepted;
        return out;
    }

    transport_options options_;
    std::mutex mutex_;
    std::unordered_map<std::string, task> tasks_;
    std::set<waiting_key> waiting_;
    std::set<std::tuple<int, std::uint64_t, std::string>> by_level_;  // drop_lru: (priority, seq, id)
    std::array<std::size_t, priority::levels> level_count_{};
    std::set<std::pair<std::int64_t, std::string>> delayed_;  // (due ms, id)
    std::set<std::pair<std::int64_t, std::string>> leases_;   // (deadline ms, id)
    std::map<std::string, std::string> dead_;                  // dead letters: id -> reason
    std::uint64_t seq_ = 0;
    std::uint64_t last_token_ = 0;
    detail::dequeue_interval interval_{};
    transport_stats stats_{};
    // Wake-ups: consumers blocked in wait_for_work, and the wake-ups owed
    // to them by interrupt_waits() (kept for a consumer about to wait).
    std::condition_variable work_cv_;
    std::size_t waiters_ = 0;
    std::size_t interrupts_ = 0;
    // Finish notifications; callbacks run under watch_mutex_ so that a
    // watch's destructor waits for a call in progress.
    std::mutex watch_mutex_;
    watch_list watches_;
};

}  // namespace orchcore
