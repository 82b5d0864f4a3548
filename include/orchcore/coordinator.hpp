// The coordinator: admission, dispatch, retries, timeouts, cancellation,
// steering, health, auto-scaling and TTL maintenance over a pool of workers.
//
//   orchcore::coordinator c{{.policy = orchcore::queue_policy::priority}};
//   c.register_handler("resize", [](orchcore::task_context& ctx) {
//       return resize(ctx.payload());                    // result (encoded)
//   });
//   std::string out = c.submit("resize", "img-42.png");  // blocks for the result
//   auto h = c.submit_async("resize", "img-43.png");     // handle; h.wait_for(5s)
//
// Handlers run on worker threads (plain callables) or as Boost.Asio
// coroutines (register_async_handler). A handler returns its result, throws
// to fail (orchcore::non_retryable_error skips retries), polls or awaits
// cancellation, reads steering messages, reports progress, or asks for a
// continuation (ctx.continue_later()) to yield back to the queue between
// turns. Every attempt carries a fencing token: after a timeout or a worker
// declared dead, the late attempt's completion, heartbeat and steering reads
// are refused and counted.
//
// Threads: an internal control thread runs one Asio timer for retries,
// timeouts, heartbeats/health, auto-scaling and TTL expiry. Workers have
// their own threads (worker_pool.hpp). All public members are thread-safe.
#pragma once

#include <orchcore/admission_policy.hpp>
#include <orchcore/admission_result.hpp>
#include <orchcore/autoscale_options.hpp>
#include <orchcore/backoff.hpp>
#include <orchcore/codec.hpp>
#include <orchcore/detail/saturating.hpp>
#include <orchcore/error.hpp>
#include <orchcore/event_bus.hpp>
#include <orchcore/node_options.hpp>
#include <orchcore/stop_mode.hpp>
#include <orchcore/task.hpp>
#include <orchcore/worker_options.hpp>
#include <orchcore/worker_status.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace orchcore {

// Backends the options hold by std::shared_ptr only (task_store.hpp,
// transport.hpp, worker_registry.hpp define them).
class task_store;
class transport;
class transport_watch;
class worker_registry;

/// Thrown by a handler to fail its task without retries.
class non_retryable_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// submit() could not admit the task.
class rejected_error : public error {
public:
    rejected_error(rejection_reason r, std::chrono::milliseconds retry_after, const std::string& what)
        : error(errc::rejected, what), reason_(r), retry_after_(retry_after) {}
    rejection_reason reason() const noexcept { return reason_; }
    std::chrono::milliseconds retry_after() const noexcept { return retry_after_; }

private:
    rejection_reason reason_;
    std::chrono::milliseconds retry_after_;
};

/// Submission refused a task whose resource request no registered worker
/// could ever hold, even with nothing else held on it (errc::unplaceable).
/// The message names the request.
class unplaceable_error : public error {
public:
    explicit unplaceable_error(const std::string& what) : error(errc::unplaceable, what) {}
};

/// submit() or task_handle::get(): the task ended failed or timed out.
class task_failed_error : public error {
public:
    task_failed_error(task_record r, const std::string& what) : error(errc::task_failed, what), record_(std::move(r)) {}
    const task_record& record() const noexcept { return record_; }

private:
    task_record record_;
};

namespace detail {
struct coordinator_impl;
struct attempt_state;
}  // namespace detail

/// What a handler sees of its task during one attempt (or turn). A copy
/// kept past the handler reads its fields as before; its steering reads
/// throw error(errc::stale_token), and its progress reports are refused as
/// a fenced attempt's. Once the coordinator is destroyed, both throw
/// error(errc::stale_token).
class task_context {
public:
    const std::string& id() const noexcept;
    const std::string& type() const noexcept;
    const std::string& payload() const noexcept;
    template <encodable T>
    T payload_as() const {
        return codec<T>::decode(payload());
    }
    const std::map<std::string, std::string>& metadata() const noexcept;
    std::uint32_t attempt() const noexcept;  ///< 1-based
    std::uint32_t turn() const noexcept;     ///< 0-based continuation turn
    const std::string& worker_id() const noexcept;
    std::uint64_t fencing_token() const noexcept;

    /// Cancellation (task cancelled, timed out, or worker declared dead).
    bool cancellation_requested() const noexcept;
    /// Throws orchcore::cancelled_error if cancellation was requested.
    void throw_if_cancelled() const;

