// Distributed mode ("node"): tasks wait in the shared transport, records
// live in the shared store; the task table holds the attempts running on
// this node. Transport and store calls never run under the coordinator
// mutex: decisions are made under the lock, then carried out (run_ops,
// feed, renewals, recovery), then their outcome is recorded under the lock.
// Every record change made by this node is made as the holder of the
// task's lease (checked with extend() when less than half of it is left),
// which is what fences a node presumed dead.
#pragma once

#include "attempt_outcome.hpp"
#include "coordinator_impl.hpp"
#include "lease_round.hpp"
#include "node_op.hpp"
#include "node_wakeups.hpp"
#include "serial_runs.hpp"

#include <orchcore/node_backend.hpp>
#include <orchcore/transport.hpp>

#include <boost/asio/thread_pool.hpp>

#include <memory>

namespace orchcore::detail {

// A node's feed step (one lease round) and flush step (finished attempts'
// record changes): with the plain transport and store calls, or through a
// node_backend (node_options::backend, else the transport's
// make_node_backend), one call each. Picked once, when the engine is built
// (node_path.cpp).
class node_path {
public:
    virtual ~node_path() = default;
    /// One lease round; true if another may find more.
    virtual bool feed_once() = 0;
    /// Carries out finished attempts' record changes.
    virtual void flush(std::vector<dist_op>& ops) = 0;
    /// Whether a flush also leases for the slots it frees.
    virtual bool flush_fetches() const noexcept = 0;
};

class node_engine final : public engine {
public:
    node_engine(coordinator_impl& c, const node_options& n);

    std::vector<submit_result> submit_many(std::vector<task_request>& tasks, coordinator* owner) override;
    submit_result submit_one(task_request& task, coordinator* owner) override;
    bool cancel(const std::string& id) override;
    bool promote(const std::string& id) override;
    void steer(const std::string& id, std::vector<std::string> messages) override;
    std::optional<task_record> get(const std::string& id) const override;
    std::vector<std::optional<task_record>> get_many(std::span<const std::string> ids) const override;
    std::optional<task_record> wait_until(const std::string& id, steady::time_point deadline) override;
    boost::asio::awaitable<std::optional<task_record>> async_wait_until(std::string id,
                                                                       steady::time_point deadline) override;
    coordinator_stats stats() const override;
    std::unique_ptr<transport_watch> watch_finished(
        std::function<void(std::span<const std::string>)> on_finished) override {
        return tp->watch_finished(
            [f = std::move(on_finished)](const std::string& id) { f(std::span<const std::string>(&id, 1)); });
    }
    /// Tasks end on other nodes too, told by id only: none.
    std::unique_ptr<transport_watch> watch_outcomes(std::function<void(std::span<const finished_task>)>) override {
        return nullptr;
    }
    bool placeable(const task_options& o, std::optional<std::vector<worker_record>>& listed) override;
    std::optional<bool> drain(stop_mode mode, std::chrono::milliseconds deadline) override;
    void join_io() override {
        stop_wakeups();
        io.join();
    }

    void attempt_ended(const std::shared_ptr<attempt_state>& a, outcome o) override;
    void tick() override;
    // Leases are taken by the feed (on the tick, or after a submission or
    // a finished attempt).
    void capacity_changed(effects&) override {}
    void close_admission() override {}
    void settle_fenced(effects&) override {}
    bool runs_here() const override { return io.get_executor().running_in_this_thread(); }
    bool async_waiter_due(const std::string&) const override { return true; }

    std::vector<std::string> receive(attempt_state& a) override;
    std::vector<std::string> receive_for(attempt_state& a, steady::time_point deadline) override;
    boost::asio::awaitable<std::vector<std::string>> async_receive_for(std::shared_ptr<attempt_state> a,
                                                                      steady::time_point deadline) override;
    void progress_changed(task_entry& t) override { t.lease().progress_dirty = true; }

