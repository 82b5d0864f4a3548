// Local mode: tasks wait in the in-process admission queue and live in the
// coordinator's task table until their TTL; records are the table's (and a
// user's store, written through).
#pragma once

#include "attempt_outcome.hpp"
#include "coordinator_impl.hpp"

#include <orchcore/any_admission_queue.hpp>

#include <array>
#include <deque>
#include <map>

namespace orchcore::detail {

class local_engine final : public engine {
public:
    explicit local_engine(coordinator_impl& c);

    std::vector<submit_result> submit_many(std::vector<task_request>& tasks, coordinator* owner) override;
    submit_result submit_one(task_request& task, coordinator* owner) override;
    bool cancel(const std::string& id) override;
    bool promote(const std::string& id) override;
    void steer(const std::string& id, std::vector<std::string> messages) override;
    std::optional<task_record> get(const std::string& id) const override;
    std::optional<task_status> status(const std::string& id) const override;
    std::vector<std::optional<task_record>> get_many(std::span<const std::string> ids) const override;
    std::vector<std::optional<task_outcome>> get_outcomes(std::span<const std::string> ids) const override;
    std::optional<task_record> wait_until(const std::string& id, steady::time_point deadline) override;
    boost::asio::awaitable<std::optional<task_record>> async_wait_until(std::string id,
                                                                       steady::time_point deadline) override;
    coordinator_stats stats() const override;
    std::unique_ptr<transport_watch> watch_finished(
        std::function<void(std::span<const std::string>)> on_finished) override;
    std::unique_ptr<transport_watch> watch_outcomes(
        std::function<void(std::span<const finished_task>)> on_finished) override;
    bool placeable(const task_options& o, std::optional<std::vector<worker_record>>& listed) override;
    std::optional<bool> drain(stop_mode mode, std::chrono::milliseconds deadline) override;

    void attempt_ended(const std::shared_ptr<attempt_state>& a, outcome o) override;
    void tick() override;
    void capacity_changed(effects& fx) override { dispatch(fx); }
    void close_admission() override;
    void settle_fenced(effects& fx) override;
    bool runs_here() const override { return false; }
    bool async_waiter_due(const std::string& task_id) const override;

    std::vector<std::string> receive(attempt_state& a) override;
    std::vector<std::string> receive_for(attempt_state& a, steady::time_point deadline) override;
    boost::asio::awaitable<std::vector<std::string>> async_receive_for(std::shared_ptr<attempt_state> a,
                                                                      steady::time_point deadline) override;
    void progress_changed(task_entry& t) override;

    std::string worker_name(std::uint64_t seq) const override;
    void worker_added(const worker& w) override;
    void worker_retired(const std::string& id) override;
    void worker_beat(worker_entry& w, const std::string& id, wall::time_point at) override;

private:
    template <class T, class Take>
    std::vector<std::optional<T>> read_many(std::span<const std::string> ids, Take take) const;
    // local_admission.cpp
    void require_handler(const std::string& type) const;
    // A record created in the user's store before admission (create_first).
    struct creation {
        enum { not_written, created, taken } state = not_written;
        wall::time_point created_at;
    };
    creation create_first(task_request& r);
    void admit_created(task_request& r, const creation& made, submit_result& out, coordinator* owner, effects& fx);
    void admit_local(std::string& type, std::string& payload, task_options& o, submit_result& out,
                     coordinator* owner, effects& fx, wall::time_point created_at);
    void reject(submit_result& out, const task_options& o, rejection_reason r, std::string_view why,
                std::chrono::milliseconds retry_after);
    bool enqueue(const std::string& id, const task_options& o, submit_result& out, job_id& queue_id, effects& fx);
    task_table::iterator insert_entry(const task_options& o);
    std::vector<submit_result> submit_many_unstored(std::vector<task_request>& tasks, coordinator* owner);
    void fill_record(task_entry& t, std::string& type, std::string& payload, task_options& o,
                     wall::time_point created_at) const;

    // local_table.cpp
    static std::size_t ttl_class(task_status s) noexcept;
    std::chrono::milliseconds ttl_for(task_status s) const;
    void unlink_waiting(task_entry& t);
    void finish(task_entry& t, task_status to, std::string error, effects& fx);
    void requeue(task_entry& t, std::chrono::milliseconds delay, bool front);
    void start_attempt(task_entry& t, worker_entry& w, effects& fx);
    void dispatch(effects& fx);
    void park(const std::string& id);
    void carry_out(task_entry& t, const decision& d, outcome& o, effects& fx);
    bool settled(const task_entry& t) const;

    // local_tick.cpp
    void promote_due(steady::time_point now);
    void judge_running(steady::time_point now, effects& fx);
    void expire_waiting(steady::time_point now, effects& fx);
    void reap_dead_workers(const std::vector<std::string>& stale, effects& fx);
    void expire_finished(steady::time_point now);
    void fail_unplaceable(steady::time_point now, effects& fx);

    // local_engine.cpp
    std::vector<std::string> drain_mailbox(attempt_state& a);
    std::size_t unfinished() const;

    coordinator_impl& c;
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
    std::multimap<steady::time_point, std::string> deadlines;  // tasks with a whole-task timeout
    std::uint64_t attempt_seq = 0;  // fencing tokens
    // Parked tasks no worker could ever hold, since when (placement_wait).
    std::map<std::string, steady::time_point> unplaceable_since;
    steady::time_point next_unplaceable_check{};
};

}  // namespace orchcore::detail