    /// Steering: takes every message sent to this task so far, in order,
    /// each exactly once. Throws error(errc::stale_token) if this attempt no
    /// longer holds the task.
    std::vector<std::string> receive();
    /// Waits up to `timeout` for at least one message (blocking; for plain
    /// handlers). Returns early, empty, on cancellation.
    std::vector<std::string> receive_for(std::chrono::milliseconds timeout);
    /// Coroutine form of receive_for.
    boost::asio::awaitable<std::vector<std::string>> async_receive_for(std::chrono::milliseconds timeout);
    /// receive_for / async_receive_for with any duration type (every
    /// duration-taking member has this form): the duration is rounded up to
    /// milliseconds, saturating, so hours::max() waits as long as
    /// milliseconds::max(); a NaN count is zero.
    template <class Rep, class Period>
    std::vector<std::string> receive_for(const std::chrono::duration<Rep, Period>& timeout) {
        return receive_for(detail::saturating_ceil<std::chrono::milliseconds>(timeout));
    }
    template <class Rep, class Period>
    boost::asio::awaitable<std::vector<std::string>> async_receive_for(
        const std::chrono::duration<Rep, Period>& timeout) {
        return async_receive_for(detail::saturating_ceil<std::chrono::milliseconds>(timeout));
    }

    /// Progress in [0, 1] with an optional message; published as an event.
    /// Values outside are clamped; NaN throws orchcore::invalid_argument.
    void report_progress(double fraction, std::string message = {});

    /// Ends this turn without finishing the task: after the handler
    /// returns, the task goes back to the queue and runs again (turn + 1)
    /// after `delay`; the handler's return value is ignored. Undelivered
    /// steering messages stay in the mailbox for the next turn.
    void continue_later(std::chrono::milliseconds delay = std::chrono::milliseconds{0});
    template <class Rep, class Period>
    void continue_later(const std::chrono::duration<Rep, Period>& delay) {
        continue_later(detail::saturating_ceil<std::chrono::milliseconds>(delay));
    }

    explicit task_context(std::shared_ptr<detail::attempt_state> s) : s_(std::move(s)) {}

private:
    std::shared_ptr<detail::attempt_state> s_;
};

using task_handler = std::function<std::string(task_context&)>;
using async_task_handler = std::function<boost::asio::awaitable<std::string>(task_context&)>;

struct coordinator_options {
    queue_policy policy = queue_policy::reject_new;
    queue_options queue{};

    /// Workers created by the coordinator (initially and by scaling).
    worker_options worker_template{};
    /// Auto-scaling; min/max also bound scale(n).
    autoscale_options scaling{};
    bool autoscale = false;
    std::chrono::milliseconds autoscale_interval{250};

