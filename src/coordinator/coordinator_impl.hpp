// The coordinator's state and the operations on it, under one mutex.
//
// Concurrency design: all coordinator state lives in coordinator_impl under
// one mutex. Work done while holding it is bookkeeping only; its side effects
// (events to publish, attempts to launch on workers, waiters to wake) are
// collected in an `effects` value and applied after the lock is released, so
// user code (handlers, event subscribers) never runs under the lock and may
// call back into the coordinator. In local mode the calls to the store and
// the registry wait in an io_queue and leave the same way. Decisions come from the pure state
// machines: admission_core (through the admission queue), task_status
// transitions, the attempt outcome, the lease round, backoff_policy and
// autoscaler.
//
// One control loop (a thread of its own or a timer on the user's executor)
// drives retries due, timeouts, worker health, auto-scaling and TTL expiry
// through the engine's tick.
#pragma once

#include "attempt.hpp"
#include "attempt_outcome.hpp"
#include "clock.hpp"
#include "control_loop.hpp"
#include "counted_cv.hpp"
#include "effects.hpp"
#include "finish_watchers.hpp"
#include "engine.hpp"
#include "io_queue.hpp"
#include "session_bindings.hpp"
#include "task_entry.hpp"
#include "task_table.hpp"
#include "worker_entry.hpp"

#include <orchcore/autoscaler.hpp>
#include <orchcore/coordinator.hpp>
#include <orchcore/detail/adaptive_mutex.hpp>
#include <orchcore/detail/saturating.hpp>
#include <orchcore/node_backend.hpp>
#include <orchcore/task_store.hpp>
#include <orchcore/transport.hpp>
#include <orchcore/worker_pool.hpp>
#include <orchcore/worker_registry.hpp>

#include <boost/asio/io_context.hpp>

#include <deque>
#include <memory>
#include <map>
#include <random>
#include <thread>
#include <unordered_map>

namespace orchcore::detail {

// What a handler's return says, for the attempt outcome.
inline attempt_report report_of(const attempt_state& a, const outcome& o) {
    return {o.kind == outcome::success, o.retryable, a.continue_requested, a.continue_delay};
}

void validate_task_options(const task_options& o);

// The shared components' state and operations; what depends on the mode is
// the engine's (eng), picked once at construction.
// A live worker of the shared registry that could hold `r` (with `tags`)
// when nothing is held on it (placement_check.cpp).
bool registered_could_hold(const worker_record& w, const std::vector<std::string>& tags, const resource_request& r);

struct coordinator_impl : std::enable_shared_from_this<coordinator_impl> {
    coordinator_options opt;
    mutable detail::adaptive_mutex mu;
    counted_cv done_cv;
    // The task table: in local mode every task until its TTL; in
    // distributed mode the tasks running on this node.
    task_table tasks;
    std::map<std::string, worker_entry> workers;
    // Session affinity (session_bindings.hpp): the worker each session
    // key's tasks go to while it lives and has room.
    session_bindings sessions;
    // Set when a slot or resources are freed or a worker is added: only
    // then can a task that found no fitting worker fit one (local mode
    // retries its parked tasks then, not at every submission).
    bool capacity_freed = true;
    std::vector<std::shared_ptr<worker>> retired;  // dead or drained workers, joined by the control thread
    // Every worker's heartbeat clock until it leaves for good (a dead
    // worker's until stop: its threads may come back and beat once more).
    std::map<std::string, std::shared_ptr<heartbeat_clock>> beats;
    std::vector<std::string> registry_removals;  // retired workers the control loop removes from the registry
    std::unordered_map<std::string, std::shared_ptr<const task_handler>> handlers;
    std::unordered_map<std::string, std::shared_ptr<const async_task_handler>> async_handlers;
    autoscaler scaler;
    std::shared_ptr<task_store> store;
    std::shared_ptr<worker_registry> registry;
    event_bus bus;
    finish_watchers finish_watch;    // local mode: coordinator::watch_finished
    outcome_watchers outcome_watch;  // local mode: coordinator::watch_outcomes
    coordinator_stats counters;
    std::mt19937_64 rng;
    std::atomic<std::uint64_t> task_seq{0};  // generated task ids
    std::uint64_t worker_seq = 0;
    std::deque<event> outbox;  // events in the order of the changes, not yet published
    // Local mode, while anyone watches: tasks that ended, told to the
    // watchers after the events before them in the outbox (flush_events).
    std::vector<std::string> finished_ids;
    std::vector<finished_task> finished_notes;  // the same, with how they ended
    bool publishing = false;   // a thread is draining the outbox
    std::thread::id publisher{};               // which one
    std::uint64_t emitted = 0, delivered = 0;  // events put in the outbox / published
    std::atomic<bool> outbox_nonempty{false};  // lets apply() skip the lock when nothing is to publish
    std::size_t running_count = 0;
    bool stopping = false, stopped = false;
    steady::time_point next_autoscale{}, next_maintenance{};
    std::string node;  // "local" in local mode
    // Local mode on the built-in store: the task table is the record of
    // truth and nothing is copied into a second table. With a store of the
    // user's (or in distributed mode), every change is written through.
    bool write_through = true;
    // Local mode: store and registry calls, carried out after the lock
    // (carry_out_io), each queue in the order of the decisions.
    io_queue store_io, registry_io;

    asio::io_context ctl;
    asio::steady_timer tick_timer;
    std::thread ctl_thread;
    std::chrono::milliseconds tick_every{10};

    std::shared_ptr<user_control> uctl;  // control loop on opt.executor

