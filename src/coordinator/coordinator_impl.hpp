// The coordinator's state and the operations on it, under one mutex.
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
#pragma once

#include "attempt.hpp"
#include "clock.hpp"
#include "control_loop.hpp"
#include "counted_cv.hpp"
#include "effects.hpp"
#include "node_op.hpp"
#include "task_entry.hpp"
#include "worker_entry.hpp"

#include <orchcore/any_admission_queue.hpp>
#include <orchcore/coordinator.hpp>
#include <orchcore/detail/adaptive_mutex.hpp>
#include <orchcore/detail/saturating.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <array>
#include <deque>
#include <map>
#include <random>
#include <thread>
#include <unordered_map>

namespace orchcore::detail {

void validate_task_options(const task_options& o);

struct coordinator_impl : std::enable_shared_from_this<coordinator_impl> {

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
    std::size_t running_count = 0;
    bool stopping = false, stopped = false;
    steady::time_point next_autoscale{}, next_maintenance{};

    // ------------------------------------------------ distributed mode state
    std::shared_ptr<transport> tp;  // empty: local mode
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

    std::shared_ptr<user_control> uctl;  // control loop on opt.executor

    // Coroutines awaiting tasks, by task id (mu). The count mirrors its
    // size, so that apply() can skip the lock when nobody awaits; only the
    // two helpers below change the map.
    using async_waiter_map = std::unordered_multimap<std::string, std::shared_ptr<async_waiter>>;
    async_waiter_map async_waiters;
    std::atomic<std::size_t> async_waiter_count{0};

    // Distributed waits: one look at the shared store. done: the wait is
    // over, with the terminal record (or empty: it expired meanwhile). Not
    // done: not terminal yet, or the store did not answer (keep trying
    // until the deadline). An id never seen is not_found.
    struct store_look {
        bool done = false;
        std::optional<task_record> rec;
    };
    bool torn_down = false;  // mu; stop() is over: workers ended, control loop closed

    // ------------------------------------------------------ stop from inside

    std::thread::id ctl_thread_id{};  // set once, before anything can call stop()
    std::thread stopper;              // mu; carries out a stop() called from inside

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

    // What became of one record change in run_ops.
    enum class fate : unsigned char { pending, failed, not_held, conflict, written };

    std::vector<std::shared_ptr<worker>> dead_workers;

    // core.cpp
    explicit coordinator_impl(coordinator_options o);
    static autoscale_options scaler_options(const coordinator_options& o);
    static std::string make_node_id(const coordinator_options& o);
    static event make_event(event_kind k, const task_entry& t, std::string detail = {});
    ~coordinator_impl();
    static event make_event_rec(event_kind k, const task_record& r, std::string detail = {});

    // task_table.cpp
    static std::size_t ttl_class(task_status s) noexcept;
    std::chrono::milliseconds ttl_for(task_status s) const;
    void set_status(task_entry& t, task_status to);
    void persist(const task_entry& t, task_status expected);
    void unlink_waiting(task_entry& t);
    void finish(task_entry& t, task_status to, std::string error, effects& fx);
    void requeue(task_entry& t, std::chrono::milliseconds delay, bool front);
    void fence_attempt(task_entry& t);
    static void signal_cancel(const std::shared_ptr<attempt_state>& a);
    std::chrono::milliseconds backoff_delay(const task_entry& t);
    void start_attempt(task_entry& t, worker_entry& w, effects& fx);
    void dispatch(effects& fx);
    void park(const std::string& id);

    // admission.cpp
    void require_handler(const std::string& type) const;
    void admit_local(std::string& type, std::string& payload, task_options& o, submit_result& out, coordinator* owner, effects& fx);

