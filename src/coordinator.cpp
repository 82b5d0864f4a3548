// Coordinator implementation.
//
// Concurrency design: all coordinator state lives in coordinator_impl under
// one mutex. Work done while holding it is bookkeeping only; its side effects
// (events to publish, attempts to launch on workers, waiters to wake) are
// collected in an `effects` value and applied after the lock is released, so
// user code (handlers, event subscribers) never runs under the lock and may
// call back into the coordinator. Decisions come from the pure state
// machines: admission_core (through the admission queue), task_status
// transitions, lease_table (fencing), backoff_policy and autoscaler.
//
// One control thread runs an Asio timer tick that drives retries due,
// timeouts, heartbeats, worker health, auto-scaling and TTL expiry.
// Submissions and completions dispatch directly: a lone task starts at once.
#include <orchcore/any_admission_queue.hpp>
#include <orchcore/coordinator.hpp>
#include <orchcore/detail/adaptive_mutex.hpp>
#include <orchcore/detail/saturating.hpp>

#include "node_wakeups.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <array>
#include <condition_variable>
#include <deque>
#include <iterator>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <tuple>
#include <unordered_map>

namespace asio = boost::asio;

namespace orchcore {

void coordinator_options::validate() const {
    detail::validate_queue_options(queue);
    worker_template.validate();
    if (transport && scaling.max_workers == 0) {
        // Distributed mode allows a producer-only node (no workers at all).
        if (scaling.min_workers > 0)
            throw invalid_argument("autoscale.min_workers", std::to_string(scaling.min_workers),
                                   "must be <= max_workers (0)");
        auto s = scaling;
        s.max_workers = 1;
        s.validate();
    } else {
        scaling.validate();
    }
    default_backoff.validate();
    auto positive = [](const char* field, std::chrono::milliseconds v) {
        if (v.count() <= 0) throw invalid_argument(field, std::to_string(v.count()) + "ms", "must be > 0");
    };
    positive("autoscale_interval", autoscale_interval);
    positive("worker_timeout", worker_timeout);
    positive("maintenance_interval", maintenance_interval);
    positive("completed_ttl", completed_ttl);
    positive("failed_ttl", failed_ttl);
    positive("cancelled_ttl", cancelled_ttl);
    if (worker_entry_grace.count() < 0)
        throw invalid_argument("worker_entry_grace", std::to_string(worker_entry_grace.count()) + "ms",
                               "must be >= 0");
    if (cancel_grace.count() < 0)
        throw invalid_argument("cancel_grace", std::to_string(cancel_grace.count()) + "ms", "must be >= 0");
    if (worker_timeout <= worker_template.heartbeat_interval)
        throw invalid_argument("worker_timeout", std::to_string(worker_timeout.count()) + "ms",
                               "must be longer than worker_template.heartbeat_interval (" +
                                   std::to_string(worker_template.heartbeat_interval.count()) + "ms)");
    if (default_max_retries > 1000)
        throw invalid_argument("default_max_retries", std::to_string(default_max_retries), "must be at most 1000");
    if (node_backend && !transport)
        throw invalid_argument("node_backend", "set", "needs distributed mode (transport set)");
    if (transport) {
        positive("lease_duration", lease_duration);
        if (lease_renew_interval.count() < 0 || lease_renew_interval >= lease_duration)
            throw invalid_argument("lease_renew_interval", std::to_string(lease_renew_interval.count()) + "ms",
                                   "must be >= 0 and shorter than lease_duration (" +
                                       std::to_string(lease_duration.count()) + "ms)");
        if (lease_batch == 0) throw invalid_argument("lease_batch", "0", "must be at least 1");
        if (node_backend && (node_backend->transport() != transport || node_backend->store() != store))
            throw invalid_argument("node_backend", "set", "must be built on this transport and store");
        if (policy != queue_policy::fail_fast && policy != transport->options().policy)
            throw invalid_argument("policy", std::string(to_string(policy)),
                                   "must equal the transport's policy (" +
                                       std::string(to_string(transport->options().policy)) +
                                       ") in distributed mode (or be fail-fast)");
    }
}

namespace detail {

using steady = std::chrono::steady_clock;
using wall = std::chrono::system_clock;

// A condition variable for the coordinator's adaptive_mutex that knows
// whether anyone waits: condition_variable_any::notify_all takes an
// internal lock, and the hot path notifies once per finished task, nearly
// always with nobody waiting. Every wait happens under the coordinator
// mutex, so a notifier that changed the state under it and then reads the
// waiter count cannot miss a waiter.
class counted_cv {
public:
    template <class Lock, class TimePoint>
    std::cv_status wait_until(Lock& lk, const TimePoint& t) {
        waiters_.fetch_add(1, std::memory_order_relaxed);
        const auto r = cv_.wait_until(lk, t);
        waiters_.fetch_sub(1, std::memory_order_relaxed);
        return r;
    }
    template <class Lock, class TimePoint, class Pred>
    bool wait_until(Lock& lk, const TimePoint& t, Pred p) {
        while (!p()) {
            if (wait_until(lk, t) == std::cv_status::timeout) return p();
        }
        return true;
    }
    template <class Lock, class Pred>
    void wait(Lock& lk, Pred p) {
        while (!p()) {
            waiters_.fetch_add(1, std::memory_order_relaxed);
            cv_.wait(lk);
            waiters_.fetch_sub(1, std::memory_order_relaxed);
        }
    }
    void notify_all() {
        if (waiters_.load(std::memory_order_relaxed) != 0) cv_.notify_all();
    }

private:
    std::condition_variable_any cv_;
    std::atomic<int> waiters_{0};
};

struct attempt_state {
    coordinator_impl* c = nullptr;
    // Coroutine attempts on an executor of the user's: the coordinator's
    // state stays alive until the coroutine is done with it, since stop()
    // cannot wait for an executor that may no longer be run. Reset when the
    // attempt ends (no cycle outlives stop(), which drops every attempt).
    std::shared_ptr<coordinator_impl> keep_alive;
    std::string id, type, payload, worker_id;
    std::map<std::string, std::string> metadata;
    std::uint32_t attempt = 0, turn = 0;
    std::uint64_t token = 0;
    std::atomic<bool> cancel{false};
    // Written and read by the handler's own thread (or strand) only.
    bool continue_requested = false;
    std::chrono::milliseconds continue_delay{0};
    // Guarded by the coordinator mutex.
    counted_cv mailbox_cv;
    asio::steady_timer* waiting_timer = nullptr;
    // Async handlers: their strand and cancellation signal.
    std::optional<asio::strand<asio::any_io_executor>> strand;
    asio::cancellation_signal signal;
    // Plain handlers: the handler, kept alive for the attempt.
    std::shared_ptr<const task_handler> sync_handler;
};

enum class location { none, queue, ready, parked, delayed, running };

struct task_entry {
    task_record rec;
    std::vector<std::string> mailbox;  // not a deque: an empty deque allocates
    std::shared_ptr<attempt_state> attempt;
    location where = location::none;
    job_id queue_id = 0;  // its id in the admission queue while there
    std::multimap<steady::time_point, std::string>::iterator delayed_it{};
    std::optional<steady::time_point> deadline;       // whole task
    std::optional<steady::time_point> turn_deadline;  // current attempt
    bool cancel_requested = false;
    steady::time_point cancel_deadline{};
    bool fire_and_forget = false;
    std::uint64_t terminal_event_seq = 0;  // emit() number of its terminal event
    // Distributed mode: the transport lease this node holds for the attempt.
    std::uint64_t token = 0;
    wall::time_point held_until{};  // lease deadline as last granted or extended
    steady::time_point next_renew{};
    bool renewing = false;       // a renewal is in flight outside the lock
    bool progress_dirty = false;  // progress not yet written to the store
};

// Distributed mode: one change of a task's record made as the holder of its
// lease, carried out after the lock is released (see run_op).
struct dist_op {
    task_record rec;  // with its new status
    task_status expected = task_status::running;
    std::uint64_t token = 0;
    wall::time_point held_until{};
    std::chrono::milliseconds delay{0};  // non-terminal: nack delay
    event_kind ev = event_kind::task_completed;
    std::string detail{};
    enum class why { finish, retry, turn, lost, stop } reason = why::finish;
};

// Distributed mode: a lease extension to make outside the lock.
struct renewal {
    std::string id;
    std::uint64_t token = 0;
    std::shared_ptr<attempt_state> a;
    std::optional<task_record> persist;  // progress to write once the lease is extended
};

// A worker's heartbeat clock: a timer on the worker's own executor, so the
// worker proves it is alive by running it, whatever the control loop is
// busy with (in distributed mode the control loop waits for the backend,
// and a Redis pause must not make the node's own workers look dead).
struct heartbeat_clock {
    explicit heartbeat_clock(const asio::any_io_executor& ex) : timer(ex) {}
    asio::steady_timer timer;
    std::mutex m;         // held for every timer call
    bool closed = false;  // m
};

struct worker_entry {
    std::shared_ptr<worker> w;
    std::size_t busy = 0;
    // Attempts occupying a slot, fenced ones included until their handler
    // returns (a retry of the same task may sit beside a fenced attempt).
    std::vector<std::shared_ptr<attempt_state>> running;
    steady::time_point last_heartbeat{};
    wall::time_point last_heartbeat_wall{};
    bool heartbeats_suspended = false;
    // Distributed mode: a heartbeat not yet written to the shared registry
    // (the control thread writes it, so a registry that hangs while Redis
    // is down never holds a worker thread).
    std::optional<std::chrono::system_clock::time_point> registry_due;
    bool draining = false;
    std::uint64_t completed = 0, failed = 0;
};

struct launch {
    std::shared_ptr<worker> w;
    std::shared_ptr<attempt_state> a;
    std::shared_ptr<const task_handler> sync;
    std::shared_ptr<const async_task_handler> async;
};

// Events are not here: they go to coordinator_impl::outbox under the lock,
// so their order is the order of the changes (see flush_events).
struct effects {
    std::vector<launch> launches;
    bool wake_waiters = false;
};

struct outcome {
    enum kind_t { success, failure } kind = success;
    std::string result;
    std::string error;
    bool retryable = true;
};

// A coroutine waiting for a task to end (task_handle::async_wait_for). The
// channel is thread-safe, so whichever thread finishes the task can wake it.
struct async_waiter {
    explicit async_waiter(const asio::any_io_executor& ex) : wake_ch(ex, 1) {}
    asio::experimental::concurrent_channel<void(boost::system::error_code)> wake_ch;
    void wake() { (void)wake_ch.try_send(boost::system::error_code{}); }
};

// The control loop on an executor of the user's: the timer and a lock that
// each tick holds while it runs, shared with the pending wait, so stop()
// can shut the loop without waiting for the executor to run again.
struct user_control {
    explicit user_control(const asio::any_io_executor& ex) : timer(ex) {}
    asio::steady_timer timer;
    std::mutex m;                          // held by a running tick and for every timer call
    bool closed = false;                   // m
    std::atomic<std::thread::id> ticking{};  // the thread running a tick
};

struct coordinator_impl : std::enable_shared_from_this<coordinator_impl> {
    explicit coordinator_impl(coordinator_options o)
        : opt(std::move(o)),
          queue(make_admission_queue<std::string>(
              opt.policy == queue_policy::fail_fast ? queue_policy::reject_new : opt.policy, opt.queue)),
          scaler(scaler_options(opt)),
          store(opt.store ? opt.store : std::make_shared<memory_task_store>()),
          registry(opt.registry ? opt.registry : std::make_shared<memory_worker_registry>()),
          rng(std::random_device{}()),
          tp(opt.transport),
          nb(opt.node_backend),
          node(make_node_id(opt)),
          write_through(opt.store != nullptr || opt.transport != nullptr),
          tick_timer(ctl) {
        if (tp) {
            io.emplace(2);
            renew_every = opt.lease_renew_interval.count() > 0 ? opt.lease_renew_interval : opt.lease_duration / 3;
            if (renew_every.count() <= 0) renew_every = std::chrono::milliseconds(1);
            recover_every = std::clamp(opt.lease_duration / 4, std::chrono::milliseconds(20),
                                       std::chrono::milliseconds(1'000));
        }
    }

    static autoscale_options scaler_options(const coordinator_options& o) {
        auto s = o.scaling;
        if (s.max_workers == 0) s.max_workers = 1;  // producer-only node: never scales anyway
        return s;
    }

    static std::string make_node_id(const coordinator_options& o) {
        if (!o.node_id.empty()) return o.node_id;
        if (!o.transport) return "local";
        char host[256] = {};
        if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::snprintf(host, sizeof host, "host");
        char suffix[16];
        std::snprintf(suffix, sizeof suffix, "%04x",
                      static_cast<unsigned>(std::random_device{}() & 0xffffu));
        return std::string(host) + "-" + std::to_string(::getpid()) + "-" + suffix;
    }

    coordinator_options opt;
    mutable detail::adaptive_mutex mu;
    counted_cv done_cv;
    // Holds task ids under ids the queue generates (task_entry::queue_id):
    // with generated ids a reject-new queue stays on its lock-free path.
    std::unique_ptr<any_admission_queue<std::string>> queue;
    std::deque<std::string> ready;   // due to run again; ahead of the admission queue
    std::deque<std::string> parked;  // taken from the queue, waiting for a fitting worker
    std::multimap<steady::time_point, std::string> delayed;
    // Finished tasks by expiry time, one FIFO per TTL class (completed,
    // cancelled, failed/timed out): a TTL is fixed per class, so each FIFO
    // is in time order and costs no node allocation per task.
    std::array<std::deque<std::pair<steady::time_point, std::string>>, 3> expiry;
    std::unordered_map<std::string, task_entry> tasks;
    std::map<std::string, worker_entry> workers;
    std::vector<std::shared_ptr<worker>> retired;  // dead or drained workers, joined by the control thread
    // Every worker's heartbeat clock until it leaves for good (a dead
    // worker's until stop: its threads may come back and beat once more).
    std::map<std::string, std::shared_ptr<heartbeat_clock>> beats;
    std::vector<std::string> registry_removals;  // distributed mode: retired workers to remove from the registry
    std::unordered_map<std::string, std::shared_ptr<const task_handler>> handlers;
    std::unordered_map<std::string, std::shared_ptr<const async_task_handler>> async_handlers;
    std::multimap<steady::time_point, std::string> deadlines;  // tasks with a whole-task timeout
    autoscaler scaler;
    std::shared_ptr<task_store> store;
    std::shared_ptr<worker_registry> registry;
    event_bus bus;
    coordinator_stats counters;
    std::mt19937_64 rng;
    std::atomic<std::uint64_t> task_seq{0};  // generated task ids (also taken by distributed submits)
    std::uint64_t worker_seq = 0;
    std::uint64_t attempt_seq = 0;  // local mode: fencing tokens
    std::deque<event> outbox;  // events in the order of the changes, not yet published
    bool publishing = false;   // a thread is draining the outbox
    std::thread::id publisher{};               // which one
    std::uint64_t emitted = 0, delivered = 0;  // events put in the outbox / published
    std::atomic<bool> outbox_nonempty{false};  // lets apply() skip the lock when nothing is to publish

    // Lock held.
    void emit(event e) {
        outbox.push_back(std::move(e));
        ++emitted;
        outbox_nonempty.store(true, std::memory_order_relaxed);
    }

    // Lock held. A task event; not even built when nobody listens and
    // nothing is waiting to be published (so the sequence numbers that
    // wait_for() relies on stay in order: it counts as delivered at once).
    void emit_task(event_kind k, const task_entry& t, std::string detail = {}) {
        if (outbox.empty() && !bus.has_subscribers()) {
            ++emitted;
            ++delivered;
            return;
        }
        emit(make_event(k, t, std::move(detail)));
    }

    // Lock held. Whether events up to `seq` reached the subscribers, or cannot
    // be waited for from this thread (a subscriber calling back).
    bool delivered_up_to(std::uint64_t seq) const {
        return delivered >= seq || (publishing && publisher == std::this_thread::get_id());
    }
    std::size_t running_count = 0;
    bool stopping = false, stopped = false;
    steady::time_point next_autoscale{}, next_maintenance{};

    // ------------------------------------------------ distributed mode state
    std::shared_ptr<transport> tp;  // empty: local mode
    std::shared_ptr<node_backend> nb;  // set: the combined hot path (feed_once_fast, flush_ops)
    std::string node;
    std::chrono::milliseconds renew_every{0}, recover_every{0};
    std::size_t leasing = 0;      // slots reserved by lease calls in flight
    std::size_t io_inflight = 0;  // transport/store work outside the lock (stop waits for it)
    bool feeding = false, feed_again = false;  // feed(): one thread at a time
    std::vector<dist_op> pending_ops;          // finished attempts' changes not yet carried out
    std::vector<dist_op> retry_ops;            // changes the backend failed to carry out, for the next tick
    bool flushing_ops = false;                 // a thread is carrying them out
    steady::time_point next_poll{}, next_recover{};
    std::chrono::milliseconds poll_backoff{0};
    static constexpr const char* cancel_key = "orchcore.cancel";

    bool dist() const noexcept { return tp != nullptr; }
    // Local mode on the built-in store: the task table is the record of
    // truth and nothing is copied into a second table. With a store of the
    // user's (or in distributed mode), every change is written through.
    bool write_through = true;

    // Distributed mode: the node's I/O threads (one feeds, one flushes
    // finished tasks' changes, at a time each).
    std::optional<asio::thread_pool> io;

    asio::io_context ctl;
    asio::steady_timer tick_timer;
    std::thread ctl_thread;
    std::chrono::milliseconds tick{10};

    // ---------------------------------------------------------------- helpers

    static event make_event(event_kind k, const task_entry& t, std::string detail = {}) {
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

    static std::size_t ttl_class(task_status s) noexcept {
        switch (s) {
            case task_status::completed: return 0;
            case task_status::cancelled: return 1;
            default: return 2;
        }
    }

    std::chrono::milliseconds ttl_for(task_status s) const {
        switch (s) {
            case task_status::completed: return opt.completed_ttl;
            case task_status::cancelled: return opt.cancelled_ttl;
            default: return opt.failed_ttl;
        }
    }

    void set_status(task_entry& t, task_status to) {
        check_transition(t.rec.status, to);
        t.rec.status = to;
    }

    // Write-through of a record whose stored status was `expected`.
    void persist(const task_entry& t, task_status expected) {
        if (!write_through) return;
        if (!store->update(t.rec, expected)) ++counters.store_conflicts;
    }

    // Removes a waiting task from wherever it waits.
    void unlink_waiting(task_entry& t) {
        switch (t.where) {
            case location::queue: queue->cancel(t.queue_id); break;
            case location::ready: std::erase(ready, t.rec.id); break;
            case location::parked: std::erase(parked, t.rec.id); break;
            case location::delayed: delayed.erase(t.delayed_it); break;
            default: break;
        }
        t.where = location::none;
    }

    void finish(task_entry& t, task_status to, std::string error, effects& fx) {
        const task_status from = t.rec.status;
        if (from == task_status::queued || from == task_status::pending) unlink_waiting(t);
        set_status(t, to);
        t.where = location::none;
        t.rec.finished_at = wall::now();
        if (!error.empty()) t.rec.error = std::move(error);
        t.mailbox.clear();  // undelivered steering messages go with the task
        t.mailbox.shrink_to_fit();
        if (t.attempt) {
            t.attempt->cancel.store(true);
            t.attempt->mailbox_cv.notify_all();
            t.attempt.reset();
        }
        expiry[ttl_class(to)].emplace_back(deadline_after(ttl_for(to)), t.rec.id);
        persist(t, from);
        event_kind k = event_kind::task_completed;
        switch (to) {
            case task_status::completed: ++counters.completed; k = event_kind::task_completed; break;
            case task_status::failed: ++counters.failed; k = event_kind::task_failed; break;
            case task_status::cancelled: ++counters.cancelled; k = event_kind::task_cancelled; break;
            case task_status::timed_out: ++counters.timed_out; k = event_kind::task_timed_out; break;
            default: break;
        }
        emit_task(k, t, to == task_status::completed ? std::string{} : t.rec.error);
        t.terminal_event_seq = emitted;
        fx.wake_waiters = true;
    }

    // running -> queued, to run again after `delay` (or at once).
    void requeue(task_entry& t, std::chrono::milliseconds delay, bool front) {
        set_status(t, task_status::queued);
        persist(t, task_status::running);
        t.turn_deadline.reset();
        if (delay.count() > 0) {
            t.delayed_it = delayed.emplace(deadline_after(delay), t.rec.id);
            t.where = location::delayed;
        } else {
            if (front) ready.push_front(t.rec.id); else ready.push_back(t.rec.id);
            t.where = location::ready;
        }
    }

    // Fences off the current attempt: its token stops being valid and its
    // handler is asked to stop. The worker slot stays taken until the
    // handler actually returns.
    void fence_attempt(task_entry& t) {
        if (!t.attempt) return;
        signal_cancel(t.attempt);
        t.attempt.reset();
    }

    static void signal_cancel(const std::shared_ptr<attempt_state>& a) {
        a->cancel.store(true);
        a->mailbox_cv.notify_all();
        if (a->strand) {
            asio::post(*a->strand, [a] { a->signal.emit(asio::cancellation_type::all); });
        }
    }

    std::chrono::milliseconds backoff_delay(const task_entry& t) {
        std::uniform_real_distribution<double> u(0.0, 1.0);
        return t.rec.backoff.delay(t.rec.retries, u(rng));
    }

    std::size_t live_workers() const {
        return static_cast<std::size_t>(
            std::count_if(workers.begin(), workers.end(), [](const auto& kv) { return !kv.second.draining; }));
    }

    std::size_t free_slots() const {
        std::size_t n = 0;
        for (const auto& [id, w] : workers)
            if (!w.draining) n += w.w->options().max_concurrent - std::min(w.busy, w.w->options().max_concurrent);
        return n - std::min(n, leasing);  // leasing: distributed mode only
    }

    worker_entry* pick_worker(const std::vector<std::string>& tags) {
        worker_entry* best = nullptr;
        for (auto& [id, w] : workers) {
            if (w.draining || w.busy >= w.w->options().max_concurrent) continue;
            if (!w.w->options().satisfies(tags)) continue;
            if (!best || w.busy < best->busy) best = &w;
        }
        return best;
    }

    bool fitting_worker_exists(const std::vector<std::string>& tags) const {
        return std::any_of(workers.begin(), workers.end(),
                           [&](const auto& kv) { return !kv.second.draining && kv.second.w->options().satisfies(tags); });
    }

    void start_attempt(task_entry& t, worker_entry& w, effects& fx) {
        const auto now = steady::now();
        set_status(t, task_status::running);
        t.where = location::running;
        ++t.rec.attempts;
        ++counters.started;
        if (!t.rec.started_at) t.rec.started_at = wall::now();
        t.rec.worker_id = w.w->id();
        auto a = std::make_shared<attempt_state>();
        a->c = this;
        a->id = t.rec.id;
        a->type = t.rec.type;
        a->payload = t.rec.payload;
        a->metadata = t.rec.metadata;
        a->worker_id = w.w->id();
        a->attempt = t.rec.attempts;
        a->turn = t.rec.turns;
        // In one process the fence is the task's current attempt
        // (task_entry::attempt): the token numbers attempts for the handler
        // and the events, and no lease table is needed.
        a->token = ++attempt_seq;
        t.attempt = a;
        auto turn_timeout = t.rec.turn_timeout.count() > 0 ? t.rec.turn_timeout : w.w->options().task_timeout;
        if (turn_timeout.count() > 0) t.turn_deadline = saturating_add(now, turn_timeout); else t.turn_deadline.reset();
        persist(t, task_status::queued);
        ++w.busy;
        w.running.push_back(a);
        ++running_count;
        launch ln{w.w, a, nullptr, nullptr};
        if (auto it = async_handlers.find(t.rec.type); it != async_handlers.end()) {
            a->strand.emplace(asio::make_strand(w.w->executor()));
            if (w.w->on_user_executor()) a->keep_alive = shared_from_this();
            ln.async = it->second;
        } else {
            ln.sync = handlers.at(t.rec.type);
        }
        fx.launches.push_back(std::move(ln));
        emit_task(event_kind::task_started, t);
    }

    // Places waiting tasks on free fitting workers: parked first, then tasks
    // due to run again, then the admission queue.
    void dispatch(effects& fx) {
        if (stopped || workers.empty()) return;
        std::size_t free = free_slots();
        if (free == 0) return;
        // Starts the task on a fitting worker; false if none has room. A
        // task that is gone (cancelled or expired) counts as placed.
        auto place = [&](std::unordered_map<std::string, task_entry>::iterator it) -> bool {
            if (it == tasks.end() || it->second.rec.status != task_status::queued) return true;
            worker_entry* w = pick_worker(it->second.rec.tags);
            if (!w) return false;
            start_attempt(it->second, *w, fx);
            --free;
            return true;
        };
        auto try_place = [&](const std::string& id) { return place(tasks.find(id)); };
        for (auto p = parked.begin(); p != parked.end() && free > 0;) {
            if (try_place(*p)) p = parked.erase(p); else ++p;
        }
        const std::size_t parked_limit = 64 + 2 * (free + running_count);
        while (free > 0 && !ready.empty()) {
            std::string id = std::move(ready.front());
            ready.pop_front();
            if (!try_place(id)) park(id);
        }
        while (free > 0 && parked.size() < parked_limit) {
            auto e = queue->try_pop();
            if (!e) break;
            auto it = tasks.find(e->value);  // one lookup per task taken
            if (it != tasks.end()) it->second.where = location::none;
            if (!place(it)) {
                parked.push_back(std::move(e->value));
                it->second.where = location::parked;
            }
        }
    }

    void park(const std::string& id) {
        parked.push_back(id);
        if (auto it = tasks.find(id); it != tasks.end()) it->second.where = location::parked;
    }

    /// Lock held. Throws if no handler is registered for the type.
    void require_handler(const std::string& type) const {
        if (!handlers.count(type) && !async_handlers.count(type))
            throw invalid_argument("type", "\"" + type + "\"", "no handler is registered for this task type");
    }

    /// Lock held. Local mode: admits one task or rejects it, filling `out`.
    /// The caller has checked its handler and options, and dispatches.
    void admit_local(std::string& type, std::string& payload, task_options& o, submit_result& out,
                     coordinator* owner, effects& fx) {
        auto reject = [&](rejection_reason r, std::string_view why, std::chrono::milliseconds retry_after) {
            out.admission.is_accepted = false;
            out.admission.id = o.id;
            out.admission.reason = r;
            out.admission.detail = why;
            out.admission.retry_after = retry_after;
            ++counters.rejected;
            event ev;
            ev.kind = event_kind::task_rejected;
            ev.task_id = o.id.value_or("");
            ev.detail = std::string(why);
            emit(std::move(ev));
        };
        auto next_id = [this] { return "task-" + std::to_string(++task_seq); };
        if (stopping) {
            reject(rejection_reason::closed, "coordinator is stopping", std::chrono::milliseconds{0});
            return;
        }
        if (o.id && (tasks.count(*o.id) || (write_through && store->get(*o.id)))) {
            reject(rejection_reason::invalid_request, "duplicate id: a task with this id exists",
                   std::chrono::milliseconds{0});
            return;
        }
        if (!priority::is_valid(o.priority)) {
            reject(rejection_reason::invalid_request, "priority out of range [0, 20]", std::chrono::milliseconds{0});
            return;
        }
        const bool fail_fast = opt.policy == queue_policy::fail_fast;
        std::string id = o.id ? *o.id : next_id();
        job_id queue_id = 0;
        if (fail_fast) {
            // Admitted only if a fitting worker can start it now.
            if (pick_worker(o.tags) == nullptr) {
                reject(rejection_reason::policy_violation, "fail-fast: no free worker can take it now",
                       opt.queue.default_retry_after);
                return;
            }
            out.admission.position = 0;
        } else {
            auto r = queue->try_push(std::string(id), {.priority = o.priority});
            if (!r) {
                reject(r.reason, r.detail, r.retry_after);
                return;
            }
            queue_id = *r.id;
            out.admission.position = r.position;
            // A task the policy pushed out to make room is cancelled now,
            // whatever becomes of this one.
            if (r.evicted) {
                // The caller learns which task made room: its id, priority
                // and admission time (the queue's own id stays internal).
                out.admission.evicted.emplace(queue_entry<std::monostate, std::string>{
                    r.evicted->value, {}, r.evicted->priority, r.evicted->enqueued_at});
                if (auto eit = tasks.find(r.evicted->value); eit != tasks.end()) {
                    eit->second.where = location::none;  // already out of the queue
                    finish(eit->second, task_status::cancelled,
                           "evicted by the " + std::string(to_string(opt.policy)) + " admission policy", fx);
                }
            }
        }
        // One lookup: the insertion itself. A generated id can collide only
        // with a caller's "task-<n>"; then the task takes the next number.
        auto [it, inserted] = tasks.try_emplace(id);
        while (!inserted) {
            if (!fail_fast) queue->cancel(queue_id);
            id = next_id();
            std::tie(it, inserted) = tasks.try_emplace(id);
            if (inserted && !fail_fast) {
                // Back in under the new id, in the room the cancel freed;
                // a refusal is still handled rather than assumed away.
                auto r = queue->try_push(std::string(id), {.priority = o.priority});
                if (!r) {
                    tasks.erase(it);
                    reject(r.reason, r.detail, r.retry_after);
                    return;
                }
                queue_id = *r.id;
                out.admission.position = r.position;
            }
        }
        task_entry& t = it->second;
        t.queue_id = queue_id;
        t.rec.id = id;
        t.rec.type = std::move(type);
        t.rec.payload = std::move(payload);
        t.rec.priority = o.priority;
        t.rec.owner = std::move(o.owner);
        t.rec.metadata = std::move(o.metadata);
        t.rec.tags = std::move(o.tags);
        t.rec.timeout = o.timeout;
        t.rec.turn_timeout = o.turn_timeout;
        t.rec.max_retries = o.max_retries.value_or(opt.default_max_retries);
        t.rec.backoff = o.backoff.value_or(opt.default_backoff);
        t.rec.created_at = wall::now();
        set_status(t, task_status::queued);
        if (!fail_fast) t.where = location::queue;
        if (write_through && !store->create(t.rec)) {
            // Another coordinator sharing the store took this id first.
            if (!fail_fast) queue->cancel(queue_id);
            tasks.erase(it);
            reject(rejection_reason::invalid_request, "duplicate id: a task with this id exists",
                   std::chrono::milliseconds{0});
            return;
        }
        if (o.timeout.count() > 0) {
            t.deadline = deadline_after(o.timeout);
            deadlines.emplace(*t.deadline, id);
        }
        ++counters.submitted;
        emit_task(event_kind::task_queued, t);
        if (fail_fast) start_attempt(t, *pick_worker(t.rec.tags), fx);
        out.admission.is_accepted = true;
        out.admission.id = id;
        out.handle = task_handle(owner, std::move(id));
    }

    std::shared_ptr<worker> create_worker(worker_options o, effects& /*fx*/) {
        o.validate();
        if (o.heartbeat_interval >= opt.worker_timeout)
            throw invalid_argument("worker.heartbeat_interval", std::to_string(o.heartbeat_interval.count()) + "ms",
                                   "must be shorter than worker_timeout (" +
                                       std::to_string(opt.worker_timeout.count()) + "ms)");
        if (o.id.empty()) o.id = dist() ? node + "/worker-" + std::to_string(++worker_seq)
                                         : "worker-" + std::to_string(++worker_seq);
        if (workers.count(o.id)) throw invalid_argument("worker.id", "\"" + o.id + "\"", "a worker with this id exists");
        // One spare thread beyond the task slots carries heartbeats, so a
        // worker whose slots are all busy still proves it is alive.
        auto w = std::make_shared<worker>(o, 1);
        worker_entry e;
        e.w = w;
        e.last_heartbeat = steady::now();
        e.last_heartbeat_wall = wall::now();
        workers.emplace(o.id, std::move(e));
        start_heartbeats(o.id, *w);
        // Distributed mode: the control thread registers it with its first
        // beat (write_registry), never a call to the backend under the lock.
        if (!dist()) registry->upsert(registry_record(*w, wall::now()));
        event ev;
        ev.kind = event_kind::worker_started;
        ev.worker_id = o.id;
        emit(std::move(ev));
        return w;
    }

    void retire_worker(std::map<std::string, worker_entry>::iterator it, event_kind why, std::string detail,
                       effects& /*fx*/) {
        event ev;
        ev.kind = why;
        ev.worker_id = it->first;
        ev.detail = std::move(detail);
        emit(std::move(ev));
        retired.push_back(it->second.w);
        stop_heartbeats(it->first);
        // Retired cleanly: nothing to remember (distributed mode: removed
        // by the control thread, outside the lock).
        if (dist()) registry_removals.push_back(it->first); else registry->remove(it->first);
        workers.erase(it);
    }

    std::size_t scale_to(std::size_t n, std::string reason, effects& fx) {
        n = std::clamp(n, opt.scaling.min_workers, opt.scaling.max_workers);
        const std::size_t from = live_workers();
        if (n == from) return n;
        if (n > from) {
            for (std::size_t i = from; i < n; ++i) create_worker(opt.worker_template, fx);
        } else {
            // Prefer idle workers; a busy one drains (takes no new task) and
            // stops when its last task ends.
            std::size_t to_remove = from - n;
            for (int pass = 0; pass < 2 && to_remove > 0; ++pass) {
                for (auto it = workers.begin(); it != workers.end() && to_remove > 0;) {
                    auto next = std::next(it);
                    if (!it->second.draining && (pass == 1 || it->second.busy == 0)) {
                        --to_remove;
                        if (it->second.busy == 0) {
                            retire_worker(it, event_kind::worker_stopped, "scaled down", fx);
                        } else {
                            it->second.draining = true;
                        }
                    }
                    it = next;
                }
            }
        }
        counters.scaling_history.push_back(scale_record{wall::now(), from, n, reason});
        if (counters.scaling_history.size() > 256)
            counters.scaling_history.erase(counters.scaling_history.begin());
        event ev;
        ev.kind = event_kind::scaled;
        ev.from = from;
        ev.to = n;
        ev.detail = std::move(reason);
        emit(std::move(ev));
        dispatch(fx);
        return n;
    }

    // ------------------------------------------------------------ attempts

    // Lock held. Counts and announces an outcome refused because its
    // attempt no longer holds the task (stale fencing token).
    void refuse_stale(const std::string& task_id, const std::string& worker_id, std::uint32_t attempt,
                      std::string detail) {
        ++counters.stale_token_refusals;
        if (torn_down) return;  // counted; nobody is left to tell (see finish_attempt)
        event ev;
        ev.kind = event_kind::stale_token_refused;
        ev.task_id = task_id;
        ev.worker_id = worker_id;
        ev.attempt = attempt;
        ev.detail = std::move(detail);
        emit(std::move(ev));
    }

    // Lock held. The attempt's worker slot is free again whatever happens to
    // its result (a dead worker's attempts were uncounted at its death);
    // stop() waits for running attempts to return, hence the wake-up.
    void release_slot(const attempt_state& a, bool succeeded, effects& fx) {
        if (auto wit = workers.find(a.worker_id); wit != workers.end()) {
            auto& w = wit->second;
            if (std::erase_if(w.running, [&](const auto& p) { return p.get() == &a; }) > 0) {
                if (w.busy > 0) --w.busy;
                if (running_count > 0) --running_count;
            }
            if (succeeded) ++w.completed; else ++w.failed;
            if (w.draining && w.busy == 0) retire_worker(wit, event_kind::worker_stopped, "drained", fx);
        }
        fx.wake_waiters = true;
    }

    // A result the store would refuse fails its task at once, without
    // retries (it would be refused again), decided here with no I/O; the
    // result of a turn that continues is ignored anyway.
    void refuse_oversized(const attempt_state& a, outcome& o) const {
        if (o.kind != outcome::success || a.continue_requested || !write_through) return;
        const auto limit = store->max_value_bytes();
        if (o.result.size() <= limit) return;
        o = {outcome::failure, {},
             "result of " + std::to_string(o.result.size()) + " bytes exceeds max_payload_bytes = " +
                 std::to_string(limit),
             false};
    }

    void finish_attempt(const std::shared_ptr<attempt_state>& a, outcome o) {
        refuse_oversized(*a, o);
        if (dist()) {
            finish_attempt_dist(a, std::move(o));
            return;
        }
        effects fx;
        {
            std::lock_guard lk(mu);
            // A coroutine on a user executor can end after stop() is
            // over: the task was settled then, and nobody is left to tell.
            if (torn_down) return;
            release_slot(*a, o.kind == outcome::success, fx);
            auto it = tasks.find(a->id);
            if (it == tasks.end() || it->second.attempt != a) {
                refuse_stale(a->id, a->worker_id, a->attempt, "late completion of a fenced attempt");
            } else {
                task_entry& t = it->second;
                t.attempt.reset();
                if (t.cancel_requested) {
                    finish(t, task_status::cancelled, "cancelled", fx);
                } else if (o.kind == outcome::success && a->continue_requested) {
                    ++t.rec.turns;
                    ++counters.continued;
                    requeue(t, a->continue_delay, false);
                    emit_task(event_kind::task_continued, t);
                } else if (o.kind == outcome::success) {
                    t.rec.result = std::move(o.result);
                    t.rec.progress = 1.0;
                    finish(t, task_status::completed, {}, fx);
                } else {
                    fail_attempt(t, std::move(o.error), o.retryable, fx);
                }
            }
            dispatch(fx);
        }
        apply(fx);
    }

    void fail_attempt(task_entry& t, std::string error, bool retryable, effects& fx) {
        const bool past_deadline = t.deadline && steady::now() >= *t.deadline;
        if (retryable && !past_deadline && t.rec.retries < t.rec.max_retries) {
            ++t.rec.retries;
            ++counters.retried;
            t.rec.error = error;
            requeue(t, backoff_delay(t), false);
            emit_task(event_kind::task_retried, t, std::move(error));
        } else {
            finish(t, task_status::failed, std::move(error), fx);
        }
    }

    void run_sync(const launch& ln) {
        ln.a->sync_handler = ln.sync;
        // Through the worker's queue, not an Asio post per task: a stream of
        // launches keeps the worker's drainers busy instead of waking a
        // thread per task. The callable holds only `a`, so std::function
        // stores it without allocating.
        ln.w->post([a = ln.a] {
            outcome o;
            try {
                task_context ctx(a);
                o.result = (*a->sync_handler)(ctx);
            } catch (const non_retryable_error& e) {
                o = {outcome::failure, {}, e.what(), false};
            } catch (const std::exception& e) {
                o = {outcome::failure, {}, e.what(), true};
            } catch (...) {
                o = {outcome::failure, {}, "unknown exception", true};
            }
            a->c->finish_attempt(a, std::move(o));
        });
    }

    static asio::awaitable<std::string> run_coroutine(std::shared_ptr<attempt_state> a,
                                                      std::shared_ptr<const async_task_handler> h) {
        task_context ctx(a);
        co_return co_await (*h)(ctx);
    }

    void run_async(const launch& ln) {
        auto a = ln.a;
        asio::co_spawn(*a->strand, run_coroutine(a, ln.async),
                       asio::bind_cancellation_slot(a->signal.slot(), [this, a](std::exception_ptr ep, std::string r) {
                           outcome o;
                           if (ep) {
                               try {
                                   std::rethrow_exception(ep);
                               } catch (const non_retryable_error& e) {
                                   o = {outcome::failure, {}, e.what(), false};
                               } catch (const std::exception& e) {
                                   o = {outcome::failure, {}, e.what(), true};
                               } catch (...) {
                                   o = {outcome::failure, {}, "unknown exception", true};
                               }
                           } else {
                               o.result = std::move(r);
                           }
                           // Held to the end of this handler: the last
                           // reference may be this one (the coordinator is gone).
                           auto keep = std::move(a->keep_alive);
                           finish_attempt(a, std::move(o));
                       }));
    }

    // Publishes the outbox outside the lock. One thread drains at a time and
    // takes events in outbox order, so subscribers see each task's changes
    // in the order they happened even when several threads cause them. A
    // subscriber that calls back into the coordinator only appends; the
    // draining thread publishes those too before it returns.
    void flush_events() {
        // Whoever emits calls apply() after releasing the lock, so it sees
        // its own event here; an empty outbox needs no lock round trip.
        if (!outbox_nonempty.load(std::memory_order_relaxed)) return;
        std::unique_lock lk(mu);
        if (publishing) return;
        publishing = true;
        publisher = std::this_thread::get_id();
        while (!outbox.empty()) {
            std::deque<event> batch;
            batch.swap(outbox);
            outbox_nonempty.store(false, std::memory_order_relaxed);
            lk.unlock();
            for (const auto& e : batch) bus.publish(e);  // never throws: the bus catches subscriber errors
            lk.lock();
            delivered += batch.size();
            if (!async_waiters.empty()) wake_async_waiters();
            done_cv.notify_all();  // wait_for returns only once the terminal event is out
        }
        publishing = false;
        publisher = {};
    }

    void apply(effects& fx) {
        if (fx.wake_waiters) done_cv.notify_all();
        if (fx.wake_waiters && async_waiter_count.load(std::memory_order_relaxed) != 0) {
            std::lock_guard lk(mu);
            wake_async_waiters();
        }
        // Events first: task.started must not trail its own task.completed.
        flush_events();
        for (auto& ln : fx.launches) {
            if (ln.async) run_async(ln); else run_sync(ln);
        }
    }

    // --------------------------------------------------------- control tick

    // A worker that leaves for good: own threads are joined; on a user
    // executor it is closed (queued work dropped, nothing posted later runs),
    // which waits only for what executes right now.
    static void end_worker(worker& w) {
        if (w.on_user_executor()) w.close(); else w.join();
    }

    std::shared_ptr<user_control> uctl;  // control loop on opt.executor

    // Coroutines awaiting tasks, by task id (mu). The count mirrors its
    // size, so that apply() can skip the lock when nobody awaits; only the
    // two helpers below change the map.
    std::unordered_multimap<std::string, std::shared_ptr<async_waiter>> async_waiters;
    std::atomic<std::size_t> async_waiter_count{0};

    // Lock held.
    void add_async_waiter(const std::string& id, std::shared_ptr<async_waiter> w) {
        async_waiters.emplace(id, std::move(w));
        async_waiter_count.store(async_waiters.size(), std::memory_order_relaxed);
    }
    // Lock held. Returns the next entry.
    auto erase_async_waiter(decltype(async_waiters)::iterator it) {
        it = async_waiters.erase(it);
        async_waiter_count.store(async_waiters.size(), std::memory_order_relaxed);
        return it;
    }

    // Lock held. A worker declared dead (kept until stop), or null.
    std::shared_ptr<worker> dead_worker(const std::string& id) const {
        for (const auto& w : dead_workers)
            if (w->id() == id) return w;
        return nullptr;
    }

    // Distributed waits: one look at the shared store. done: the wait is
    // over, with the terminal record (or empty: it expired meanwhile). Not
    // done: not terminal yet, or the store did not answer (keep trying
    // until the deadline). An id never seen is not_found.
    struct store_look {
        bool done = false;
        std::optional<task_record> rec;
    };
    store_look look_shared(const std::string& id, bool& seen) const {
        std::optional<task_record> r;
        try {
            r = store->get(id);
        } catch (const error& e) {
            if (e.code() != errc::backend_unavailable) throw;
            return {};
        }
        if (!r) {
            if (!seen) throw error(errc::not_found, "orchcore: no task with id \"" + id + "\"");
            return {true, std::nullopt};
        }
        seen = true;
        if (is_terminal(r->status)) return {true, std::move(r)};
        return {};
    }

    // Lock held. Wakes the awaiters whose task has ended (its terminal event
    // delivered, as for wait_for) or is gone; all of them in distributed
    // mode (they look at the shared store again) and once stopped.
    void wake_async_waiters() {
        for (auto it = async_waiters.begin(); it != async_waiters.end();) {
            auto t = tasks.find(it->first);
            const bool due = dist() || stopped || t == tasks.end() ||
                             (is_terminal(t->second.rec.status) && delivered_up_to(t->second.terminal_event_seq));
            if (!due) {
                ++it;
                continue;
            }
            it->second->wake();
            it = erase_async_waiter(it);
        }
    }
    bool torn_down = false;  // mu; stop() is over: workers ended, control loop closed

    // Distributed mode: the idle node's wait for work (created on the first
    // empty lease round), and the finish notifications that wake waits for
    // tasks run elsewhere (each bumps finished_gen, under mu).
    std::unique_ptr<work_waker> waker;  // mu
    std::uint64_t finish_generation() {
        std::lock_guard lk(mu);
        return finished_gen;
    }
    std::uint64_t finished_gen = 0;     // mu
    finish_watch finishes{[this](const std::string&) {
        std::lock_guard lk(mu);
        ++finished_gen;
        done_cv.notify_all();
        wake_async_waiters();
    }};
    // Lock held. The node has free slots and the queue had nothing.
    void went_idle() {
        if (!waker) waker = std::make_unique<work_waker>(*tp, [this] { kick_feed(); }, std::chrono::milliseconds(1'000));
        waker->idle();
    }
    // Ends both (no lock held).
    void stop_wakeups() {
        std::unique_ptr<work_waker> w;
        {
            std::lock_guard lk(mu);
            w.swap(waker);
        }
        if (w) w->stop();
        finishes.close();
    }

    void arm_user_tick() {  // uctl->m held
        uctl->timer.expires_after(tick);
        uctl->timer.async_wait([this, u = uctl](boost::system::error_code ec) {
            std::unique_lock g(u->m);
            if (ec || u->closed) return;  // stopped: `this` may be gone
            u->ticking.store(std::this_thread::get_id());
            on_tick();
            u->ticking.store({});
            {
                std::lock_guard lk(mu);
                if (stopped) return;
            }
            arm_user_tick();
        });
    }

    void stop_user_control() {
        if (!uctl) return;
        if (uctl->ticking.load() == std::this_thread::get_id()) {
            uctl->closed = true;  // stop() from inside a tick (an event subscriber): this thread holds m
            uctl->timer.cancel();
            return;
        }
        std::lock_guard g(uctl->m);
        uctl->closed = true;
        uctl->timer.cancel();
    }

    void start_control() {
        next_recover = steady::now();
        next_autoscale = deadline_after(opt.autoscale_interval);
        next_maintenance = deadline_after(opt.maintenance_interval);
        tick = std::min<std::chrono::milliseconds>(
            {std::chrono::milliseconds(10), opt.worker_template.heartbeat_interval, opt.worker_timeout / 4});
        if (tick.count() <= 0) tick = std::chrono::milliseconds(1);
        if (opt.executor) {
            uctl = std::make_shared<user_control>(*opt.executor);
            std::lock_guard g(uctl->m);
            arm_user_tick();
            return;
        }
        arm_tick();
        ctl_thread = std::thread([this] { ctl.run(); });
        ctl_thread_id = ctl_thread.get_id();
    }

    // ------------------------------------------------------ stop from inside

    std::thread::id ctl_thread_id{};  // set once, before anything can call stop()
    std::thread stopper;              // mu; carries out a stop() called from inside

    // Lock held. Whether the calling thread is one that stop() waits for:
    // the control thread, an I/O thread, a worker's, or a tick on the user's
    // executor (a handler or an event subscriber runs on one of them).
    bool on_own_thread() {
        const auto me = std::this_thread::get_id();
        if (me == ctl_thread_id || (uctl && uctl->ticking.load() == me)) return true;
        if (io && io->get_executor().running_in_this_thread()) return true;
        auto here = [](const std::shared_ptr<worker>& w) { return w->runs_here(); };
        for (const auto& [id, w] : workers)
            if (here(w.w)) return true;
        return std::any_of(retired.begin(), retired.end(), here) ||
               std::any_of(dead_workers.begin(), dead_workers.end(), here);
    }

    // stop() on one of the coordinator's own threads cannot wait there (it
    // would wait for itself): admission closes at once, and the rest of the
    // stop runs on a thread of its own. Returns false on any other thread.
    template <class Stop>
    bool stop_from_inside(Stop&& stop_fn) {
        std::lock_guard lk(mu);
        if (!on_own_thread()) return false;
        if (stopping || stopped) return true;  // a stop is under way already
        stopping = true;
        if (!dist()) queue->close();
        stopper = std::thread(std::forward<Stop>(stop_fn));
        return true;
    }

    // A stop() from outside first waits for one started from inside.
    void await_stopper() {
        std::thread t;
        {
            std::lock_guard lk(mu);
            if (stopper.joinable() && stopper.get_id() != std::this_thread::get_id()) t = std::move(stopper);
        }
        if (t.joinable()) t.join();
    }

    ~coordinator_impl() {
        // The stopper holds this object: it ends here only as its last owner.
        if (stopper.joinable()) {
            if (stopper.get_id() == std::this_thread::get_id()) stopper.detach(); else stopper.join();
        }
    }

    void arm_tick() {
        tick_timer.expires_after(tick);
        tick_timer.async_wait([this](boost::system::error_code ec) {
            if (ec) return;
            on_tick();
            std::lock_guard lk(mu);
            if (!stopped) arm_tick();
        });
    }

    // Lock held. Starts a worker's heartbeat clock; the first beat at once.
    void start_heartbeats(const std::string& id, worker& w) {
        auto hb = std::make_shared<heartbeat_clock>(w.executor());
        beats.insert_or_assign(id, hb);
        arm_heartbeat(hb, id, std::chrono::milliseconds{0});
    }

    // Lock held. A worker that leaves for good stops its clock before its
    // threads are joined (a pending timer would keep them busy).
    void stop_heartbeats(const std::string& id) {
        auto it = beats.find(id);
        if (it == beats.end()) return;
        const auto hb = std::move(it->second);  // may be the last owner: it outlives the lock below
        beats.erase(it);
        std::lock_guard g(hb->m);
        hb->closed = true;
        hb->timer.cancel();
    }

    void arm_heartbeat(const std::shared_ptr<heartbeat_clock>& hb, std::string wid, std::chrono::milliseconds after) {
        std::lock_guard g(hb->m);
        if (hb->closed) return;
        hb->timer.expires_after(after);
        hb->timer.async_wait([self = weak_from_this(), hb, wid = std::move(wid)](boost::system::error_code ec) {
            {
                std::lock_guard g2(hb->m);
                if (ec || hb->closed) return;
            }
            auto c = self.lock();  // a clock on a user executor may fire after the coordinator is gone
            if (!c) return;
            if (auto next = c->heartbeat(wid)) c->arm_heartbeat(hb, wid, *next);
        });
    }

    // One beat of a worker's clock (or a beat resume_heartbeats sends for a
    // worker declared dead). Returns when the next is due; empty: the clock
    // stops (heartbeats suspended, or the worker is gone or dead).
    std::optional<std::chrono::milliseconds> heartbeat(const std::string& worker_id) {
        wall::time_point at;
        std::optional<std::chrono::milliseconds> next;
        {
            std::unique_lock lk(mu);
            auto it = workers.find(worker_id);
            if (it == workers.end()) {
                // A worker declared dead that comes back (its wedged threads
                // free again) is not alive again: its heartbeat is refused
                // and counted like any other stale attempt's call.
                if (dead_worker(worker_id)) {
                    refuse_stale({}, worker_id, 0, "heartbeat of a worker declared dead");
                    lk.unlock();
                    flush_events();
                }
                return std::nullopt;
            }
            if (it->second.heartbeats_suspended) return std::nullopt;  // resume_heartbeats restarts the clock
            it->second.last_heartbeat = steady::now();
            it->second.last_heartbeat_wall = at = wall::now();
            next = it->second.w->options().heartbeat_interval;
            if (!dist()) {
                registry->heartbeat(worker_id, at);
                return next;
            }
            // Distributed mode: the (shared, possibly remote) registry is
            // written by the control thread (dist_tick); it is
            // informational, leases decide ownership. Writing it here would
            // let a Redis outage hold this worker's heartbeat thread, stall
            // its local liveness, and get its tasks declared lost and run
            // again elsewhere.
            it->second.registry_due = at;
        }
        return next;
    }

    void on_tick() {
        if (dist()) {
            dist_tick();
            return;
        }
        effects fx;
        std::vector<std::shared_ptr<worker>> join_now;
        {
            std::lock_guard lk(mu);
            const auto now = steady::now();

            // Retries and continuations that are due.
            while (!delayed.empty() && delayed.begin()->first <= now) {
                auto id = delayed.begin()->second;
                delayed.erase(delayed.begin());
                if (auto it = tasks.find(id); it != tasks.end()) {
                    it->second.where = location::ready;
                    ready.push_back(id);
                }
            }

            // Timeouts and cancellations past their grace period, for running
            // attempts (only those: the tick must not scan finished records).
            std::vector<std::shared_ptr<attempt_state>> running_attempts;
            for (const auto& [wid, w] : workers)
                running_attempts.insert(running_attempts.end(), w.running.begin(), w.running.end());
            for (const auto& a : running_attempts) {
                auto it = tasks.find(a->id);
                if (it == tasks.end() || it->second.rec.status != task_status::running || it->second.attempt != a)
                    continue;  // fenced already: only the task's current attempt is judged
                task_entry& t = it->second;
                if (t.cancel_requested && now >= t.cancel_deadline) {
                    fence_attempt(t);
                    finish(t, task_status::cancelled, "cancelled (handler did not stop within cancel_grace)", fx);
                } else if (t.deadline && now >= *t.deadline) {
                    fence_attempt(t);
                    finish(t, task_status::timed_out, "task timeout", fx);
                } else if (t.turn_deadline && now >= *t.turn_deadline) {
                    fence_attempt(t);
                    if (t.rec.retries < t.rec.max_retries) {
                        ++t.rec.retries;
                        ++counters.retried;
                        t.rec.error = "turn timeout";
                        requeue(t, backoff_delay(t), false);
                        emit_task(event_kind::task_retried, t, "turn timeout");
                    } else {
                        finish(t, task_status::timed_out, "turn timeout", fx);
                    }
                }
            }
            // Whole-task timeouts of tasks that are waiting.
            while (!deadlines.empty() && deadlines.begin()->first <= now) {
                auto id = deadlines.begin()->second;
                deadlines.erase(deadlines.begin());
                auto it = tasks.find(id);
                if (it != tasks.end() && it->second.rec.status == task_status::queued)
                    finish(it->second, task_status::timed_out, "task timeout while waiting", fx);
                // running ones are caught above through t.deadline
            }

            // Heartbeats come from each worker's own clock (start_heartbeats).

            // Health: the registry names workers silent for worker_timeout;
            // those of ours are declared dead and their tasks re-run.
            std::vector<std::string> stale = registry->reap_stale(wall::now(), opt.worker_timeout);
            for (auto it = workers.begin(); it != workers.end();) {
                auto next = std::next(it);
                if (std::find(stale.begin(), stale.end(), it->first) != stale.end()) {
                    ++counters.workers_died;
                    for (const auto& a : it->second.running) {
                        // Every slot it held is released, fenced attempts' too.
                        if (running_count > 0) --running_count;
                        auto tit = tasks.find(a->id);
                        if (tit == tasks.end() || tit->second.rec.status != task_status::running ||
                            tit->second.attempt != a)
                            continue;  // not this worker's to lose: fenced earlier, maybe re-run elsewhere
                        task_entry& t = tit->second;
                        fence_attempt(t);
                        ++t.rec.worker_losses;
                        ++counters.requeued_after_worker_death;
                        if (t.cancel_requested) {
                            finish(t, task_status::cancelled, "cancelled", fx);
                        } else {
                            requeue(t, std::chrono::milliseconds{0}, true);
                            emit_task(event_kind::task_requeued, t, "worker declared dead");
                        }
                    }
                    it->second.running.clear();
                    // Its threads may be wedged: keep the worker object alive
                    // apart (joined at stop) rather than block here.
                    dead_workers.push_back(it->second.w);
                    event ev;
                    ev.kind = event_kind::worker_dead;
                    ev.worker_id = it->first;
                    ev.detail = "no heartbeat for " + std::to_string(opt.worker_timeout.count()) + "ms";
                    emit(std::move(ev));
                    workers.erase(it);
                }
                it = next;
            }

            // Replace below min at once; otherwise scale on the interval.
            if (!stopping) {
                if (live_workers() < opt.scaling.min_workers) {
                    scale_to(opt.scaling.min_workers, "replacing lost workers (below min_workers)", fx);
                } else if (opt.autoscale && now >= next_autoscale) {
                    next_autoscale = saturating_add(now, opt.autoscale_interval);
                    const std::size_t depth = queue->size() + ready.size() + parked.size();
                    if (auto d = scaler.evaluate(depth, live_workers(), now))
                        scale_to(d->to, std::string(d->reason), fx);
                }
            }

            // TTL expiry of finished tasks.
            if (now >= next_maintenance) {
                next_maintenance = saturating_add(now, opt.maintenance_interval);
                (void)registry->purge_silent(wall::now(), entry_lifetime());  // dead workers' entries
                for (auto& fifo : expiry) {
                    while (!fifo.empty() && fifo.front().first <= now) {
                        auto id = std::move(fifo.front().second);
                        fifo.pop_front();
                        auto it = tasks.find(id);
                        if (it == tasks.end() || !is_terminal(it->second.rec.status)) continue;
                        ++counters.expired;
                        emit_task(event_kind::task_expired, it->second);
                        if (write_through) store->erase(id);
                        tasks.erase(it);
                    }
                }
            }

            dispatch(fx);
            // Drained workers: join outside the lock.
            join_now.swap(retired);
        }
        apply(fx);
        for (auto& w : join_now) end_worker(*w);
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

    static event make_event_rec(event_kind k, const task_record& r, std::string detail = {}) {
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

    // Writes `r` (carrying its new status) as the owner of the task:
    // compare-and-set from `expected`; if the stored status is another one (a
    // recoverer or a canceller got there first), moves from what is stored,
    // through running if needed. False if the record is gone or terminal.
    bool owner_write(const task_record& r, task_status expected) {
        if ((expected == r.status || is_legal_transition(expected, r.status)) && store->update(r, expected))
            return true;
        for (int i = 0; i < 4; ++i) {
            auto cur = store->get(r.id);
            if (!cur || is_terminal(cur->status)) return false;
            if (cur->status == r.status || is_legal_transition(cur->status, r.status)) {
                if (store->update(r, cur->status)) return true;
                continue;
            }
            if (!is_legal_transition(cur->status, task_status::running)) return false;
            task_record step = r;
            step.status = task_status::running;
            step.finished_at.reset();
            store->update(step, cur->status);
        }
        return false;
    }

    // Lock held. Ends the local attempt of `t` (fencing it if its handler is
    // still running) and returns the record change to carry out; the caller
    // erases `t` from `tasks`.
    dist_op make_op(task_entry& t, task_status to, std::string error, std::chrono::milliseconds delay, event_kind ev,
                    std::string detail, dist_op::why reason) {
        if (t.attempt) {
            signal_cancel(t.attempt);
            t.attempt.reset();
        }
        dist_op op;
        op.rec = t.rec;
        op.expected = t.rec.status;
        op.rec.status = to;
        op.rec.metadata.erase(cancel_key);
        if (is_terminal(to)) op.rec.finished_at = wall::now();
        if (!error.empty()) op.rec.error = std::move(error);
        op.token = t.token;
        op.held_until = t.held_until;
        op.delay = delay;
        op.ev = ev;
        op.detail = std::move(detail);
        op.reason = reason;
        ++io_inflight;
        return op;
    }

    // What became of one record change in run_ops.
    enum class fate : unsigned char { pending, failed, not_held, conflict, written };

    // A failure of the backend itself (it did not answer), as opposed to a
    // refusal of one item (invalid_argument: a record the store cannot
    // take). Anything not from orchcore counts as the backend's.
    static bool backend_failure(const std::exception& e) {
        const auto* oe = dynamic_cast<const error*>(&e);
        return oe == nullptr || oe->code() != errc::invalid_argument;
    }

    // Carries out record changes as the lease holder, then acks (terminal)
    // or nacks (back to the queue) the leases. Outside the lock. A batch
    // costs one store pipeline and one ack script, not two round trips per
    // task; a change refused by the store's compare-and-set, or refused
    // outright (a record the store cannot take), is retried alone, so one
    // bad item never fails the others.
    void run_ops(std::vector<dist_op>& ops) {
        const std::size_t n = ops.size();
        if (n == 0) return;
        std::vector<fate> f(n, fate::pending);
        hold_leases(ops, f);
        write_batch(ops, f);
        std::vector<bool> io_error(n, false);
        settle_leases(ops, f, io_error);
        std::vector<std::string> ended;
        for (std::size_t i = 0; i < n; ++i)
            if (f[i] == fate::written && is_terminal(ops[i].rec.status)) ended.push_back(ops[i].rec.id);
        announce_finished(*tp, ended);
        record_outcomes(ops, f, io_error);
    }

    // Extends, first, the leases with less than half left.
    void hold_leases(std::vector<dist_op>& ops, std::vector<fate>& f) {
        const auto now = wall::now();
        for (std::size_t i = 0; i < ops.size(); ++i) {
            if (ops[i].held_until - now >= opt.lease_duration / 2) continue;
            try {
                if (tp->extend(ops[i].rec.id, ops[i].token, opt.lease_duration, now))
                    ops[i].held_until = saturating_add(now, opt.lease_duration);
                else
                    f[i] = fate::not_held;
            } catch (const std::exception&) {
                f[i] = fate::failed;
            }
        }
    }

    // The records, in one pipeline. If the store refuses the batch for one
    // item, every item is left pending, to be written alone.
    void write_batch(const std::vector<dist_op>& ops, std::vector<fate>& f) {
        std::vector<std::size_t> idx;
        std::vector<task_record> recs;
        std::vector<task_status> expected;
        for (std::size_t i = 0; i < ops.size(); ++i) {
            if (f[i] != fate::pending) continue;
            const bool legal = ops[i].expected == ops[i].rec.status ||
                               is_legal_transition(ops[i].expected, ops[i].rec.status);
            if (!legal) continue;  // owner_write sorts it out
            idx.push_back(i);
            recs.push_back(ops[i].rec);
            expected.push_back(ops[i].expected);
        }
        try {
            const auto res = store->update_many(recs, expected);
            for (std::size_t k = 0; k < idx.size(); ++k)
                if (res[k]) f[idx[k]] = fate::written;
        } catch (const std::exception& e) {
            if (backend_failure(e))
                for (std::size_t i : idx) f[i] = fate::failed;
        }
    }

    // A record the store refuses outright (not a backend failure) would be
    // refused on every try: the task fails with the reason instead, without
    // retries, and that is written.
    fate write_refused(dist_op& op, const std::exception& e) {
        op.rec.status = task_status::failed;
        op.rec.result.clear();
        op.rec.finished_at = wall::now();
        op.rec.error = std::string("record refused by the store: ") + e.what();
        op.ev = event_kind::task_failed;
        op.detail = op.rec.error;
        op.reason = dist_op::why::finish;
        try {
            return owner_write(op.rec, op.expected) ? fate::written : fate::conflict;
        } catch (const std::exception&) {
            return fate::failed;
        }
    }

    // Writes what the batch left pending, one by one; then nacks
    // (non-terminal) and acks (terminal, or settled elsewhere). After its
    // record was written, a failed nack or ack leaves the outcome standing
    // (counted, with the backend error): the lease expires, and whoever
    // leases the task next sees the record (terminal: acked and dropped;
    // queued: run again).
    void settle_leases(std::vector<dist_op>& ops, std::vector<fate>& f, std::vector<bool>& io_error) {
        std::vector<lease_ref> acks;
        std::vector<std::size_t> ack_idx;
        for (std::size_t i = 0; i < ops.size(); ++i) {
            auto& op = ops[i];
            try {
                if (f[i] == fate::pending) {
                    try {
                        f[i] = owner_write(op.rec, op.expected) ? fate::written : fate::conflict;
                    } catch (const std::exception& e) {
                        if (backend_failure(e)) throw;
                        f[i] = write_refused(op, e);
                    }
                }
                if (f[i] == fate::written && !is_terminal(op.rec.status)) {
                    tp->nack(op.rec.id, op.token, op.delay, wall::now());
                } else if (f[i] == fate::written || f[i] == fate::conflict) {
                    acks.push_back({op.rec.id, op.token});
                    ack_idx.push_back(i);
                }
            } catch (const std::exception&) {
                if (f[i] == fate::written) io_error[i] = true;
                else f[i] = fate::failed;  // the lease expires and the task runs again: nothing is lost
            }
        }
        try {
            (void)tp->ack_many(acks);  // false: fenced meanwhile; the record already says how it ended
        } catch (const std::exception&) {
            for (std::size_t i : ack_idx) io_error[i] = true;
        }
    }

    // Counts and announces what run_ops did (under the lock). A change the
    // backend failed to carry out is tried again by the next ticks while
    // its lease may still be held (the extension before the write says
    // whether it is): a backend that is back in time records the outcome
    // instead of letting the lease lapse and the task run again.
    void record_outcomes(std::vector<dist_op>& ops, const std::vector<fate>& f, const std::vector<bool>& io_error) {
        effects fx;
        {
            std::lock_guard lk(mu);
            const auto now = wall::now();
            for (std::size_t i = 0; i < ops.size(); ++i) {
                auto& op = ops[i];
                if (io_error[i]) ++counters.backend_errors;
                if (f[i] == fate::failed) {
                    ++counters.backend_errors;
                    if (!stopping && op.held_until > now) retry_ops.push_back(std::move(op));
                } else if (f[i] == fate::not_held) {
                    refuse_stale(op.rec.id, op.rec.worker_id, op.rec.attempts,
                                 "lease lost before the outcome could be recorded");
                } else if (f[i] == fate::conflict) {
                    ++counters.store_conflicts;
                } else {
                    count_written(op);
                }
                if (io_inflight > 0) --io_inflight;
            }
            fx.wake_waiters = true;
        }
        apply(fx);
    }

    // Lock held. A record change that was written.
    void count_written(const dist_op& op) {
        switch (op.rec.status) {
            case task_status::completed: ++counters.completed; break;
            case task_status::failed: ++counters.failed; break;
            case task_status::cancelled: ++counters.cancelled; break;
            case task_status::timed_out: ++counters.timed_out; break;
            default: break;
        }
        switch (op.reason) {
            case dist_op::why::retry:
            case dist_op::why::turn: ++counters.retried; break;
            case dist_op::why::lost: ++counters.requeued_after_worker_death; break;
            case dist_op::why::stop: ++counters.released; break;
            default: break;
        }
        if (op.ev == event_kind::task_continued) ++counters.continued;
        emit(make_event_rec(op.ev, op.rec, op.detail));
    }

    // Queues a finished attempt's record change for the node's I/O threads:
    // one flush at a time carries out everything queued, in batches, until
    // none is left. A lone completion is carried out at once; under load,
    // completions that arrive during one flush share the next. The worker
    // thread that finished the task never waits for Redis (a worker whose
    // threads all wait for a reconnecting Redis could not heartbeat, and
    // its running tasks' leases would lapse).
    // True if it started a flush (false: the running one takes it).
    bool submit_op(dist_op op) {
        {
            std::lock_guard lk(mu);
            pending_ops.push_back(std::move(op));
            if (flushing_ops) return false;
            flushing_ops = true;
        }
        asio::post(*io, [this] { flush_ops(); });
        return true;
    }

    void flush_ops() {
        for (;;) {
            std::vector<dist_op> batch;
            {
                std::lock_guard lk(mu);
                if (pending_ops.empty()) {
                    flushing_ops = false;
                    return;
                }
                batch.swap(pending_ops);
            }
            if (nb) run_ops_fast(batch);
            else run_ops(batch);
        }
    }

    void finish_attempt_dist(const std::shared_ptr<attempt_state>& a, outcome o) {
        std::optional<dist_op> op;
        effects fx;
        {
            std::lock_guard lk(mu);
            // A coroutine on a user executor can end after stop() is
            // over: the task was settled then, and nobody is left to tell.
            if (torn_down) return;
            release_slot(*a, o.kind == outcome::success, fx);
            auto it = tasks.find(a->id);
            if (it == tasks.end() || it->second.attempt != a) {
                refuse_stale(a->id, a->worker_id, a->attempt, "late completion of a fenced attempt");
            } else {
                task_entry& t = it->second;
                if (t.cancel_requested) {
                    op = make_op(t, task_status::cancelled, "cancelled", {}, event_kind::task_cancelled, "cancelled",
                                 dist_op::why::finish);
                } else if (o.kind == outcome::success && a->continue_requested) {
                    ++t.rec.turns;
                    op = make_op(t, task_status::queued, {}, a->continue_delay, event_kind::task_continued, {},
                                 dist_op::why::finish);
                } else if (o.kind == outcome::success) {
                    t.rec.result = std::move(o.result);
                    t.rec.progress = 1.0;
                    op = make_op(t, task_status::completed, {}, {}, event_kind::task_completed, {},
                                 dist_op::why::finish);
                } else {
                    const bool past_deadline = t.deadline && steady::now() >= *t.deadline;
                    if (o.retryable && !past_deadline && t.rec.retries < t.rec.max_retries) {
                        ++t.rec.retries;
                        t.rec.error = o.error;
                        const auto delay = backoff_delay(t);
                        op = make_op(t, task_status::queued, {}, delay, event_kind::task_retried, o.error,
                                     dist_op::why::retry);
                    } else {
                        op = make_op(t, task_status::failed, o.error, {}, event_kind::task_failed, o.error,
                                     dist_op::why::finish);
                    }
                }
                tasks.erase(it);
            }
        }
        apply(fx);
        // A flush started for this outcome leases for the freed slot in the
        // same call; a flush under way does not, so a feed does meanwhile.
        const bool flush_fetches = op && submit_op(std::move(*op)) && nb;
        if (!flush_fetches) kick_feed();
    }

    // feed() on the node's I/O threads (from a worker thread or a submitter).
    void kick_feed() {
        {
            std::lock_guard lk(mu);
            if (stopping) return;
            if (feeding) {
                feed_again = true;
                return;
            }
            ++io_inflight;  // stop() waits for the posted feed
        }
        asio::post(*io, [this] {
            feed();
            effects fx;
            {
                std::lock_guard lk(mu);
                if (io_inflight > 0) --io_inflight;
                fx.wake_waiters = true;
            }
            apply(fx);
        });
    }

    // Leases up to the free local slots and starts what fits. Any thread;
    // one at a time: a thread that finds a feed under way asks it for
    // another round instead (so slots freed meanwhile are leased together,
    // in one round trip, and a lone task still starts at once).
    void feed() {
        {
            std::lock_guard lk(mu);
            if (feeding) {
                feed_again = true;
                return;
            }
            feeding = true;
            feed_again = false;
        }
        for (;;) {
            try {
                for (int round = 0; round < 8; ++round)
                    if (!feed_once()) break;
            } catch (...) {
                std::lock_guard lk(mu);
                feeding = false;
                throw;
            }
            std::lock_guard lk(mu);
            if (!feed_again) {
                feeding = false;
                return;
            }
            feed_again = false;
        }
    }

    // One lease round trip; true if it filled every slot it asked for (so
    // another round may find more).
    bool feed_once() {
        if (nb) return feed_once_fast();
        std::size_t n = 0;
        {
            std::lock_guard lk(mu);
            if (!dist() || stopping || workers.empty()) return false;
            n = std::min(free_slots(), opt.lease_batch);
            if (n == 0) return false;
            leasing += n;
            ++io_inflight;
        }
        std::vector<transport_lease> got;
        bool failed = false;
        try {
            got = tp->lease(node, n, opt.lease_duration, wall::now());
        } catch (const std::exception&) {
            failed = true;
        }
        {
            std::lock_guard lk(mu);
            leasing -= n - got.size();
            counters.leased += got.size();
            if (failed) ++counters.backend_errors;
            if (got.empty()) {
                poll_backoff = std::clamp(poll_backoff * 2, tick, std::chrono::milliseconds(50));
                next_poll = deadline_after(std::chrono::milliseconds(1'000));  // the waker leases at once
                if (!stopping) went_idle();
                if (io_inflight > 0) --io_inflight;
                done_cv.notify_all();
                return false;
            }
            poll_backoff = std::chrono::milliseconds(0);
            next_poll = steady::now();
        }
        return feed_leased(std::move(got), n);
    }

    // Starts leased tasks (whose `got.size()` slots are reserved in
    // `leasing`): reads their records, settles those that must not run,
    // writes the starts and launches them. True if it launched something
    // and `got` filled all `n` slots asked for.
    bool feed_leased(std::vector<transport_lease> got, std::size_t n) {
        // Read each record and settle the tasks that must not run.
        struct candidate {
            transport_lease l;
            task_record rec;
        };
        std::vector<candidate> cands;
        std::vector<dist_op> ops;
        std::size_t dropped = 0, errors = 0;
        // The records, in one round trip.
        std::vector<std::optional<task_record>> recs;
        try {
            std::vector<std::string> ids;
            ids.reserve(got.size());
            for (const auto& l : got) ids.push_back(l.task_id);
            recs = store->get_many(ids);
        } catch (const std::exception&) {
            recs.clear();  // the leases expire; the tasks run again
            errors += got.size();
            dropped += got.size();
        }
        std::vector<lease_ref> finished_already;
        for (std::size_t i = 0; i < recs.size(); ++i) {
            auto& l = got[i];
            auto& rec = recs[i];
            if (!rec || is_terminal(rec->status)) {
                finished_already.push_back({l.task_id, l.token});  // just leave the queue
                ++dropped;
                continue;
            }
            const bool cancel_marked = rec->metadata.count(cancel_key) > 0;
            const bool past_deadline = rec->timeout.count() > 0 && saturating_add(rec->created_at, rec->timeout) <= wall::now();
            if (cancel_marked || past_deadline) {
                dist_op op;
                op.rec = *rec;
                op.expected = rec->status;
                op.rec.status = cancel_marked ? task_status::cancelled : task_status::timed_out;
                op.rec.metadata.erase(cancel_key);
                op.rec.finished_at = wall::now();
                op.rec.error = cancel_marked ? "cancelled" : "task timeout while waiting";
                op.token = l.token;
                op.held_until = l.deadline;
                op.ev = cancel_marked ? event_kind::task_cancelled : event_kind::task_timed_out;
                op.detail = op.rec.error;
                ops.push_back(std::move(op));
                ++dropped;
                continue;
            }
            cands.push_back({l, std::move(*rec)});
        }
        if (!finished_already.empty()) {
            try {
                (void)tp->ack_many(finished_already);
            } catch (const std::exception&) {
                ++errors;  // the leases expire and are dropped next time
            }
        }

        // Phase 1 (locked): pick a worker for each, take the slot.
        struct started {
            transport_lease l;
            task_record rec;  // as written (running)
            task_status observed;
            std::shared_ptr<attempt_state> a;
            launch ln;
        };
        std::vector<started> starts;
        std::vector<transport_lease> handback;
        {
            std::lock_guard lk(mu);
            leasing -= got.size();
            counters.backend_errors += errors;
            io_inflight += ops.size();
            for (auto& c : cands) {
                const bool has_handler = handlers.count(c.rec.type) || async_handlers.count(c.rec.type);
                worker_entry* w = (stopping || !has_handler) ? nullptr : pick_worker(c.rec.tags);
                if (!w) {
                    handback.push_back(c.l);
                    continue;
                }
                started st;
                st.l = c.l;
                st.observed = c.rec.status;
                st.a = start_attempt_dist(std::move(c.rec), c.l, *w, st.ln);
                st.rec = tasks.at(st.l.task_id).rec;
                starts.push_back(std::move(st));
            }
            counters.released += handback.size();
        }
        run_ops(ops);

        // Phase 2 (unlocked): record the starts (one pipeline; a change the
        // store refuses is retried alone); hand back what cannot run here.
        std::vector<bool> ok(starts.size(), false);
        {
            std::vector<task_record> rs;
            std::vector<task_status> expected;
            rs.reserve(starts.size());
            expected.reserve(starts.size());
            for (const auto& st : starts) {
                rs.push_back(st.rec);
                expected.push_back(st.observed);
            }
            try {
                if (!rs.empty()) ok = store->update_many(rs, expected);
            } catch (const std::exception&) {
                ok.assign(starts.size(), false);
            }
        }
        std::vector<lease_ref> not_started;
        for (std::size_t i = 0; i < starts.size(); ++i) {
            if (ok[i]) continue;
            try {
                ok[i] = owner_write(starts[i].rec, starts[i].observed);
                if (!ok[i]) not_started.push_back({starts[i].l.task_id, starts[i].l.token});  // finished meanwhile
            } catch (const std::exception&) {
                ok[i] = false;
                std::lock_guard lk(mu);
                ++counters.backend_errors;
            }
        }
        if (!not_started.empty()) {
            try {
                (void)tp->ack_many(not_started);
            } catch (const std::exception&) {
                std::lock_guard lk(mu);
                ++counters.backend_errors;
            }
        }
        for (auto& l : handback) {
            try {
                // A short delay lets the head of the queue move on to nodes
                // that can run it.
                tp->nack(l.task_id, l.token, std::max(tick * 5, std::chrono::milliseconds(20)), wall::now());
            } catch (const std::exception&) {
                std::lock_guard lk(mu);
                ++counters.backend_errors;
            }
        }

        // Phase 3 (locked): launch what was recorded; undo the rest.
        effects fx;
        std::size_t launched = 0;
        {
            std::lock_guard lk(mu);
            for (std::size_t i = 0; i < starts.size(); ++i) {
                auto& st = starts[i];
                auto it = tasks.find(st.l.task_id);
                const bool current = it != tasks.end() && it->second.attempt == st.a;
                if (ok[i] && current) {
                    emit(make_event_rec(event_kind::task_started, st.rec));
                    fx.launches.push_back(std::move(st.ln));
                    ++launched;
                    continue;
                }
                // Not run: give the slot back.
                if (auto wit = workers.find(st.a->worker_id); wit != workers.end()) {
                    if (std::erase(wit->second.running, st.a) > 0) {
                        if (wit->second.busy > 0) --wit->second.busy;
                        if (running_count > 0) --running_count;
                    }
                }
                if (counters.started > 0) --counters.started;
                if (current) tasks.erase(it);
            }
            if (io_inflight > 0) --io_inflight;
            fx.wake_waiters = true;
        }
        apply(fx);
        return launched > 0 && got.size() == n;
    }

    // ------------------------------------------------ node fast path
    // With opt.node_backend, a feed is one lease_and_start call, and a
    // flush of finished attempts one finish_and_fetch call that also leases
    // for the slots they freed. What the backend leased but did not start
    // goes the plain way (feed_leased); outcomes it did not record (a
    // record changed by someone else, or one it refused) go through run_ops.

    // Lock held. The worker with the most free slots and how many to lease
    // for it, reserved in `leasing` (with one io_inflight that take_started
    // ends); {nullptr, 0} if nothing can be leased.
    std::pair<worker_entry*, std::size_t> reserve_fast() {
        if (!dist() || stopping || (handlers.empty() && async_handlers.empty())) return {nullptr, 0};
        worker_entry* best = nullptr;
        std::size_t room = 0;
        for (auto& [id, w] : workers) {
            const auto max = w.w->options().max_concurrent;
            if (w.draining || max - std::min(w.busy, max) <= room) continue;
            best = &w;
            room = max - std::min(w.busy, max);
        }
        const std::size_t n = std::min({room, free_slots(), opt.lease_batch});
        if (!best || n == 0) return {nullptr, 0};
        leasing += n;
        ++io_inflight;
        return {best, n};
    }

    // Lock held. What `w` can start.
    start_spec spec_for(const worker_entry& w) const {
        start_spec s;
        s.worker = w.w->id();
        for (const auto& kv : handlers) s.types.push_back(kv.first);
        for (const auto& kv : async_handlers) s.types.push_back(kv.first);
        s.tags = w.w->options().tags;
        s.hold_keys = {cancel_key};
        s.lease_duration = opt.lease_duration;
        return s;
    }

    bool feed_once_fast() {
        start_spec spec;
        std::size_t n = 0;
        {
            std::lock_guard lk(mu);
            const auto [w, k] = reserve_fast();
            if (!w) return false;
            spec = spec_for(*w);
            n = k;
        }
        std::vector<node_task> got;
        bool failed = false;
        try {
            got = nb->lease_and_start(spec, n, wall::now());
        } catch (const std::exception&) {
            failed = true;
        }
        {
            std::lock_guard lk(mu);
            if (failed) ++counters.backend_errors;
            if (got.empty()) {
                poll_backoff = std::clamp(poll_backoff * 2, tick, std::chrono::milliseconds(50));
                next_poll = deadline_after(std::chrono::milliseconds(1'000));  // the waker leases at once
                if (!stopping) went_idle();
            } else {
                poll_backoff = std::chrono::milliseconds(0);
                next_poll = steady::now();
            }
        }
        const std::size_t leased = got.size();
        return take_started(std::move(got), spec.worker, n) > 0 && leased == n;
    }

    // Lock held. A task the backend started for a worker that cannot run it
    // after all (stopping, or its slots taken meanwhile): back to the queue.
    dist_op hand_back_op(task_record rec, const transport_lease& l) {
        dist_op op;
        op.rec = std::move(rec);
        op.expected = task_status::running;
        op.rec.status = task_status::queued;
        if (op.rec.attempts > 0) --op.rec.attempts;  // it did not run
        op.token = l.token;
        op.held_until = l.deadline;
        op.delay = std::max(tick * 5, std::chrono::milliseconds(20));
        op.ev = event_kind::task_requeued;
        op.detail = "handed back";
        op.reason = dist_op::why::stop;
        ++io_inflight;
        return op;
    }

    // Launches on worker `wid` what the backend started; the rest goes the
    // plain way. Ends reserve_fast's reservation of `reserved` slots.
    std::size_t take_started(std::vector<node_task> got, const std::string& wid, std::size_t reserved) {
        std::vector<transport_lease> plain;
        std::vector<dist_op> back;
        effects fx;
        std::size_t launched = 0;
        {
            std::lock_guard lk(mu);
            counters.leased += got.size();
            const auto unstarted = static_cast<std::size_t>(
                std::count_if(got.begin(), got.end(), [](const node_task& t) { return !t.started; }));
            leasing -= std::min(leasing, reserved - unstarted);  // feed_leased ends the others'
            auto wit = workers.find(wid);
            for (auto& t : got) {
                if (!t.started) {
                    plain.push_back(std::move(t.lease));
                    continue;
                }
                worker_entry* w = wit == workers.end() ? nullptr : &wit->second;
                const bool runs = !stopping && w && !w->draining && w->busy < w->w->options().max_concurrent &&
                                  (handlers.count(t.record->type) || async_handlers.count(t.record->type));
                if (!runs) {
                    back.push_back(hand_back_op(std::move(*t.record), t.lease));
                    continue;
                }
                launch ln;
                start_attempt_dist(std::move(*t.record), t.lease, *w, ln, true);
                emit(make_event_rec(event_kind::task_started, tasks.at(t.lease.task_id).rec));
                fx.launches.push_back(std::move(ln));
                ++launched;
            }
            if (plain.empty() && io_inflight > 0) --io_inflight;  // else feed_leased ends it
            fx.wake_waiters = true;
        }
        apply(fx);
        run_ops(back);
        const std::size_t n = plain.size();
        if (n > 0) feed_leased(std::move(plain), n);
        return launched;
    }

    // run_ops through the node backend for finished attempts: one call
    // records them, settles their leases and leases for the freed slots.
    void run_ops_fast(std::vector<dist_op>& ops) {
        std::vector<fate> f(ops.size(), fate::pending);
        hold_leases(ops, f);
        std::vector<node_outcome> outs;
        std::vector<std::size_t> idx;
        for (std::size_t i = 0; i < ops.size(); ++i) {
            const auto& op = ops[i];
            if (f[i] != fate::pending) continue;
            if (op.expected != op.rec.status && !is_legal_transition(op.expected, op.rec.status)) continue;
            idx.push_back(i);
            outs.push_back({op.rec, op.expected, op.token, op.delay});
        }
        start_spec spec;
        std::size_t m = 0;
        {
            std::lock_guard lk(mu);
            const auto [w, k] = reserve_fast();
            spec = w ? spec_for(*w) : start_spec{node, {}, {}, {}, opt.lease_duration};
            m = k;
        }
        node_batch b;
        try {
            b = nb->finish_and_fetch(outs, spec, m, wall::now());
            for (std::size_t k = 0; k < idx.size(); ++k)
                f[idx[k]] = b.settled[k] == node_batch::fate::recorded ? fate::written
                            : b.settled[k] == node_batch::fate::stale  ? fate::not_held
                                                                       : fate::pending;
        } catch (const std::exception& e) {
            if (backend_failure(e))
                for (std::size_t i : idx) f[i] = fate::failed;  // else: each alone, in run_ops
        }
        std::vector<dist_op> settled, rest;
        std::vector<fate> fs;
        std::vector<std::string> ended;
        for (std::size_t i = 0; i < ops.size(); ++i) {
            if (f[i] == fate::pending) {
                rest.push_back(std::move(ops[i]));
                continue;
            }
            if (f[i] == fate::written && is_terminal(ops[i].rec.status)) ended.push_back(ops[i].rec.id);
            settled.push_back(std::move(ops[i]));
            fs.push_back(f[i]);
        }
        announce_finished(*tp, ended);
        record_outcomes(settled, fs, std::vector<bool>(settled.size(), false));
        run_ops(rest);
        if (m > 0) take_started(std::move(b.next), spec.worker, m);
    }

    // Lock held. Registers a local attempt of a leased task on `w`.
    // `recorded`: `rec` is the record as the node backend started it.
    std::shared_ptr<attempt_state> start_attempt_dist(task_record rec, const transport_lease& l, worker_entry& w,
                                                      launch& ln, bool recorded = false) {
        const auto now = steady::now();
        task_entry t;
        t.rec = std::move(rec);
        if (!recorded) {
            if (t.rec.status == task_status::running) ++t.rec.worker_losses;  // recovered, record not yet put back
            t.rec.status = task_status::running;
            t.rec.metadata.erase(cancel_key);
            ++t.rec.attempts;
            if (!t.rec.started_at) t.rec.started_at = wall::now();
            t.rec.worker_id = w.w->id();
        }
        t.where = location::running;
        ++counters.started;
        t.token = l.token;
        t.held_until = l.deadline;
        t.next_renew = saturating_add(now, renew_every);
        if (t.rec.timeout.count() > 0)
            t.deadline = saturating_add(now, saturating_add(t.rec.created_at, t.rec.timeout) - wall::now());
        auto a = std::make_shared<attempt_state>();
        a->c = this;
        a->id = t.rec.id;
        a->type = t.rec.type;
        a->payload = t.rec.payload;
        a->metadata = t.rec.metadata;
        a->worker_id = w.w->id();
        a->attempt = t.rec.attempts;
        a->turn = t.rec.turns;
        a->token = l.token;
        t.attempt = a;
        auto turn_timeout = t.rec.turn_timeout.count() > 0 ? t.rec.turn_timeout : w.w->options().task_timeout;
        if (turn_timeout.count() > 0) t.turn_deadline = saturating_add(now, turn_timeout);
        ++w.busy;
        w.running.push_back(a);
        ++running_count;
        ln = launch{w.w, a, nullptr, nullptr};
        if (auto it = async_handlers.find(t.rec.type); it != async_handlers.end()) {
            a->strand.emplace(asio::make_strand(w.w->executor()));
            if (w.w->on_user_executor()) a->keep_alive = shared_from_this();
            ln.async = it->second;
        } else {
            ln.sync = handlers.at(t.rec.type);
        }
        tasks.insert_or_assign(t.rec.id, std::move(t));
        return a;
    }

    // Extends one lease (outside the lock) and looks for a cancel marker.
    void renew(renewal& r) {
        bool extended = false, failed = false, cancel_marked = false;
        const auto now = wall::now();
        try {
            extended = tp->extend(r.id, r.token, opt.lease_duration, now);
            if (extended) {
                if (auto rec = store->get(r.id)) cancel_marked = rec->metadata.count(cancel_key) > 0;
                if (r.persist && !cancel_marked) owner_write(*r.persist, task_status::running);
            }
        } catch (const std::exception&) {
            failed = true;
        }
        effects fx;
        {
            std::lock_guard lk(mu);
            if (io_inflight > 0) --io_inflight;
            fx.wake_waiters = true;
            auto it = tasks.find(r.id);
            if (failed) ++counters.backend_errors;
            if (it != tasks.end() && it->second.attempt == r.a) {
                task_entry& t = it->second;
                t.renewing = false;
                if (failed) {
                    t.next_renew = deadline_after(tick);  // try again soon
                    if (r.persist) t.progress_dirty = true;
                } else if (extended) {
                    t.held_until = saturating_add(now, opt.lease_duration);
                    t.next_renew = deadline_after(renew_every);
                    if (cancel_marked && !t.cancel_requested) {
                        t.cancel_requested = true;
                        t.cancel_deadline = deadline_after(opt.cancel_grace);
                        signal_cancel(t.attempt);
                    }
                } else {
                    // Lost: expired and (maybe) taken over elsewhere. Fence it;
                    // its handler's return is refused and counted.
                    ++counters.lease_renewals_refused;
                    signal_cancel(t.attempt);
                    t.attempt.reset();
                    tasks.erase(it);
                }
            }
        }
        apply(fx);
    }

    // Lock held. The local attempts past their cancellation grace, task or
    // turn timeout: their record changes, to carry out after the lock.
    void settle_overdue(steady::time_point now, std::vector<dist_op>& ops) {
        for (auto it = tasks.begin(); it != tasks.end();) {
            task_entry& t = it->second;
            if (!t.attempt) {
                it = tasks.erase(it);
                continue;
            }
            std::optional<dist_op> op;
            if (t.cancel_requested && now >= t.cancel_deadline) {
                op = make_op(t, task_status::cancelled, "cancelled (handler did not stop within cancel_grace)", {},
                             event_kind::task_cancelled, "cancelled (handler did not stop within cancel_grace)",
                             dist_op::why::finish);
            } else if (t.deadline && now >= *t.deadline) {
                op = make_op(t, task_status::timed_out, "task timeout", {}, event_kind::task_timed_out,
                             "task timeout", dist_op::why::finish);
            } else if (t.turn_deadline && now >= *t.turn_deadline) {
                if (t.rec.retries < t.rec.max_retries) {
                    ++t.rec.retries;
                    t.rec.error = "turn timeout";
                    const auto delay = backoff_delay(t);
                    op = make_op(t, task_status::queued, {}, delay, event_kind::task_retried, "turn timeout",
                                 dist_op::why::turn);
                } else {
                    op = make_op(t, task_status::timed_out, "turn timeout", {}, event_kind::task_timed_out,
                                 "turn timeout", dist_op::why::finish);
                }
            }
            if (op) {
                ops.push_back(std::move(*op));
                it = tasks.erase(it);
                continue;
            }
            ++it;
        }
    }

    // Lock held. This node's workers silent for worker_timeout, judged on
    // their own clocks' beats (never on the backend): each is declared
    // dead, its attempts fenced and handed back (record changes into `ops`).
    // Returns their ids, to mark in the shared registry after the lock.
    std::vector<std::string> reap_local_workers(steady::time_point now, std::vector<dist_op>& ops) {
        std::vector<std::string> dead;
        for (auto it = workers.begin(); it != workers.end();) {
            auto next = std::next(it);
            if (now - it->second.last_heartbeat > saturating_ceil<steady::duration>(opt.worker_timeout)) {
                ++counters.workers_died;
                for (const auto& a : it->second.running) {
                    if (running_count > 0) --running_count;
                    auto tit = tasks.find(a->id);
                    if (tit == tasks.end() || tit->second.attempt != a) continue;
                    task_entry& t = tit->second;
                    if (t.cancel_requested) {
                        ops.push_back(make_op(t, task_status::cancelled, "cancelled", {}, event_kind::task_cancelled,
                                              "cancelled", dist_op::why::finish));
                    } else {
                        ++t.rec.worker_losses;
                        ops.push_back(make_op(t, task_status::queued, {}, {}, event_kind::task_requeued,
                                              "worker declared dead", dist_op::why::lost));
                    }
                    tasks.erase(tit);
                }
                it->second.running.clear();
                dead_workers.push_back(it->second.w);
                event ev;
                ev.kind = event_kind::worker_dead;
                ev.worker_id = it->first;
                ev.detail = "no heartbeat for " + std::to_string(opt.worker_timeout.count()) + "ms";
                emit(std::move(ev));
                dead.push_back(it->first);
                workers.erase(it);
            }
            it = next;
        }
        return dead;
    }

    // Lock held. The leases of running attempts that are due for extension
    // (by schedule, or with less than half of the lease left), while their
    // worker is alive: a hung or partitioned worker lets its leases lapse.
    std::vector<renewal> due_renewals() {
        std::vector<renewal> out;
        const auto now = steady::now();
        const auto wall_now = wall::now();
        for (auto& [id, t] : tasks) {
            if (!t.attempt || t.renewing) continue;
            if (now < t.next_renew && t.held_until - wall_now >= opt.lease_duration / 2) continue;
            auto wit = workers.find(t.attempt->worker_id);
            if (wit == workers.end()) continue;
            const auto silent_limit =
                saturating_add(saturating_mul(wit->second.w->options().heartbeat_interval, 2), tick);
            if (now - wit->second.last_heartbeat > saturating_ceil<steady::duration>(silent_limit)) continue;
            t.renewing = true;
            renewal r{t.rec.id, t.token, t.attempt, std::nullopt};
            if (t.progress_dirty) {
                r.persist = t.rec;
                t.progress_dirty = false;
            }
            ++io_inflight;
            out.push_back(std::move(r));
        }
        return out;
    }

    // Outside the lock: the shared registry's view of this node's workers.
    // A worker the registry no longer knows alive (reaped by a node that
    // did not hear from it during a backend pause, or removed) is
    // registered again: locally it is alive, and local liveness decides.
    void write_registry(const std::vector<std::pair<std::string, wall::time_point>>& beats_due,
                        const std::vector<std::string>& dead, const std::vector<std::string>& removed) {
        std::size_t errors = 0;
        for (const auto& id : removed) {
            try {
                registry->remove(id);
            } catch (const std::exception&) {
                ++errors;
            }
        }
        for (const auto& id : dead) {
            try {
                registry->set_status(id, worker_status::error);
            } catch (const std::exception&) {
                ++errors;
            }
        }
        for (const auto& [id, at] : beats_due) {
            try {
                if (registry->heartbeat(id, at)) continue;
                std::optional<worker_record> rec;
                {
                    std::lock_guard lk(mu);
                    if (auto it = workers.find(id); it != workers.end()) rec = registry_record(*it->second.w, at);
                }
                if (rec) registry->upsert(*rec);
            } catch (const std::exception&) {
                ++errors;
            }
        }
        if (errors == 0) return;
        std::lock_guard lk(mu);
        counters.backend_errors += errors;
    }

    // Lock held. At stop: the registry entries of every worker this
    // coordinator had, live, dead, or retired and not yet removed.
    std::vector<std::string> registry_entries() {
        std::vector<std::string> ids;
        ids.swap(registry_removals);
        for (const auto& [id, w] : workers) ids.push_back(id);
        for (const auto& w : dead_workers) ids.push_back(w->id());
        return ids;
    }

    // Outside the lock, at stop: a clean stop leaves nothing behind in the
    // (possibly shared) registry. A registry that cannot be reached keeps
    // the entries; other nodes' maintenance removes them after
    // worker_timeout + worker_entry_grace.
    void forget(const std::vector<std::string>& ids) {
        for (const auto& id : ids) {
            try {
                registry->remove(id);
            } catch (const std::exception&) {
                std::lock_guard lk(mu);
                ++counters.backend_errors;
            }
        }
    }

    worker_record registry_record(const worker& w, wall::time_point heartbeat) const {
        const auto& o = w.options();
        return worker_record{o.id, worker_status::idle, o.tags, o.max_concurrent,
                             dist() ? node : std::string("in-process"), heartbeat, heartbeat};
    }

    void dist_tick() {
        effects fx;
        std::vector<std::pair<std::string, wall::time_point>> registry_writes;
        std::vector<std::string> dead, removed;
        std::vector<dist_op> ops;
        std::vector<std::shared_ptr<worker>> join_now;
        bool do_recover = false, do_maintenance = false, do_feed = false, autoscale_due = false;
        {
            std::lock_guard lk(mu);
            autoscale_due = opt.autoscale && !stopping && steady::now() >= next_autoscale;
        }
        std::optional<std::size_t> depth;
        if (autoscale_due) {
            try {
                depth = tp->size_approx();
            } catch (const std::exception&) {
            }
        }
        {
            std::lock_guard lk(mu);
            const auto now = steady::now();
            settle_overdue(now, ops);
            dead = reap_local_workers(now, ops);
            if (!stopping) {
                io_inflight += retry_ops.size();  // outcomes the backend failed to record: again
                std::move(retry_ops.begin(), retry_ops.end(), std::back_inserter(ops));
                retry_ops.clear();
                if (live_workers() < opt.scaling.min_workers) {
                    scale_to(opt.scaling.min_workers, "replacing lost workers (below min_workers)", fx);
                } else if (autoscale_due) {
                    next_autoscale = saturating_add(now, opt.autoscale_interval);
                    if (depth) {
                        if (auto d = scaler.evaluate(*depth, live_workers(), now))
                            scale_to(d->to, std::string(d->reason), fx);
                    }
                }
            }
            // (Not while stopping: stop() waits for io_inflight to drain.)
            if (!stopping && now >= next_recover) {
                next_recover = now + recover_every;
                do_recover = true;
                ++io_inflight;
            }
            if (!stopping && now >= next_maintenance) {
                next_maintenance = saturating_add(now, opt.maintenance_interval);
                do_maintenance = true;
                ++io_inflight;
            }
            do_feed = now >= next_poll;
            join_now.swap(retired);
            removed.swap(registry_removals);
            for (auto& [id, w] : workers) {
                if (!w.registry_due) continue;
                registry_writes.emplace_back(id, *w.registry_due);
                w.registry_due.reset();
            }
        }
        apply(fx);
        run_ops(ops);
        write_registry(registry_writes, dead, removed);
        // The leases are renewed after whatever waited for the backend
        // above, and before recovery looks for expired ones: a backend that
        // answers again after a pause extends this node's leases first.
        std::vector<renewal> renewals;
        {
            std::lock_guard lk(mu);
            renewals = due_renewals();
        }
        for (auto& r : renewals) renew(r);
        if (do_recover) recover();
        if (do_maintenance) maintain();
        if (do_feed) feed();
        for (auto& w : join_now) end_worker(*w);
    }

    // Puts expired leases (of any node) back in the queue; their records
    // go running -> queued with worker_losses + 1. A lease the transport
    // dead-lettered instead (max_lease_expiries reached: a poison task) is
    // no longer in the queue, so its record must end here: failed.
    void recover() {
        std::vector<transport_lease> orphans;
        std::vector<task_record> requeued, buried;
        std::size_t dead = 0;
        bool failed = false;
        try {
            orphans = tp->recover_expired(wall::now(), 256);
            for (const auto& l : orphans) {
                if (l.dead_lettered) ++dead;
                auto rec = store->get(l.task_id);
                if (l.dead_lettered) {
                    if (!rec || is_terminal(rec->status)) continue;
                    task_record r = *rec;
                    r.status = task_status::failed;
                    r.finished_at = wall::now();
                    r.error = "dead-lettered: " + detail::lease_expired_reason(l.expiries);
                    if (rec->status == task_status::running) ++r.worker_losses;
                    r.metadata.erase(cancel_key);
                    if (owner_write(r, rec->status)) buried.push_back(std::move(r));
                    continue;
                }
                if (!rec || rec->status != task_status::running) continue;
                task_record r = *rec;
                r.status = task_status::queued;
                ++r.worker_losses;
                if (store->update(r, task_status::running)) requeued.push_back(std::move(r));
            }
        } catch (const std::exception&) {
            failed = true;
        }
        std::vector<std::string> ended;
        for (const auto& r : buried) ended.push_back(r.id);
        announce_finished(*tp, ended);
        effects fx;
        {
            std::lock_guard lk(mu);
            if (failed) ++counters.backend_errors;
            counters.recovered += orphans.size() - dead;
            counters.dead_lettered += dead;
            counters.requeued_after_worker_death += requeued.size();
            for (const auto& r : requeued)
                emit(make_event_rec(event_kind::task_requeued, r, "lease expired (holder lost)"));
            for (const auto& r : buried) emit(make_event_rec(event_kind::task_failed, r, r.error));
            if (io_inflight > 0) --io_inflight;
            fx.wake_waiters = true;
        }
        apply(fx);
    }

    // How long past its last heartbeat a dead worker's registry entry is
    // kept (worker_timeout + worker_entry_grace, saturated).
    std::chrono::milliseconds entry_lifetime() const {
        const auto room = std::chrono::milliseconds::max() - opt.worker_timeout;
        return opt.worker_entry_grace >= room ? std::chrono::milliseconds::max()
                                              : opt.worker_timeout + opt.worker_entry_grace;
    }

    // TTL of finished records (shared store), the shared registry's stale
    // workers, and the entries dead workers left behind.
    void maintain() {
        std::vector<std::string> expired;
        bool failed = false;
        try {
            expired = store->expire(wall::now(), opt.completed_ttl, opt.failed_ttl, opt.cancelled_ttl);
            (void)registry->reap_stale(wall::now(), opt.worker_timeout);
            (void)registry->purge_silent(wall::now(), entry_lifetime());
        } catch (const std::exception&) {
            failed = true;
        }
        effects fx;
        {
            std::lock_guard lk(mu);
            if (failed) ++counters.backend_errors;
            counters.expired += expired.size();
            for (const auto& id : expired) {
                event e;
                e.kind = event_kind::task_expired;
                e.task_id = id;
                emit(std::move(e));
            }
            if (io_inflight > 0) --io_inflight;
            fx.wake_waiters = true;
        }
        apply(fx);
    }

    std::vector<std::shared_ptr<worker>> dead_workers;
};

}  // namespace detail

// ------------------------------------------------------------------ context

const std::string& task_context::id() const noexcept { return s_->id; }
const std::string& task_context::type() const noexcept { return s_->type; }
const std::string& task_context::payload() const noexcept { return s_->payload; }
const std::map<std::string, std::string>& task_context::metadata() const noexcept { return s_->metadata; }
std::uint32_t task_context::attempt() const noexcept { return s_->attempt; }
std::uint32_t task_context::turn() const noexcept { return s_->turn; }
const std::string& task_context::worker_id() const noexcept { return s_->worker_id; }
std::uint64_t task_context::fencing_token() const noexcept { return s_->token; }
bool task_context::cancellation_requested() const noexcept { return s_->cancel.load(); }

void task_context::throw_if_cancelled() const {
    if (cancellation_requested()) throw cancelled_error("orchcore: task " + s_->id + " was cancelled");
}

namespace {
// Lock held. Takes the mailbox if this attempt still holds the task.
// Lock held. Counts a steering read by an attempt that no longer holds its
// task and returns the error to throw.
error stale_read(detail::coordinator_impl& c, const detail::attempt_state& a) {
    c.refuse_stale(a.id, a.worker_id, a.attempt, "steering read of a fenced attempt");
    return error(errc::stale_token, "orchcore: attempt " + std::to_string(a.attempt) + " of task " + a.id +
                                        " no longer holds it (stale fencing token)");
}

std::vector<std::string> drain_mailbox(detail::coordinator_impl& c, detail::attempt_state& a) {
    auto it = c.tasks.find(a.id);
    if (it == c.tasks.end() || it->second.attempt.get() != &a) throw stale_read(c, a);
    std::vector<std::string> out;
    out.swap(it->second.mailbox);
    return out;
}

// Distributed mode: the mailbox is the transport's, shared by every node;
// the take is fenced by the attempt's lease token in the transport.
std::vector<std::string> take_remote(detail::coordinator_impl& c, detail::attempt_state& a) {
    {
        std::lock_guard lk(c.mu);
        auto it = c.tasks.find(a.id);
        if (it == c.tasks.end() || it->second.attempt.get() != &a) throw stale_read(c, a);
    }
    auto msgs = c.tp->take_messages(a.id, a.token);
    if (!msgs) {
        std::lock_guard lk(c.mu);
        throw stale_read(c, a);
    }
    return std::move(*msgs);
}

// How long a distributed receive_for sleeps between looks at the shared
// mailbox (a steer() on this node wakes it at once).
std::chrono::milliseconds next_poll(std::chrono::milliseconds& backoff) {
    const auto b = backoff;
    backoff = std::min(backoff * 2, std::chrono::milliseconds(50));
    return b;
}
}  // namespace

std::vector<std::string> task_context::receive() {
    if (s_->c->dist()) return take_remote(*s_->c, *s_);
    std::lock_guard lk(s_->c->mu);
    return drain_mailbox(*s_->c, *s_);
}

std::vector<std::string> task_context::receive_for(std::chrono::milliseconds timeout) {
    auto& c = *s_->c;
    const auto deadline = detail::deadline_after(timeout);
    if (c.dist()) {
        auto backoff = std::chrono::milliseconds(1);
        for (;;) {
            auto msgs = take_remote(c, *s_);
            const auto now = detail::steady::now();
            if (!msgs.empty() || s_->cancel.load() || now >= deadline) return msgs;
            std::unique_lock lk(c.mu);
            s_->mailbox_cv.wait_until(lk, std::min(deadline, now + next_poll(backoff)));
        }
    }
    std::unique_lock lk(c.mu);
    for (;;) {
        auto msgs = drain_mailbox(c, *s_);
        if (!msgs.empty() || s_->cancel.load()) return msgs;
        if (s_->mailbox_cv.wait_until(lk, deadline) == std::cv_status::timeout) return drain_mailbox(c, *s_);
    }
}

asio::awaitable<std::vector<std::string>> task_context::async_receive_for(std::chrono::milliseconds timeout) {
    auto s = s_;
    auto& c = *s->c;
    const auto deadline = detail::deadline_after(timeout);
    asio::steady_timer timer(co_await asio::this_coro::executor);
    auto backoff = std::chrono::milliseconds(1);
    for (;;) {
        auto wake_at = deadline;
        if (c.dist()) {
            auto msgs = take_remote(c, *s);
            const auto now = detail::steady::now();
            if (!msgs.empty() || s->cancel.load() || now >= deadline) co_return msgs;
            wake_at = std::min(deadline, now + next_poll(backoff));
            std::lock_guard lk(c.mu);
            s->waiting_timer = &timer;
        } else {
            std::lock_guard lk(c.mu);
            auto msgs = drain_mailbox(c, *s);
            if (!msgs.empty() || s->cancel.load() || detail::steady::now() >= deadline) co_return msgs;
            s->waiting_timer = &timer;
        }
        timer.expires_at(wake_at);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        std::lock_guard lk(c.mu);
        s->waiting_timer = nullptr;
    }
}

void task_context::report_progress(double fraction, std::string message) {
    if (std::isnan(fraction)) throw invalid_argument("progress fraction", "nan", "must be a number within [0, 1]");
    auto& c = *s_->c;
    detail::effects fx;
    {
        std::lock_guard lk(c.mu);
        auto it = c.tasks.find(s_->id);
        if (it == c.tasks.end() || it->second.attempt != s_) {
            // A fenced attempt's progress is ignored (counted and announced).
            c.refuse_stale(s_->id, s_->worker_id, s_->attempt, "progress of a fenced attempt");
        } else {
            it->second.rec.progress = std::clamp(fraction, 0.0, 1.0);
            it->second.rec.progress_message = message;
            // Distributed mode: written with the next lease renewal.
            if (c.dist()) it->second.progress_dirty = true;
            else c.persist(it->second, task_status::running);
            c.emit_task(event_kind::task_progress, it->second, message);
        }
    }
    c.apply(fx);
}

void task_context::continue_later(std::chrono::milliseconds delay) {
    s_->continue_requested = true;
    s_->continue_delay = delay;
}

// ------------------------------------------------------------------ handle

namespace detail {
// A finished task's result, or the exception get() throws for it.
std::string result_or_throw(task_record r);
}  // namespace detail

std::optional<task_record> task_handle::wait_for(std::chrono::milliseconds timeout) const {
    if (!owner_) throw error(errc::not_found, "orchcore: empty task_handle");
    return owner_->wait_for(id_, timeout);
}

std::optional<task_record> task_handle::wait_until(std::chrono::steady_clock::time_point deadline) const {
    if (!owner_) throw error(errc::not_found, "orchcore: empty task_handle");
    return owner_->wait_until(id_, deadline);
}

asio::awaitable<std::optional<task_record>> task_handle::async_wait_for(std::chrono::milliseconds timeout) const {
    if (!owner_) throw error(errc::not_found, "orchcore: empty task_handle");
    co_return co_await owner_->async_wait_for(id_, timeout);
}

asio::awaitable<std::optional<task_record>> task_handle::async_wait_until(
    std::chrono::steady_clock::time_point deadline) const {
    if (!owner_) throw error(errc::not_found, "orchcore: empty task_handle");
    co_return co_await owner_->async_wait_until(id_, deadline);
}

asio::awaitable<std::string> task_handle::async_get() const {
    std::optional<task_record> r;
    while (!r) r = co_await async_wait_for(std::chrono::hours(1));
    co_return detail::result_or_throw(std::move(*r));
}

task_record task_handle::wait() const {
    for (;;) {
        if (auto r = wait_for(std::chrono::hours(1))) return std::move(*r);
    }
}

std::string task_handle::get() const { return detail::result_or_throw(wait()); }

namespace detail {
std::string result_or_throw(task_record r) {
    switch (r.status) {
        case task_status::completed: return r.result;
        case task_status::cancelled: throw cancelled_error("orchcore: task " + r.id + " was cancelled: " + r.error);
        default: {
            std::string what = "orchcore: task " + r.id + " " + std::string(to_string(r.status)) + ": " + r.error;
            throw task_failed_error(std::move(r), what);
        }
    }
}
}  // namespace detail

// ------------------------------------------------------------- coordinator

coordinator::coordinator(coordinator_options options) {
    options.validate();
    impl_ = std::make_shared<detail::coordinator_impl>(std::move(options));
    detail::effects fx;
    {
        std::lock_guard lk(impl_->mu);
        for (std::size_t i = 0; i < impl_->opt.scaling.min_workers; ++i)
            impl_->create_worker(impl_->opt.worker_template, fx);
    }
    impl_->apply(fx);
    impl_->start_control();
}

coordinator::~coordinator() {
    if (impl_) stop(stop_mode::abort, impl_->opt.cancel_grace);
}

void coordinator::register_handler(std::string type, task_handler h) {
    if (type.empty()) throw invalid_argument("type", "\"\"", "a task type must not be empty");
    if (!h) throw invalid_argument("handler", type, "must not be empty");
    std::lock_guard lk(impl_->mu);
    impl_->async_handlers.erase(type);
    impl_->handlers[std::move(type)] = std::make_shared<const task_handler>(std::move(h));
}

void coordinator::register_async_handler(std::string type, async_task_handler h) {
    if (type.empty()) throw invalid_argument("type", "\"\"", "a task type must not be empty");
    if (!h) throw invalid_argument("handler", type, "must not be empty");
    std::lock_guard lk(impl_->mu);
    impl_->handlers.erase(type);
    impl_->async_handlers[std::move(type)] = std::make_shared<const async_task_handler>(std::move(h));
}

namespace {
void validate_task_options(const task_options& o) {
    auto non_negative = [](const char* field, std::chrono::milliseconds v) {
        if (v.count() < 0) throw invalid_argument(field, std::to_string(v.count()) + "ms", "must be >= 0");
    };
    non_negative("timeout", o.timeout);
    non_negative("turn_timeout", o.turn_timeout);
    if (o.max_retries && *o.max_retries > 1000)
        throw invalid_argument("max_retries", std::to_string(*o.max_retries), "must be at most 1000");
    if (o.backoff) o.backoff->validate();
    if (o.id && o.id->empty()) throw invalid_argument("id", "\"\"", "a task id must not be empty");
}

// An event of a bulk submission, emitted once the outcome of all is known.
struct task_event_note {
    event_kind kind;
    std::string task_id;
    std::string detail;
    std::size_t index;  // task_queued: which task
};
}  // namespace

// Distributed mode: records into the shared store (one pipeline), then ids
// into the shared queue (one admission script per chunk). Each task is
// decided as if submitted alone.
std::vector<submit_result> coordinator::submit_many_dist(std::vector<task_request>& tasks) {
    auto& c = *impl_;
    detail::effects fx;
    const std::size_t n = tasks.size();
    std::vector<submit_result> out(n);
    std::vector<task_event_note> notes;  // events to emit under one lock at the end
    auto reject = [&](std::size_t i, rejection_reason r, std::string_view detail, std::chrono::milliseconds ra,
                      const std::string& id) {
        auto& a = out[i].admission;
        a.is_accepted = false;
        a.id = id.empty() ? tasks[i].options.id : std::optional<std::string>(id);
        a.reason = r;
        a.detail = detail;
        a.retry_after = ra;
        notes.push_back({event_kind::task_rejected, id, std::string(detail), {}});
    };
    // 1. Gate and ids, under one lock.
    std::vector<std::size_t> live;  // indexes still in the running
    live.reserve(n);
    std::vector<task_record> recs(n);
    {
        std::lock_guard lk(c.mu);
        for (std::size_t i = 0; i < n; ++i) {
            auto& t = tasks[i];
            if (!priority::is_valid(t.options.priority)) {
                reject(i, rejection_reason::invalid_request, "priority out of range [0, 20]",
                       std::chrono::milliseconds{0}, t.options.id.value_or(""));
            } else if (c.stopping) {
                reject(i, rejection_reason::closed, "coordinator is stopping", std::chrono::milliseconds{0},
                       t.options.id.value_or(""));
            } else if (c.opt.policy == queue_policy::fail_fast &&
                       (c.pick_worker(t.options.tags) == nullptr ||
                        (!c.handlers.count(t.type) && !c.async_handlers.count(t.type)))) {
                reject(i, rejection_reason::policy_violation, "fail-fast: no free worker can take it now",
                       c.opt.queue.default_retry_after, t.options.id.value_or(""));
            } else {
                recs[i].id = t.options.id ? *t.options.id : c.node + "-" + std::to_string(++c.task_seq);
                live.push_back(i);
            }
        }
    }
    // 2. Records.
    const auto now = detail::wall::now();
    for (std::size_t i : live) {
        auto& t = tasks[i];
        auto& rec = recs[i];
        rec.type = std::move(t.type);
        rec.payload = std::move(t.payload);
        rec.priority = t.options.priority;
        rec.owner = std::move(t.options.owner);
        rec.metadata = std::move(t.options.metadata);
        rec.metadata.erase(detail::coordinator_impl::cancel_key);
        rec.tags = std::move(t.options.tags);
        rec.timeout = t.options.timeout;
        rec.turn_timeout = t.options.turn_timeout;
        rec.max_retries = t.options.max_retries.value_or(c.opt.default_max_retries);
        rec.backoff = t.options.backoff.value_or(c.opt.default_backoff);
        rec.created_at = now;
        rec.status = task_status::queued;
    }
    // The store and the transport may fail with backend_unavailable (Redis
    // restarting), after a call was applied or before. Each call is tried up
    // to three times (the Redis client reconnects with backoff within each);
    // a retry that finds what an earlier try wrote (this very record in the
    // store, this id in the transport) takes that try as done. Otherwise a
    // record could be created and never admitted: a task nobody would run.
    constexpr int backend_tries = 3;
    auto with_retries = [](auto&& call, auto&& on_retry) {
        for (int failures = 0;;) {
            try {
                return call();
            } catch (const error& e) {
                if (e.code() != errc::backend_unavailable || ++failures >= backend_tries) throw;
                std::this_thread::sleep_for(std::chrono::milliseconds(25 * failures));  // e.g. Redis still loading
                on_retry();
            }
        }
    };
    // Whether a stored record is this call's own (written by an earlier try).
    auto ours = [&](const task_record& cur, const task_record& rec) {
        using ms = std::chrono::milliseconds;
        return cur.status == task_status::queued && cur.attempts == 0 && cur.type == rec.type &&
               cur.payload == rec.payload && cur.owner == rec.owner &&
               std::chrono::duration_cast<ms>(cur.created_at.time_since_epoch()) ==
                   std::chrono::duration_cast<ms>(rec.created_at.time_since_epoch());
    };
    // Removes records this call created (after a failure), never someone
    // else's record that merely has the same id.
    auto discard = [&](std::span<const std::size_t> which) {
        for (std::size_t i : which) {
            try {
                if (auto cur = c.store->get(recs[i].id); cur && ours(*cur, recs[i])) c.store->erase(recs[i].id);
            } catch (...) {
            }
        }
    };
    {
        std::vector<task_record> batch;
        batch.reserve(live.size());
        for (std::size_t i : live) batch.push_back(recs[i]);
        std::vector<bool> created;
        bool unsure = false;
        try {
            created = with_retries([&] { return c.store->create_many(batch); }, [&] { unsure = true; });
        } catch (...) {
            discard(live);
            throw;
        }
        std::vector<std::size_t> kept;
        kept.reserve(live.size());
        for (std::size_t k = 0; k < live.size(); ++k) {
            const std::size_t i = live[k];
            bool ok = created[k];
            if (!ok && unsure) {
                // Refused as a duplicate after a retry: perhaps of itself.
                auto cur = with_retries([&] { return c.store->get(recs[i].id); }, [] {});
                ok = cur && ours(*cur, recs[i]);
            }
            // A generated id may collide with one of an earlier process
            // that used the same node_id: take the next.
            for (int tries = 0; !ok && !tasks[i].options.id && tries < 100; ++tries) {
                {
                    std::lock_guard lk(c.mu);
                    recs[i].id = c.node + "-" + std::to_string(++c.task_seq);
                }
                ok = with_retries([&] { return c.store->create(recs[i]); }, [] {});
            }
            if (ok) kept.push_back(i);
            else reject(i, rejection_reason::invalid_request, "duplicate id: a task with this id exists",
                        std::chrono::milliseconds{0}, recs[i].id);
        }
        live.swap(kept);
    }
    // 3. The shared queue.
    std::vector<transport_request> reqs;
    reqs.reserve(live.size());
    for (std::size_t i : live) reqs.push_back({recs[i].id, recs[i].priority});
    std::vector<transport_admission> adms;
    bool admit_unsure = false;
    try {
        adms = with_retries([&] { return c.tp->admit_many(reqs); }, [&] { admit_unsure = true; });
    } catch (...) {
        discard(live);
        throw;
    }
    if (admit_unsure) {
        for (std::size_t k = 0; k < live.size(); ++k) {
            auto& adm = adms[k];
            if (!adm && adm.reason == rejection_reason::invalid_request &&
                adm.detail == detail::transport_text_duplicate) {
                // An earlier try got in (the record is new, so the id in
                // the transport is this task).
                adm = transport_admission{};
                adm.is_accepted = true;
                adm.id = recs[live[k]].id;
            }
        }
    }
    std::vector<task_record> evicted;
    std::size_t accepted = 0;
    for (std::size_t k = 0; k < live.size(); ++k) {
        const std::size_t i = live[k];
        auto& adm = adms[k];
        if (!adm) {
            try {
                c.store->erase(recs[i].id);
            } catch (const std::exception&) {
            }
            reject(i, adm.reason, adm.detail, adm.retry_after, recs[i].id);
            continue;
        }
        ++accepted;
        notes.push_back({event_kind::task_queued, recs[i].id, {}, i});
        if (adm.evicted) {
            // Out of the queue already: this node settles its record.
            try {
                if (auto ev = c.store->get(adm.evicted->id); ev && !is_terminal(ev->status)) {
                    task_record r = *ev;
                    r.status = task_status::cancelled;
                    r.finished_at = detail::wall::now();
                    r.error =
                        "evicted by the " + std::string(to_string(c.tp->options().policy)) + " admission policy";
                    if (c.owner_write(r, ev->status)) evicted.push_back(std::move(r));
                }
            } catch (const std::exception&) {
                std::lock_guard lk(c.mu);
                ++c.counters.backend_errors;
            }
        }
        auto& a = out[i].admission;
        a.is_accepted = true;
        a.id = recs[i].id;
        a.position = adm.position;
        if (adm.evicted) a.evicted = adm.evicted;
        out[i].handle = task_handle(this, recs[i].id);
    }
    // 4. Counters and events, in submission order, under one lock.
    {
        std::lock_guard lk(c.mu);
        c.counters.submitted += accepted;
        for (auto& note : notes) {
            if (note.kind == event_kind::task_queued) {
                c.emit(detail::coordinator_impl::make_event_rec(event_kind::task_queued, recs[note.index]));
            } else {
                ++c.counters.rejected;
                event ev;
                ev.kind = note.kind;
                ev.task_id = std::move(note.task_id);
                ev.detail = std::move(note.detail);
                c.emit(std::move(ev));
            }
        }
        for (auto& r : evicted) {
            ++c.counters.cancelled;
            c.emit(detail::coordinator_impl::make_event_rec(event_kind::task_cancelled, r, r.error));
        }
        fx.wake_waiters = !evicted.empty();
    }
    c.apply(fx);
    if (accepted > 0) c.kick_feed();  // start at once what this node can run
    return out;
}

std::vector<submit_result> coordinator::submit_many(std::vector<task_request> tasks) {
    for (const auto& t : tasks) {
        if (t.type.empty()) throw invalid_argument("type", "\"\"", "a task type must not be empty");
        validate_task_options(t.options);
    }
    auto& c = *impl_;
    if (c.dist()) return submit_many_dist(tasks);
    {
        // Every type first: a missing handler rejects the whole call.
        std::lock_guard lk(c.mu);
        for (const auto& t : tasks) c.require_handler(t.type);
    }
    std::vector<submit_result> out(tasks.size());
    // One lock round trip per chunk, not per task; chunks keep each hold
    // short, so workers finishing tasks are not held up for long.
    constexpr std::size_t chunk = 64;
    for (std::size_t first = 0; first < tasks.size(); first += chunk) {
        const std::size_t last = std::min(tasks.size(), first + chunk);
        detail::effects fx;
        {
            std::lock_guard lk(c.mu);
            for (std::size_t i = first; i < last; ++i)
                c.admit_local(tasks[i].type, tasks[i].payload, tasks[i].options, out[i], this, fx);
            c.dispatch(fx);
        }
        c.apply(fx);
    }
    return out;
}

submit_result coordinator::submit_async(std::string type, std::string payload, task_options o) {
    auto& c = *impl_;
    validate_task_options(o);

    submit_result out;
    detail::effects fx;
    if (c.dist()) {
        if (type.empty()) throw invalid_argument("type", "\"\"", "a task type must not be empty");
        std::vector<task_request> one;
        one.push_back({std::move(type), std::move(payload), std::move(o)});
        return std::move(submit_many_dist(one).front());
    }

    {
        std::lock_guard lk(c.mu);
        c.require_handler(type);
        c.admit_local(type, payload, o, out, this, fx);
        if (out.admission.is_accepted) c.dispatch(fx);
    }
    c.apply(fx);
    return out;
}

admission_result<std::monostate, std::string> coordinator::post(std::string type, std::string payload,
                                                                 task_options options) {
    auto r = submit_async(std::move(type), std::move(payload), std::move(options));
    return std::move(r.admission);
}

std::string coordinator::submit(std::string type, std::string payload, task_options options) {
    auto r = submit_async(std::move(type), std::move(payload), std::move(options));
    if (!r) {
        throw rejected_error(r.admission.reason, r.admission.retry_after,
                             "orchcore: submit rejected: " + std::string(to_string(r.admission.reason)) + " (" +
                                 std::string(r.admission.detail) + ")");
    }
    return r.handle.get();
}

std::optional<task_record> coordinator::wait_for(const std::string& id, std::chrono::milliseconds timeout) {
    return wait_until(id, detail::deadline_after(timeout));
}

std::optional<task_record> coordinator::wait_until(const std::string& id, std::chrono::steady_clock::time_point deadline) {
    auto& c = *impl_;
    if (c.dist()) {
        // The record may be finished by any node: a finish notification
        // wakes the wait (a slow look at the shared store guards against a
        // lost one); without notifications the store is polled.
        auto backoff = std::chrono::milliseconds(1);
        bool seen = false;
        const bool notified = c.finishes.ensure(*c.tp);
        for (;;) {
            const auto gen = c.finish_generation();
            if (auto look = c.look_shared(id, seen); look.done) return std::move(look.rec);
            const auto now = detail::steady::now();
            if (now >= deadline) return std::nullopt;
            const auto look_again = std::min(deadline, now + detail::remote_wait_step(notified, backoff));
            std::unique_lock lk(c.mu);
            if (notified) c.done_cv.wait_until(lk, look_again, [&] { return c.finished_gen != gen; });
            else c.done_cv.wait_until(lk, look_again);  // a completion on this node wakes it too
        }
    }
    std::unique_lock lk(c.mu);
    auto it = c.tasks.find(id);
    if (it == c.tasks.end()) throw error(errc::not_found, "orchcore: no task with id \"" + id + "\"");
    for (bool first = true;; first = false) {
        if (!first) it = c.tasks.find(id);  // the table may have changed while waiting
        if (it == c.tasks.end()) return std::nullopt;  // expired while waiting
        // Terminal, and its terminal event delivered: a subscriber has seen
        // the end of a task by the time its waiter does.
        if (is_terminal(it->second.rec.status) && c.delivered_up_to(it->second.terminal_event_seq))
            return it->second.rec;
        if (c.done_cv.wait_until(lk, deadline) == std::cv_status::timeout) {
            it = c.tasks.find(id);
            if (it != c.tasks.end() && is_terminal(it->second.rec.status)) return it->second.rec;
            return std::nullopt;
        }
    }
}

asio::awaitable<std::optional<task_record>> coordinator::async_wait_for(std::string id,
                                                                        std::chrono::milliseconds timeout) {
    co_return co_await async_wait_until(std::move(id), detail::deadline_after(timeout));
}

asio::awaitable<std::optional<task_record>> coordinator::async_wait_until(std::string id,
                                                                          std::chrono::steady_clock::time_point deadline) {
    using namespace asio::experimental::awaitable_operators;
    auto& c = *impl_;
    auto ex = co_await asio::this_coro::executor;
    auto backoff = std::chrono::milliseconds(1);
    bool seen = false;
    for (;;) {
        auto waiter = std::make_shared<detail::async_waiter>(ex);
        auto wake_at = deadline;
        if (c.dist()) {
            // As wait_until: woken by finish notifications, with a slow
            // look at the shared store (or polled without notifications).
            const bool notified = c.finishes.ensure(*c.tp);
            const auto gen = c.finish_generation();
            if (auto look = c.look_shared(id, seen); look.done) co_return std::move(look.rec);
            const auto now = detail::steady::now();
            if (now >= deadline) co_return std::nullopt;
            wake_at = std::min(deadline, now + detail::remote_wait_step(notified, backoff));
            std::lock_guard lk(c.mu);
            if (c.finished_gen != gen) continue;  // a notification came meanwhile: look again
            c.add_async_waiter(id, waiter);
        } else {
            std::lock_guard lk(c.mu);
            auto it = c.tasks.find(id);
            if (it == c.tasks.end()) {
                if (!seen) throw error(errc::not_found, "orchcore: no task with id \"" + id + "\"");
                co_return std::nullopt;  // expired while waiting
            }
            seen = true;
            const bool terminal = is_terminal(it->second.rec.status);
            if (terminal && c.delivered_up_to(it->second.terminal_event_seq)) co_return it->second.rec;
            if (detail::steady::now() >= deadline) {
                if (terminal) co_return it->second.rec;
                co_return std::nullopt;
            }
            c.add_async_waiter(id, waiter);
        }
        asio::steady_timer timer(ex);
        timer.expires_at(wake_at);
        (void)co_await (waiter->wake_ch.async_receive(asio::as_tuple(asio::use_awaitable)) ||
                        timer.async_wait(asio::as_tuple(asio::use_awaitable)));
        // Woken or timed out: no longer waiting (a waker erased it already).
        std::lock_guard lk(c.mu);
        auto [b, e] = c.async_waiters.equal_range(id);
        for (auto it = b; it != e; ++it) {
            if (it->second == waiter) {
                c.erase_async_waiter(it);
                break;
            }
        }
    }
}

std::optional<task_record> coordinator::get_task(const std::string& id) const {
    auto& c = *impl_;
    if (c.write_through) return c.store->get(id);
    std::lock_guard lk(c.mu);
    auto it = c.tasks.find(id);
    if (it == c.tasks.end()) return std::nullopt;
    return it->second.rec;
}

std::optional<task_status> coordinator::get_status(const std::string& id) const {
    auto& c = *impl_;
    if (!c.write_through) {
        std::lock_guard lk(c.mu);
        auto it = c.tasks.find(id);
        if (it == c.tasks.end()) return std::nullopt;
        return it->second.rec.status;
    }
    auto r = c.store->get(id);
    if (!r) return std::nullopt;
    return r->status;
}

std::optional<std::string> coordinator::get_result(const std::string& id) const {
    auto r = get_task(id);
    if (!r || r->status != task_status::completed) return std::nullopt;
    return r->result;
}

bool coordinator::cancel(const std::string& id) {
    auto& c = *impl_;
    detail::effects fx;
    bool ok = false;
    if (c.dist()) {
        {
            std::lock_guard lk(c.mu);
            auto it = c.tasks.find(id);
            if (it != c.tasks.end() && it->second.attempt) {  // running here
                auto& t = it->second;
                if (!t.cancel_requested) {
                    t.cancel_requested = true;
                    t.cancel_deadline = detail::deadline_after(c.opt.cancel_grace);
                    detail::coordinator_impl::signal_cancel(t.attempt);
                }
                return true;
            }
        }
        if (c.tp->cancel(id)) {
            // It was waiting: out of the queue now, so this node settles it.
            auto rec = c.store->get(id);
            if (rec && !is_terminal(rec->status)) {
                task_record r = *rec;
                r.status = task_status::cancelled;
                r.finished_at = detail::wall::now();
                r.error = "cancelled";
                r.metadata.erase(detail::coordinator_impl::cancel_key);
                if (c.owner_write(r, rec->status)) {
                    detail::announce_finished(*c.tp, std::span<const std::string>(&r.id, 1));
                    std::lock_guard lk(c.mu);
                    ++c.counters.cancelled;
                    c.emit(detail::coordinator_impl::make_event_rec(event_kind::task_cancelled, r, r.error));
                    fx.wake_waiters = true;
                }
            }
            c.apply(fx);
            return true;
        }
        // Running on another node (or changing hands right now): leave a
        // marker that its holder sees at the next renewal, or its next
        // leaser when it starts.
        for (int tries = 0; tries < 5; ++tries) {
            auto rec = c.store->get(id);
            if (!rec || is_terminal(rec->status)) return false;
            if (rec->metadata.count(detail::coordinator_impl::cancel_key)) return true;
            task_record r = *rec;
            r.metadata[detail::coordinator_impl::cancel_key] = "requested";
            if (c.store->update(r, rec->status)) return true;
        }
        return false;
    }
    {
        std::lock_guard lk(c.mu);
        auto it = c.tasks.find(id);
        if (it == c.tasks.end() || is_terminal(it->second.rec.status)) return false;
        auto& t = it->second;
        if (t.rec.status == task_status::running) {
            if (!t.cancel_requested) {
                t.cancel_requested = true;
                t.cancel_deadline = detail::deadline_after(c.opt.cancel_grace);
                if (t.attempt) detail::coordinator_impl::signal_cancel(t.attempt);
            }
        } else {
            c.finish(t, task_status::cancelled, "cancelled", fx);
            c.dispatch(fx);
        }
        ok = true;
    }
    c.apply(fx);
    return ok;
}

void coordinator::steer(const std::string& id, std::vector<std::string> messages) {
    auto& c = *impl_;
    // Wakes a handler of this node waiting in receive_for for this task.
    auto wake_local = [](detail::task_entry& t) {
        if (!t.attempt) return;
        t.attempt->mailbox_cv.notify_all();
        if (t.attempt->strand) {
            auto a = t.attempt;
            asio::post(*a->strand, [a] {
                std::lock_guard lk2(a->c->mu);
                if (a->waiting_timer) a->waiting_timer->cancel();
            });
        }
    };
    if (c.dist()) {
        // The mailbox is in the transport: whichever node runs the task
        // (now or in a later attempt) reads it there. The record is looked
        // at first: a finished task stays in the transport until its ack,
        // just after its record says how it ended.
        auto check_record = [&] {
            auto rec = c.store->get(id);
            if (!rec) throw error(errc::not_found, "orchcore: steer: no task with id \"" + id + "\"");
            if (is_terminal(rec->status))
                throw error(errc::task_finished, "orchcore: steer: task \"" + id + "\" already " +
                                                     std::string(to_string(rec->status)));
            return rec->status;
        };
        check_record();
        if (!c.tp->post_messages(id, messages)) {
            const auto status = check_record();
            throw error(errc::not_found, "orchcore: steer: task \"" + id + "\" is not in the queue (" +
                                             std::string(to_string(status)) + ", finishing or not yet admitted)");
        }
        std::lock_guard lk(c.mu);
        if (auto it = c.tasks.find(id); it != c.tasks.end()) wake_local(it->second);
        return;
    }
    std::lock_guard lk(c.mu);
    auto it = c.tasks.find(id);
    if (it == c.tasks.end()) throw error(errc::not_found, "orchcore: steer: no task with id \"" + id + "\"");
    auto& t = it->second;
    if (is_terminal(t.rec.status))
        throw error(errc::task_finished, "orchcore: steer: task \"" + id + "\" already " +
                                             std::string(to_string(t.rec.status)));
    for (auto& m : messages) t.mailbox.push_back(std::move(m));
    wake_local(t);
}

std::size_t coordinator::scale(std::size_t n) {
    auto& c = *impl_;
    detail::effects fx;
    std::size_t r;
    {
        std::lock_guard lk(c.mu);
        if (c.stopping) throw shutdown_error("orchcore: scale() after stop()");
        r = c.scale_to(n, "manual scale(" + std::to_string(n) + ")", fx);
    }
    c.apply(fx);
    return r;
}

std::string coordinator::add_worker(worker_options options) {
    auto& c = *impl_;
    detail::effects fx;
    std::string id;
    {
        std::lock_guard lk(c.mu);
        if (c.stopping) throw shutdown_error("orchcore: add_worker() after stop()");
        id = c.create_worker(std::move(options), fx)->id();
        c.dispatch(fx);
    }
    c.apply(fx);
    return id;
}

std::vector<worker_info> coordinator::get_workers() const {
    std::lock_guard lk(impl_->mu);
    std::vector<worker_info> out;
    const auto now = detail::steady::now();
    for (const auto& [id, w] : impl_->workers) {
        worker_info i;
        i.id = id;
        i.tags = w.w->options().tags;
        i.max_concurrent = w.w->options().max_concurrent;
        for (const auto& a : w.running) i.current_tasks.push_back(a->id);
        i.completed = w.completed;
        i.failed = w.failed;
        i.uptime = std::chrono::duration_cast<std::chrono::milliseconds>(now - w.w->started_at());
        i.available = w.draining ? 0 : i.max_concurrent - std::min(w.busy, i.max_concurrent);
        i.last_heartbeat = w.last_heartbeat_wall;
        i.status = w.draining ? worker_status::draining
                              : (w.busy > 0 ? worker_status::busy : worker_status::idle);
        out.push_back(std::move(i));
    }
    return out;
}

coordinator_stats coordinator::get_stats() const {
    auto& c = *impl_;
    std::optional<transport_stats> ts;
    if (c.dist()) {
        try {
            ts = c.tp->stats();  // the shared queue, outside the lock
        } catch (const std::exception&) {
        }
    }
    std::lock_guard lk(c.mu);
    coordinator_stats s = c.counters;
    s.queue = c.queue->metrics();
    s.queued = c.queue->size() + c.ready.size() + c.parked.size();
    s.delayed = c.delayed.size();
    if (c.dist()) {
        s.queued = ts ? ts->waiting : 0;
        s.delayed = ts ? ts->delayed : 0;
    }
    s.running = c.running_count;
    s.workers = c.live_workers();
    s.tracked_tasks = c.tasks.size();
    return s;
}

event_bus& coordinator::events() noexcept { return impl_->bus; }

bool coordinator::stop(stop_mode mode, std::chrono::milliseconds deadline) {
    if (impl_->stop_from_inside([c = impl_, mode, deadline] { (void)stop_on(*c, mode, deadline); })) return false;
    impl_->await_stopper();
    return stop_on(*impl_, mode, deadline);
}

bool coordinator::stop_on(detail::coordinator_impl& c, stop_mode mode, std::chrono::milliseconds deadline) {
    bool clean = true;
    if (c.dist()) {
        // A node stops taking leases; graceful lets its running attempts
        // finish until the deadline; what is left goes back to the shared
        // queue for other nodes (not cancelled).
        std::unique_lock lk(c.mu);
        if (c.stopped) return true;
        c.stopping = true;
        if (mode == stop_mode::graceful) {
            c.done_cv.wait_until(lk, detail::deadline_after(deadline),
                                 [&] { return c.running_count == 0 && c.io_inflight == 0; });
        }
        std::vector<detail::dist_op> ops;
        for (auto it = c.tasks.begin(); it != c.tasks.end();) {
            if (it->second.attempt) {
                clean = false;
                ops.push_back(c.make_op(it->second, task_status::queued, {}, {}, event_kind::task_requeued,
                                        "node stopping", detail::dist_op::why::stop));
            }
            it = c.tasks.erase(it);
        }
        c.io_inflight += c.retry_ops.size();  // one last try for what the backend failed to record
        std::move(c.retry_ops.begin(), c.retry_ops.end(), std::back_inserter(ops));
        c.retry_ops.clear();
        lk.unlock();
        c.run_ops(ops);
        lk.lock();
        c.done_cv.wait_until(lk, detail::deadline_after(detail::saturating_add(c.opt.cancel_grace, std::chrono::milliseconds(100))),
                             [&] { return c.running_count == 0 && c.io_inflight == 0; });
        // Lease calls in flight must end before the control thread goes.
        c.done_cv.wait(lk, [&] { return c.io_inflight == 0; });
        c.stopped = true;
    }
    if (!c.dist()) {
        std::unique_lock lk(c.mu);
        if (c.stopped) return true;
        c.stopping = true;
        c.queue->close();
        auto unfinished = [&] {
            return c.queue->size() + c.ready.size() + c.parked.size() + c.delayed.size() + c.running_count;
        };
        if (mode == stop_mode::graceful) {
            const auto until = detail::deadline_after(deadline);
            c.done_cv.wait_until(lk, until, [&] { return unfinished() == 0; });
        }
        // Whatever is left is cancelled: waiting tasks at once, running ones
        // cooperatively (fenced after cancel_grace).
        detail::effects fx;
        for (auto& [id, t] : c.tasks) {
            if (is_terminal(t.rec.status)) continue;
            clean = false;
            if (t.rec.status == task_status::running) {
                if (!t.cancel_requested) {
                    t.cancel_requested = true;
                    t.cancel_deadline = detail::deadline_after(c.opt.cancel_grace);
                    if (t.attempt) detail::coordinator_impl::signal_cancel(t.attempt);
                }
            } else {
                c.finish(t, task_status::cancelled, "coordinator stopped", fx);
            }
        }
        lk.unlock();
        c.apply(fx);
        lk.lock();
        // Give cooperative handlers their grace period; the tick fences the rest.
        c.done_cv.wait_until(lk, detail::deadline_after(detail::saturating_add(c.opt.cancel_grace, std::chrono::milliseconds(100))),
                             [&] { return c.running_count == 0; });
        c.stopped = true;
    }
    if (c.dist()) c.stop_wakeups();
    // Stop the control loop (thread or user executor), then every worker.
    c.stop_user_control();
    asio::post(c.ctl, [&c] { c.tick_timer.cancel(); });
    c.ctl.stop();
    if (c.ctl_thread.joinable()) c.ctl_thread.join();
    if (c.io) c.io->join();
    std::vector<std::shared_ptr<worker>> all;
    std::vector<std::string> leaving;  // registry entries to remove
    {
        std::lock_guard lk(c.mu);
        leaving = c.registry_entries();
        for (auto& [id, w] : c.workers) all.push_back(w.w);
        c.workers.clear();
        for (auto& w : c.retired) all.push_back(w);
        c.retired.clear();
        for (auto& w : c.dead_workers) all.push_back(w);
        c.dead_workers.clear();
        while (!c.beats.empty()) c.stop_heartbeats(c.beats.begin()->first);
        // Anything still running at this point has been fenced; mark it.
        detail::effects fx;
        for (auto& [id, t] : c.tasks) {
            if (!is_terminal(t.rec.status) && t.rec.status == task_status::running) {
                c.fence_attempt(t);
                c.finish(t, task_status::cancelled, "coordinator stopped", fx);
            }
        }
        // The workers are going away with whatever slots they still hold.
        c.running_count = 0;
        c.done_cv.notify_all();
    }
    c.flush_events();
    for (auto& w : all) c.end_worker(*w);
    c.forget(leaving);
    {
        std::lock_guard lk(c.mu);
        c.torn_down = true;
        c.wake_async_waiters();  // they find their tasks ended (or gone)
    }
    return clean;
}

const std::string& coordinator::node_id() const noexcept { return impl_->node; }

void coordinator::suspend_heartbeats(const std::string& worker_id) {
    std::lock_guard lk(impl_->mu);
    auto it = impl_->workers.find(worker_id);
    if (it == impl_->workers.end())
        throw error(errc::not_found, "orchcore: no worker with id \"" + worker_id + "\"");
    it->second.heartbeats_suspended = true;
}

void coordinator::resume_heartbeats(const std::string& worker_id) {
    auto& c = *impl_;
    std::lock_guard lk(c.mu);
    auto it = c.workers.find(worker_id);
    if (it != c.workers.end()) {
        it->second.heartbeats_suspended = false;
        if (auto b = c.beats.find(worker_id); b != c.beats.end()) c.arm_heartbeat(b->second, worker_id, {});
        return;
    }
    // Declared dead meanwhile: the worker comes back and heartbeats once,
    // from its own threads, as a wedged worker would; that is refused.
    if (auto dead = c.dead_worker(worker_id)) {
        dead->post_control([&c, wid = worker_id] { (void)c.heartbeat(wid); });
        return;
    }
    throw error(errc::not_found, "orchcore: no worker with id \"" + worker_id + "\"");
}

}  // namespace orchcore