    // Coroutines awaiting tasks, by task id (mu). The count mirrors its
    // size, so that apply() can skip the lock when nobody awaits; only the
    // two helpers below change the map.
    using async_waiter_map = std::unordered_multimap<std::string, std::shared_ptr<async_waiter>>;
    async_waiter_map async_waiters;
    std::atomic<std::size_t> async_waiter_count{0};

    bool torn_down = false;  // mu; stop() is over: workers ended, control loop closed

    std::thread::id ctl_thread_id{};  // set once, before anything can call stop()
    std::thread stopper;              // mu; carries out a stop() called from inside

    std::vector<std::shared_ptr<worker>> dead_workers;

    std::unique_ptr<engine> eng;  // last: built on the state above, gone first

    // stop() on one of the coordinator's own threads cannot wait there (it
    // would wait for itself): admission closes at once, and the rest of the
    // stop runs on a thread of its own. Returns false on any other thread.
    template <class Stop>
    bool stop_from_inside(Stop&& stop_fn) {
        std::lock_guard lk(mu);
        if (!on_own_thread()) return false;
        if (stopping || stopped) return true;  // a stop is under way already
        stopping = true;
        eng->close_admission();
        stopper = std::thread(std::forward<Stop>(stop_fn));
        return true;
    }

    // core.cpp
    explicit coordinator_impl(coordinator_options o);
    ~coordinator_impl();
    static autoscale_options scaler_options(const coordinator_options& o);
    static std::string make_node_id(const node_options& o);
    static event make_event(event_kind k, const task_entry& t, std::string detail = {});
    static event make_event_rec(event_kind k, const task_record& r, std::string detail = {});
    static task_handle make_handle(coordinator* owner, std::string id);
    bool has_handler(const std::string& type) const;

    // task_table.cpp
    void set_status(task_entry& t, task_status to);
    void persist(task_entry& t, task_status expected);
    void fence_attempt(task_entry& t);
    void request_cancel(task_entry& t);
    void wake_receiver(task_entry& t);
    static void signal_cancel(const std::shared_ptr<attempt_state>& a);
    static attempt_facts<steady::time_point> facts_of(const task_entry& t);
    double draw();  // uniform in [0, 1): the backoff's jitter
    std::shared_ptr<attempt_state> new_attempt(const task_entry& t, const worker_entry& w, std::uint64_t token);
    void take_slot(task_entry& t, worker_entry& w, const std::shared_ptr<attempt_state>& a, launch& ln);

    // worker_set.cpp
    std::size_t live_workers() const;
    std::size_t free_slots(std::size_t reserved = 0) const;
    worker_entry* pick_worker(const std::vector<std::string>& tags, const resource_request& r = {},
                              std::string_view session = {});
    bool fitting_worker_exists(const std::vector<std::string>& tags) const;
    bool could_ever_place(const std::vector<std::string>& tags, const resource_request& r) const;
    void release_hold(worker_entry& w, hold_id h);
    void forget_sessions_of(const std::string& worker_id);
    bool session_running(const std::string& session, const std::string& worker_id) const;

    // placement_check.cpp
    void require_placeable(const task_options& o, std::optional<std::vector<worker_record>>& listed);
    std::shared_ptr<worker> create_worker(worker_options o, effects& fx);
    void retire_worker(std::map<std::string, worker_entry>::iterator it, event_kind why, std::string detail, effects& fx);
    std::size_t scale_to(std::size_t n, std::string reason, effects& fx);
    void autoscale(steady::time_point now, bool due, std::optional<std::size_t> depth, effects& fx);
    static void end_worker(worker& w);
    std::shared_ptr<worker> dead_worker(const std::string& id) const;
    void declare_dead(std::map<std::string, worker_entry>::iterator it);
    void start_heartbeats(const std::string& id, worker& w);
    void stop_heartbeats(const std::string& id);
    void arm_heartbeat(const std::shared_ptr<heartbeat_clock>& hb, std::string wid, std::chrono::milliseconds after);
    std::optional<std::chrono::milliseconds> heartbeat(const std::string& worker_id);
    std::vector<std::string> registry_entries();
    void forget(const std::vector<std::string>& ids);
    worker_record registry_record(const worker& w, wall::time_point heartbeat, const std::string& host) const;
    std::chrono::milliseconds entry_lifetime() const;

    // outbox.cpp
    void emit(event e);
    void emit_task(event_kind k, const task_entry& t, std::string detail = {});
    void emit_finished(const task_entry& t);
    bool delivered_up_to(std::uint64_t seq) const;
    void flush_events();
    void apply(effects& fx);
    void carry_out_io();
    void wake_waiters();
    void add_async_waiter(const std::string& id, std::shared_ptr<async_waiter> w);
    async_waiter_map::iterator erase_async_waiter(async_waiter_map::iterator it);
    void drop_async_waiter(const std::string& id, const std::shared_ptr<async_waiter>& w);
    void wake_async_waiters();

    // control_loop.cpp
    void arm_user_tick();
    void stop_user_control();
    void start_control();
    void stop_control();
    bool on_own_thread();
    void await_stopper();
    void arm_tick();

    // launcher.cpp
    error stale_read(const attempt_state& a);
    void refuse_stale(const std::string& task_id, const std::string& worker_id, std::uint32_t attempt, std::string detail);
    void release_slot(const attempt_state& a, bool succeeded, effects& fx);
    task_entry* returned_task(const attempt_state& a, bool succeeded, effects& fx);
    void refuse_oversized(const attempt_state& a, outcome& o) const;
    void finish_attempt(const std::shared_ptr<attempt_state>& a, outcome o);
    void run_sync(const launch& ln);
    static asio::awaitable<std::string> run_coroutine(std::shared_ptr<attempt_state> a, std::shared_ptr<const async_task_handler> h);
    void run_async(const launch& ln);
};

}  // namespace orchcore::detail