    std::string worker_name(std::uint64_t seq) const override;
    void worker_added(const worker&) override {}
    void worker_retired(const std::string& id) override { c.registry_removals.push_back(id); }
    // The (shared, possibly remote) registry is written by the control
    // loop (tick); it is informational, leases decide ownership. Writing it
    // on the worker's beat would let a Redis outage hold the worker's
    // heartbeat thread, stall its local liveness, and get its tasks
    // declared lost and run again elsewhere.
    void worker_beat(worker_entry& w, const std::string&, wall::time_point at) override { w.registry_due = at; }

    static constexpr const char* cancel_key = "orchcore.cancel";

private:
    friend class node_plain_path;
    friend class node_fast_path;

    // What became of one record change in run_ops.
    enum class fate : unsigned char { pending, failed, not_held, conflict, written };
    // A lease read for a start: its record.
    struct candidate {
        transport_lease l;
        task_record rec;
    };
    // A start decided under the lock, recorded in the store after it.
    struct started {
        transport_lease l;
        task_record rec;  // as written (running)
        task_status observed;
        std::shared_ptr<attempt_state> a;
        launch ln;
    };
    // Distributed waits: one look at the shared store. done: the wait is
    // over, with the terminal record (or empty: it expired meanwhile). Not
    // done: not terminal yet, or the store did not answer (keep trying
    // until the deadline). An id never seen is not_found.
    struct store_look {
        bool done = false;
        std::optional<task_record> rec;
    };
    // One control tick's work outside the lock.
    struct tick_plan {
        std::vector<std::pair<std::string, wall::time_point>> registry_writes;
        std::vector<worker_record> registry_upserts;  // beats whose free resources changed
        std::vector<std::string> dead, removed;
        std::vector<dist_op> ops;
        std::vector<std::shared_ptr<worker>> join_now;
        bool do_recover = false, do_maintenance = false, do_feed = false;
    };
    struct submit_batch;

    // node_submit.cpp
    void gate(submit_batch& b);
    void fill_records(submit_batch& b) const;
    void discard(const submit_batch& b);
    void create_records(submit_batch& b);
    bool create_one(submit_batch& b, std::size_t i, bool created, bool unsure);
    void admit_ids(submit_batch& b, coordinator* owner);
    void settle_admission(submit_batch& b, std::size_t i, const transport_admission& adm, coordinator* owner);
    void publish(submit_batch& b);

    // node_outcome.cpp
    bool owner_write(const task_record& r, task_status expected);
    dist_op make_op(task_entry& t, task_status to, std::string error, std::chrono::milliseconds delay,
                    event_kind ev, std::string detail, dist_op::why reason);
    static bool backend_failure(const std::exception& e);
    void run_ops(std::vector<dist_op>& ops);
    void hold_leases(std::vector<dist_op>& ops, std::vector<fate>& f);
    void write_batch(const std::vector<dist_op>& ops, std::vector<fate>& f);
    fate write_refused(dist_op& op, const std::exception& e);
    void settle_leases(std::vector<dist_op>& ops, std::vector<fate>& f, std::vector<bool>& io_error);
    void record_outcomes(std::vector<dist_op>& ops, const std::vector<fate>& f, const std::vector<bool>& io_error);
    void count_written(const dist_op& op);
    void announce_written(const std::vector<dist_op>& ops, const std::vector<fate>& f);
    void submit_op(dist_op op, bool on_slot);
    void flush_here();
    void flush_ops();
    void flush_round();
    std::optional<dist_op> op_for(task_entry& t, const decision& d, outcome& o, dist_op::why retry_why);