    // worker_set.cpp
    std::size_t live_workers() const;
    std::size_t free_slots() const;
    worker_entry* pick_worker(const std::vector<std::string>& tags);
    bool fitting_worker_exists(const std::vector<std::string>& tags) const;
    std::shared_ptr<worker> create_worker(worker_options o, effects& /*fx*/);
    void retire_worker(std::map<std::string, worker_entry>::iterator it, event_kind why, std::string detail, effects& /*fx*/);
    std::size_t scale_to(std::size_t n, std::string reason, effects& fx);
    static void end_worker(worker& w);
    std::shared_ptr<worker> dead_worker(const std::string& id) const;
    void start_heartbeats(const std::string& id, worker& w);
    void stop_heartbeats(const std::string& id);
    void arm_heartbeat(const std::shared_ptr<heartbeat_clock>& hb, std::string wid, std::chrono::milliseconds after);
    std::optional<std::chrono::milliseconds> heartbeat(const std::string& worker_id);
    std::vector<std::string> registry_entries();
    void forget(const std::vector<std::string>& ids);
    worker_record registry_record(const worker& w, wall::time_point heartbeat) const;
    std::chrono::milliseconds entry_lifetime() const;

    // outbox.cpp
    void emit(event e);
    void emit_task(event_kind k, const task_entry& t, std::string detail = {});
    bool delivered_up_to(std::uint64_t seq) const;
    void flush_events();
    void apply(effects& fx);
    void add_async_waiter(const std::string& id, std::shared_ptr<async_waiter> w);
    async_waiter_map::iterator erase_async_waiter(async_waiter_map::iterator it);
    void wake_async_waiters();

    // control_loop.cpp
    void arm_user_tick();
    void stop_user_control();
    void start_control();
    bool on_own_thread();
    void await_stopper();
    void arm_tick();

    // launcher.cpp
    void refuse_stale(const std::string& task_id, const std::string& worker_id, std::uint32_t attempt, std::string detail);
    void release_slot(const attempt_state& a, bool succeeded, effects& fx);
    void refuse_oversized(const attempt_state& a, outcome& o) const;
    void finish_attempt(const std::shared_ptr<attempt_state>& a, outcome o);
    void fail_attempt(task_entry& t, std::string error, bool retryable, effects& fx);
    void run_sync(const launch& ln);
    static asio::awaitable<std::string> run_coroutine(std::shared_ptr<attempt_state> a, std::shared_ptr<const async_task_handler> h);
    void run_async(const launch& ln);

    // local_tick.cpp
    void on_tick();

    // node_outcome.cpp
    bool owner_write(const task_record& r, task_status expected);
    dist_op make_op(task_entry& t, task_status to, std::string error, std::chrono::milliseconds delay, event_kind ev, std::string detail, dist_op::why reason);
    static bool backend_failure(const std::exception& e);
    void run_ops(std::vector<dist_op>& ops);
    void hold_leases(std::vector<dist_op>& ops, std::vector<fate>& f);
    void write_batch(const std::vector<dist_op>& ops, std::vector<fate>& f);
    fate write_refused(dist_op& op, const std::exception& e);
    void settle_leases(std::vector<dist_op>& ops, std::vector<fate>& f, std::vector<bool>& io_error);
    void record_outcomes(std::vector<dist_op>& ops, const std::vector<fate>& f, const std::vector<bool>& io_error);
    void count_written(const dist_op& op);
    void submit_op(dist_op op);
    void flush_ops();
    void finish_attempt_dist(const std::shared_ptr<attempt_state>& a, outcome o);

    // node_feed.cpp
    void kick_feed();
    void feed();
    bool feed_once();
    std::shared_ptr<attempt_state> start_attempt_dist(task_record rec, const transport_lease& l, worker_entry& w, launch& ln);

    // node_renewal.cpp
    void renew(renewal& r);
    std::vector<renewal> due_renewals();

    // node_maintenance.cpp
    store_look look_shared(const std::string& id, bool& seen) const;
    void settle_overdue(steady::time_point now, std::vector<dist_op>& ops);
    std::vector<std::string> reap_local_workers(steady::time_point now, std::vector<dist_op>& ops);
    void write_registry(const std::vector<std::pair<std::string, wall::time_point>>& beats_due, const std::vector<std::string>& dead, const std::vector<std::string>& removed);
    void dist_tick();
    void recover();
    void maintain();
};

}  // namespace orchcore::detail