    /// A worker without heartbeat for this long is declared dead.
    std::chrono::milliseconds worker_timeout{2'000};
    /// The registry entry of a worker that ended without a clean stop (its
    /// process crashed, or it was declared dead) stays this long past
    /// worker_timeout, for whoever looks at the registry, then any
    /// coordinator's maintenance removes it. A clean stop (stop(), or a
    /// worker scaled down) removes its entries at once.
    std::chrono::milliseconds worker_entry_grace{std::chrono::minutes(5)};

    std::uint32_t default_max_retries = 3;
    backoff_policy default_backoff{};

    /// Placement: a task whose resource request (task_options::resources)
    /// no worker could ever hold, even with nothing held on it. 0
    /// (default): refused at submission (unplaceable_error), unless no
    /// worker is registered yet and scaling or another node may add one.
    /// Longer: admitted, and it waits this long for a worker that could
    /// hold it; then it fails with a reason naming the request. Waiting
    /// never counts an attempt or uses a retry.
    std::chrono::milliseconds placement_wait{0};

    /// How long finished tasks stay queryable.
    std::chrono::milliseconds completed_ttl{std::chrono::hours(1)};
    std::chrono::milliseconds failed_ttl{std::chrono::hours(24)};
    std::chrono::milliseconds cancelled_ttl{std::chrono::hours(1)};
    std::chrono::milliseconds maintenance_interval{1'000};

    /// A running task asked to cancel is declared cancelled (and its
    /// attempt fenced off) after this long even if its handler ignores it.
    std::chrono::milliseconds cancel_grace{5'000};

    /// Where the control loop runs (health checks, timeouts, auto-scaling,
    /// TTL expiry, retries falling due). Empty (default): a thread of the
    /// coordinator's own. Set: a timer on this executor, and no thread.
    /// Workers are chosen apart: worker_template.executor puts them (their
    /// plain handlers, heartbeats and coroutine handlers) on an executor of
    /// the user's too; set both and a local coordinator creates no thread
    /// at all. The execution context must outlive the coordinator, and must
    /// be run for timers and tasks to make progress. stop() never waits for
    /// the executor to run queued work (it cannot hang on a context that is
    /// no longer run); a coroutine still suspended on it is cancelled and
    /// keeps what it touches alive until it ends. Call stop(graceful) from a
    /// thread that does not run the executor, or the work it waits for may
    /// not run before the deadline. Distributed mode keeps its two I/O
    /// threads for leasing and finishing, but its control loop also makes
    /// blocking backend calls (registry writes, recovery; each bounded by
    /// the backend's timeouts): on a user executor they hold one of its
    /// threads, so distributed nodes are best left on their own thread.
    std::optional<boost::asio::any_io_executor> executor{};

    /// Where task records and worker records live. A store given here gets
    /// every lifecycle change written through, and get_task() reads from it.
    /// Empty: in-memory; a local coordinator then keeps records in its own
    /// task table only (no second copy), with the same visibility and TTLs.
    /// Empty registry: memory_worker_registry.
    std::shared_ptr<task_store> store{};
    std::shared_ptr<worker_registry> registry{};

    /// Distributed mode ("node"; <orchcore/node_options.hpp>). Empty: the
    /// in-process queue (everything above behaves as documented). Set: this
    /// coordinator is one node of a deployment that shares `node->transport`,
    /// `store` and `registry` (typically redis_transport / redis_task_store /
    /// redis_worker_registry of one queue) with other coordinators, in this
    /// process or on other machines. See "Distributed mode" below the class
    /// for what changes.
    std::optional<node_options> node{};

    void validate() const;
};

struct scale_record {
    std::chrono::system_clock::time_point at{};
    std::size_t from = 0, to = 0;
    std::string reason{};
};

struct coordinator_stats {
    std::uint64_t submitted = 0;  ///< admitted
    std::uint64_t rejected = 0;
    std::uint64_t started = 0;    ///< attempts started
    std::uint64_t completed = 0;
    std::uint64_t failed = 0;
    std::uint64_t cancelled = 0;
    std::uint64_t timed_out = 0;
    std::uint64_t retried = 0;
    std::uint64_t continued = 0;
    std::uint64_t requeued_after_worker_death = 0;
    std::uint64_t stale_token_refusals = 0;
    std::uint64_t expired = 0;
    std::uint64_t workers_died = 0;
    std::uint64_t store_conflicts = 0;  ///< write-through refused by the store's compare-and-set
    // Distributed mode only (zero otherwise):
    std::uint64_t leased = 0;           ///< leases taken from the transport by this node
    std::uint64_t released = 0;         ///< leases handed back unrun (no fitting worker or handler here, stop)
    std::uint64_t recovered = 0;        ///< expired leases (of any node) this node put back in the queue
    /// Poison tasks: expired leases this node found at the transport's
    /// max_lease_expiries, so the transport moved them to its dead-letter
    /// set instead of the queue; their records end failed ("dead-lettered:
    /// lease expired N times"). Counted here, not in failed or recovered.
    std::uint64_t dead_lettered = 0;
    std::uint64_t lease_renewals_refused = 0;  ///< running attempts fenced because their lease was lost
    std::uint64_t backend_errors = 0;   ///< transport/store calls that failed (the lease then expires and
                                        ///< the task runs again: nothing is lost)
    std::size_t queued = 0;   ///< waiting: admission queue + ready for re-run + waiting for a fitting worker
    std::size_t delayed = 0;  ///< waiting for a retry backoff or continuation delay
    std::size_t running = 0;
    std::size_t workers = 0;
    std::size_t tracked_tasks = 0;  ///< records held (including finished, until their TTL)
    queue_metrics queue{};
    std::vector<scale_record> scaling_history;  ///< most recent last (bounded)
};

struct worker_info {
    std::string id{};
    worker_status status = worker_status::idle;
    std::vector<std::string> tags{};
    std::size_t max_concurrent = 0;
    std::vector<std::string> current_tasks{};
    std::uint64_t completed = 0;
    std::uint64_t failed = 0;
    std::chrono::milliseconds uptime{0};
    std::size_t available = 0;  ///< free slots
    std::chrono::system_clock::time_point last_heartbeat{};
    resource_inventory resources{};  ///< what it offers (worker_options::resources)
    resource_inventory free{};       ///< what of it running attempts do not hold
};

class coordinator;

/// Handle to a submitted task.
class task_handle {
public:
    task_handle() = default;
    task_handle(const task_handle&) = default;
    task_handle& operator=(const task_handle&) = default;
    /// A moved-from handle is empty (valid() is false; waits throw
    /// error(errc::not_found)), not a handle to the id "".
    task_handle(task_handle&& o) noexcept : owner_(std::exchange(o.owner_, nullptr)), id_(std::move(o.id_)) {}
    task_handle& operator=(task_handle&& o) noexcept {
        if (this != &o) {
            owner_ = std::exchange(o.owner_, nullptr);
            id_ = std::move(o.id_);
        }
        return *this;
    }
    const std::string& id() const noexcept { return id_; }
    bool valid() const noexcept { return owner_ != nullptr; }
    /// Waits until the task is terminal (or the timeout passes); empty on
    /// timeout, or if the record expired meanwhile. Any duration type is
    /// taken, saturating (hours::max() waits as long as milliseconds::max()).
    /// A plain handler waiting for its own task throws invalid_argument
    /// (it would wait for itself); see coordinator::wait_until.
    std::optional<task_record> wait_for(std::chrono::milliseconds timeout) const;
    template <class Rep, class Period>
    std::optional<task_record> wait_for(const std::chrono::duration<Rep, Period>& timeout) const {
        return wait_for(detail::saturating_ceil<std::chrono::milliseconds>(timeout));
    }
    std::optional<task_record> wait_until(std::chrono::steady_clock::time_point deadline) const;
    task_record wait() const;
    /// Waits, then returns the result; throws task_failed_error or cancelled_error.
    std::string get() const;
    /// The same waits for coroutines: they suspend, never block the
    /// executor's thread, and resume as soon as the task ends (no polling
    /// in one process; in distributed mode a finish notification of the
    /// transport wakes the waiter, with a look at the shared store every
    /// second in case one is lost; a transport without notifications is
    /// polled with a backoff of up to 50 ms). The handle's coordinator must outlive the wait.
    boost::asio::awaitable<std::optional<task_record>> async_wait_for(std::chrono::milliseconds timeout) const;
    template <class Rep, class Period>
    boost::asio::awaitable<std::optional<task_record>> async_wait_for(
        const std::chrono::duration<Rep, Period>& timeout) const {
        return async_wait_for(detail::saturating_ceil<std::chrono::milliseconds>(timeout));
    }
    boost::asio::awaitable<std::optional<task_record>> async_wait_until(
        std::chrono::steady_clock::time_point deadline) const;
    /// co_await h.async_get(): the result, or task_failed_error / cancelled_error.
    boost::asio::awaitable<std::string> async_get() const;
    template <encodable T>
    T get_as() const {
        return codec<T>::decode(get());
    }

private:
    friend class coordinator;
    friend struct detail::coordinator_impl;
    task_handle(coordinator* c, std::string id) : owner_(c), id_(std::move(id)) {}
    coordinator* owner_ = nullptr;
    std::string id_{};
};

/// One task of a bulk submission (coordinator::submit_many).
struct task_request {
    std::string type;
    std::string payload{};
    task_options options{};
};

struct submit_result {
    admission_result<std::monostate, std::string> admission;
    task_handle handle;  ///< valid when admitted
    bool accepted() const noexcept { return admission.accepted(); }
    explicit operator bool() const noexcept { return accepted(); }
};

class coordinator {
public:
    explicit coordinator(coordinator_options options = {});
    ~coordinator();  ///< stop(stop_mode::abort) if still running
    coordinator(const coordinator&) = delete;
    coordinator& operator=(const coordinator&) = delete;

    void register_handler(std::string type, task_handler h);
    void register_async_handler(std::string type, async_task_handler h);
    /// Typed handler: decodes the payload as P, encodes the returned R. A
    /// payload the codec refuses fails the task at once, without retries
    /// (the same bytes would be refused again).
    template <encodable P, class F>
    void handle(std::string type, F f) {
        register_handler(std::move(type), [f = std::move(f)](task_context& ctx) -> std::string {
            using R = std::invoke_result_t<F&, task_context&, P>;
            std::optional<P> p;
            try {
                p.emplace(ctx.payload_as<P>());
            } catch (const std::exception& e) {
                throw non_retryable_error(e.what());
            }
            return codec<R>::encode(f(ctx, std::move(*p)));
        });
    }

    /// Admits a task; never blocks. The handle is valid when admitted.
    submit_result submit_async(std::string type, std::string payload, task_options options = {});
    /// Admits many tasks, in order, each decided as if submitted alone
    /// (result i belongs to tasks[i]). Distributed mode: the records go to
    /// the store in one pipeline and the ids into the shared queue with one
    /// admission script per chunk (task_store::create_many,
    /// transport::admit_many), instead of two round trips per task.
    /// Invalid options throw before anything is admitted.
    std::vector<submit_result> submit_many(std::vector<task_request> tasks);
    template <encodable P>
        requires(!std::is_convertible_v<P, std::string>)
    submit_result submit_async(std::string type, const P& payload, task_options options = {}) {
        return submit_async(std::move(type), codec<P>::encode(payload), std::move(options));
    }
    /// Fire-and-forget: admits the task; failures (including exceptions the
    /// handler throws) are recorded on the task and published as
    /// task.failed events, never swallowed. Returns the admission result.
    admission_result<std::monostate, std::string> post(std::string type, std::string payload,
                                                        task_options options = {});
    /// Admits and waits for the result. Throws rejected_error,
    /// task_failed_error or cancelled_error.
    std::string submit(std::string type, std::string payload, task_options options = {});

    /// Waits until the task is terminal (or the deadline passes); empty on
    /// timeout or if the record expired meanwhile; error(errc::not_found)
    /// for an unknown id. Any duration type is taken, saturating. A plain
    /// handler waiting for its own task (which cannot end before the
    /// handler returns) throws invalid_argument naming the id. A handler
    /// that waits for another task (or submit()s one) holds its slot
    /// meanwhile: with every slot busy waiting, the waits end only at
    /// their timeout or at stop().
    std::optional<task_record> wait_for(const std::string& id, std::chrono::milliseconds timeout);
    template <class Rep, class Period>
    std::optional<task_record> wait_for(const std::string& id, const std::chrono::duration<Rep, Period>& timeout) {
        return wait_for(id, detail::saturating_ceil<std::chrono::milliseconds>(timeout));
    }
    std::optional<task_record> wait_until(const std::string& id, std::chrono::steady_clock::time_point deadline);
    /// Coroutine forms of wait_for / wait_until (see task_handle).
    boost::asio::awaitable<std::optional<task_record>> async_wait_until(std::string id,
                                                                        std::chrono::steady_clock::time_point deadline);
    boost::asio::awaitable<std::optional<task_record>> async_wait_for(std::string id,
                                                                      std::chrono::milliseconds timeout);
    template <class Rep, class Period>
    boost::asio::awaitable<std::optional<task_record>> async_wait_for(
        std::string id, const std::chrono::duration<Rep, Period>& timeout) {
        return async_wait_for(std::move(id), detail::saturating_ceil<std::chrono::milliseconds>(timeout));
    }
    std::optional<task_record> get_task(const std::string& id) const;
    std::optional<task_status> get_status(const std::string& id) const;
    /// get_task for many ids (result i belongs to ids[i]); distributed mode
    /// reads them in one store round trip (task_store::get_many).
    std::vector<std::optional<task_record>> get_tasks(std::span<const std::string> ids) const;
    /// get_tasks, keeping only how each task ended (status, times, result,
    /// error): local mode copies nothing else out of the table.
    std::vector<std::optional<task_outcome>> get_outcomes(std::span<const std::string> ids) const;
    /// Calls `on_finished` with the id of every task that ends, on any node
    /// ("" when some may have been missed), until the returned watch is
    /// destroyed (before the coordinator). Local mode: the tasks that end
    /// in this coordinator, told after their events went out (a watch builds
    /// no event). Distributed mode: the transport's finish notifications
    /// (transport::watch_finished); empty if the transport has none. An
    /// empty `on_finished` throws invalid_argument; one that throws is
    /// ignored for that id (the others are still told).
    std::unique_ptr<transport_watch> watch_finished(std::function<void(const std::string&)> on_finished);
    /// watch_finished, told the ids in batches: local mode, the ids of the
    /// tasks that ended since the last call, in one call; distributed mode,
    /// one id a call.
    std::unique_ptr<transport_watch> watch_finished_many(
        std::function<void(std::span<const std::string>)> on_finished);
    /// Local mode: watch_finished_many, told with each id how the task
    /// ended (its outcome as get_outcomes reads it at that moment), so the
    /// watcher reads nothing back. Batches come in the order the tasks
    /// ended, after their events went out. Distributed mode: nullptr
    /// (tasks end on other nodes; use watch_finished and get_outcomes).
    /// An empty `on_finished` throws invalid_argument; one that throws is
    /// ignored for that batch.
    std::unique_ptr<transport_watch> watch_outcomes(
        std::function<void(std::span<const finished_task>)> on_finished);
    /// The result of a completed task; empty otherwise.
    std::optional<std::string> get_result(const std::string& id) const;

    /// Queued: removed at once. Running: cooperative cancellation; the task
    /// becomes cancelled when its handler returns (or after cancel_grace).
    /// Returns false for an unknown or already finished task.
    bool cancel(const std::string& id);
    /// Makes a delayed task (waiting out a retry backoff or a
    /// continue_later delay) due at once: it runs as soon as a worker is
    /// free, like any waiting task. False, changing nothing, for a task
    /// that is not delayed (unknown, queued, running, finished).
    /// Distributed mode: transport::promote.
    bool promote(const std::string& id);

    /// Sends messages to a queued or running task. Throws
    /// error(errc::not_found) for an unknown id and
    /// error(errc::task_finished) for a finished task.
    void steer(const std::string& id, std::vector<std::string> messages);

    /// Sets the worker count (clamped to scaling.min/max_workers).
    std::size_t scale(std::size_t n);
    /// Adds a worker with its own options (tags, concurrency) outside the
    /// template; counted towards the pool size.
    std::string add_worker(worker_options options);
    std::vector<worker_info> get_workers() const;
    coordinator_stats get_stats() const;
    event_bus& events() noexcept;

    /// Stops admitting (new submissions are rejected as closed).
    /// graceful: waits up to `deadline` for queued and running tasks to
    /// finish, then cancels what is left. abort: cancels queued tasks at
    /// once and running ones cooperatively. Returns true if nothing had to
    /// be cancelled. Idempotent.
    /// Called from one of the coordinator's own threads (a handler, an event
    /// subscriber it delivers to), it closes admission, leaves the rest of
    /// the stop to a thread of its own and returns false at once, without
    /// waiting (a graceful stop lets the calling handler's task finish). A
    /// later stop() or the destructor on another thread waits for that stop.
    bool stop(stop_mode mode = stop_mode::graceful,
              std::chrono::milliseconds deadline = std::chrono::milliseconds{30'000});
    /// stop() with any duration type, saturating (hours::max() is as long
    /// as milliseconds::max()).
    template <class Rep, class Period>
    bool stop(stop_mode mode, const std::chrono::duration<Rep, Period>& deadline) {
        return stop(mode, detail::saturating_ceil<std::chrono::milliseconds>(deadline));
    }

    /// Fault injection for tests and drills: the worker stops heartbeating
    /// (as if hung or partitioned) until resume_heartbeats.
    void suspend_heartbeats(const std::string& worker_id);
    void resume_heartbeats(const std::string& worker_id);

    /// This node's id (distributed mode; "local" otherwise).
    const std::string& node_id() const noexcept;
    /// Whether this coordinator is a node of a distributed deployment
    /// (coordinator_options::node was set).
    bool distributed() const noexcept;

private:
    std::vector<submit_result> submit_many_dist(std::vector<task_request>& tasks);
    static bool stop_on(detail::coordinator_impl& c, stop_mode mode, std::chrono::milliseconds deadline);
    friend class task_handle;
    std::shared_ptr<detail::coordinator_impl> impl_;
};

// Distributed mode (coordinator_options::node set)
// ----------------------------------------------------------------------
// Several coordinators ("nodes", in one process or many, on one machine or
// many) share one queue (node_options::transport), one task store and one
// worker registry. The API is the same; what differs:
//
// * Submission: submit*/post create the record in the shared store (a
//   duplicate id is refused across all nodes), then admit the id into the
//   transport, whose policy and capacity apply to the whole deployment
//   (coordinator_options::policy must equal the transport's policy, except
//   fail_fast: admitted only if this node has a free fitting worker now; the
//   task still goes through the shared queue, in its order). No handler for
//   the type is needed on the submitting node: a producer-only node has
//   scaling.min_workers = max_workers = 0 (allowed only in this mode).
//   Generated ids are "<node.id>-<n>".
// * Running: each node leases up to its free local slots (right after a
//   submission or a finished attempt, and, while idle, as soon as
//   transport::wait_for_work wakes it: a task admitted on any node starts
//   at once) for node.lease_duration, and runs the task with the lease's
//   fencing token as the attempt's token. A leased task that no local
//   worker fits (tags) or that has no handler here is handed back (nack)
//   with a short delay, for another node. Leases of running attempts are
//   extended every node.lease_renew_interval while their worker heartbeats.
// * Results: the record is written (compare-and-set) while the lease is
//   known to be held (extended first unless more than half of it is left),
//   then the lease is acked (or nacked with the backoff for a retry or a
//   continuation). A lease lost in between (expired and taken over by
//   another node) refuses the result: counted in stale_token_refusals, the
//   result dropped. A change the backend fails to record (it does not
//   answer) is tried again on the next ticks while the lease may still be
//   held; only a lease that lapses meanwhile lets the task run again.
//   Execution is at-least-once; a task is completed once.
// * Crashes: every node's tick calls transport->recover_expired(), so the
//   tasks of a node that died go back to the queue after their lease
//   expires and run elsewhere (record: running -> queued, worker_losses+1).
//   A task whose lease expired transport_options::max_lease_expiries times
//   (a poison task that kills its worker) is dead-lettered by the transport
//   instead; its record ends failed (error "dead-lettered: lease expired N
//   times", worker_losses+1), counted in coordinator_stats::dead_lettered.
//   A local worker declared dead hands its tasks back at once.
// * Health: a node's own workers prove they are alive with their own
//   heartbeat clocks (timers on their threads), judged in memory, never
//   through the backend: a backend that stops answering for a while (a
//   paused or overloaded Redis) makes no worker dead and re-runs nothing.
//   Each tick writes the heartbeats to the shared registry and renews the
//   leases that are due after its other backend calls and before looking
//   for expired leases, so a backend that answers again extends this
//   node's leases first. Lease deadlines are in the callers' clocks: each
//   transport call carries the `now` it was made at, and the node keeps the
//   deadline it asked for (keep node.lease_duration well above clock skew).
// * Results larger than the store takes (task_store::max_value_bytes(),
//   redis_options::max_payload_bytes) fail their task at once, without
//   retries ("result of N bytes exceeds max_payload_bytes = M"); the other
//   results of the same batch are written as usual.
// * Registry: workers are registered by their node's control thread; a
//   clean stop (and scaling down) removes their entries; the entries of
//   workers that died or whose process crashed are removed by any node's
//   maintenance once silent for worker_timeout + worker_entry_grace.
// * Queries: get_task/get_status/get_result read the shared store;
//   wait_for/handles are woken by the transport's finish notifications
//   (transport::watch_finished, subscribed on the first such wait) for
//   tasks running on other nodes, with a look at the store every second in
//   case one is lost (without notifications: polled with a short backoff).
// * Cancellation: a waiting task is removed from the transport and its
//   record cancelled; a task running on this node is cancelled as in local
//   mode; a task running on another node gets a cancel marker in its record
//   (metadata "orchcore.cancel"), seen by its node at the next lease renewal
//   (best effort: a marker racing with the task's own completion loses).
// * Steering is cluster-wide: steer() on any node appends to the task's
//   mailbox in the transport (transport::post_messages); the node running
//   the task reads it with the attempt's lease token (take_messages), so an
//   attempt that lost its lease reads nothing and gets stale_token. A
//   waiting receive_for() looks at the shared mailbox with a backoff from
//   1 ms to 50 ms, and at once when steer() is called on its own node.
//   steer() reads the task's record first: once the record says finished,
//   steer() throws task_finished. Messages sent in the instant between a
//   handler's return and its record being written are dropped with the
//   task, as in local mode.
// * Whole-task timeouts are checked while the task runs here and when it is
//   leased (not while it waits in the shared queue). TTL maintenance calls
//   store->expire() (shared). Auto-scaling samples the shared queue depth.
// * stop(): the node takes no new leases; graceful waits up to the deadline
//   for its running attempts, then (and abort at once) hands the unfinished
//   ones back to the queue for other nodes (they are not cancelled).
// * Events are published on this node's bus for what this node does.

}  // namespace orchcore