    // node_feed.cpp
    void kick_feed();
    void feed();
    bool feed_once();
    std::size_t feed_leased(std::vector<transport_lease>& got);
    std::optional<std::vector<transport_lease>> take_leases(std::size_t& n);
    [[nodiscard]] bool leased_round(std::size_t asked, std::size_t granted);
    void note_no_room();
    std::vector<candidate> read_leased(std::vector<transport_lease>& got, std::vector<dist_op>& ops,
                                       std::size_t& errors);
    dist_op settle_unstarted(const task_record& rec, const transport_lease& l, bool cancel_marked) const;
    std::vector<started> place_leased(std::vector<candidate>& cands, std::size_t got, std::size_t errors,
                                      std::vector<dist_op>& ops, std::vector<transport_lease>& handback);
    bool unplaceable_for_good(const task_record& rec, steady::time_point now);
    dist_op settle_unplaceable(const task_record& rec, const transport_lease& l) const;
    std::vector<bool> record_starts(std::vector<started>& starts, const std::vector<transport_lease>& handback);
    std::size_t launch_recorded(std::vector<started>& starts, const std::vector<bool>& ok);
    std::shared_ptr<attempt_state> start_attempt(task_record rec, const transport_lease& l, worker_entry& w,
                                                 launch& ln, bool recorded = false);

    // node_renewal.cpp
    void renew(renewal& r);
    std::vector<renewal> due_renewals();

    // node_maintenance.cpp
    void plan_tick(steady::time_point now, bool autoscale_due, std::optional<std::size_t> depth, tick_plan& p,
                   effects& fx);
    void settle_overdue(steady::time_point now, std::vector<dist_op>& ops);
    std::vector<std::string> reap_local_workers(steady::time_point now, std::vector<dist_op>& ops);
    void publish_free(const std::vector<worker_record>& recs);
    void write_registry(const std::vector<std::pair<std::string, wall::time_point>>& beats_due,
                        const std::vector<std::string>& dead, const std::vector<std::string>& removed);
    void recover();
    void maintain();

    // node_engine.cpp
    store_look look_shared(const std::string& id, bool& seen) const;
    std::vector<std::string> take_remote(attempt_state& a);
    bool settle_waiting_cancel(const std::string& id);
    bool mark_cancel(const std::string& id);

    // node_wakeups: the idle node's wait for work, and the finish
    // notifications that wake waits for tasks run elsewhere.
    void went_idle();
    void stop_wakeups();
    std::uint64_t finish_generation() const;

    coordinator_impl& c;
    const node_options& nopt;  // the coordinator's options.node
    std::shared_ptr<transport> tp;
    std::chrono::milliseconds renew_every{0}, recover_every{0};
    std::size_t leasing = 0;      // slots reserved by lease calls in flight
    // A lease was wanted while every free slot was reserved by lease calls
    // in flight: one of those calls may have been sent before a task was
    // admitted (and its wake token taken), so the round that ends short
    // leases again instead of waiting for the next token.
    bool lease_deferred = false;
    // The shared registry as the last maintenance read it (placement: can
    // any live worker of any node ever hold a request?), and since when
    // each leased task was found unplaceable everywhere.
    std::optional<std::vector<worker_record>> registry_view;  // empty: not read yet
    std::map<std::string, steady::time_point> unplaceable_since;
    std::size_t io_inflight = 0;  // transport/store work outside the lock (stop waits for it)
    serial_runs feeds;                         // feed(): one run at a time
    std::vector<dist_op> pending_ops;          // finished attempts' changes not yet carried out
    std::vector<dist_op> retry_ops;            // changes the backend failed to carry out, for the next tick
    serial_runs flushes;                       // flush_ops(): one run at a time
    bool flush_here_ok = true;                 // c.mu: the last flush round met no backend failure
    steady::time_point next_poll{}, next_recover{};
    std::chrono::milliseconds poll_backoff{0};
    // The node's I/O threads (one feeds, one flushes finished tasks'
    // changes, at a time each; a flush's first round may run on the task
    // slot that started it instead: submit_op).
    mutable asio::thread_pool io{2};
    std::unique_ptr<node_path> path;  // feed and flush steps, picked once
    // The wait for work (created on the first empty lease round), and the
    // finish notifications (each bumps finished_gen).
    std::unique_ptr<work_waker> waker;  // c.mu
    std::uint64_t finished_gen = 0;     // c.mu
    finish_watch finishes;
};

/// The feed and flush steps for `e`: through `nb` if set, else plain.
std::unique_ptr<node_path> make_node_path(node_engine& e, std::shared_ptr<node_backend> nb);

}  // namespace orchcore::detail
