// A task in the coordinator's table: its record and where it waits or runs.
#pragma once

#include "attempt.hpp"
#include "clock.hpp"
#include "entry_record.hpp"

#include <orchcore/admission_result.hpp>
#include <orchcore/task.hpp>

#include <map>
#include <memory>
#include <optional>
#include <vector>

namespace orchcore::detail {

enum class location : std::uint8_t { none, queue, ready, parked, delayed, running };

// Distributed mode: the transport lease this node holds for the attempt.
struct lease_state {
    std::uint64_t token = 0;
    wall::time_point held_until{};  // lease deadline as last granted or extended
    steady::time_point next_renew{};
    bool renewing = false;        // a renewal is in flight outside the lock
    bool progress_dirty = false;  // progress not yet written to the store
};

struct task_entry {
    using delayed_map = std::multimap<steady::time_point, std::string>;

    entry_record rec;
    std::shared_ptr<attempt_state> attempt;
    job_id queue_id = 0;  // its id in the admission queue while there
    opt_time<steady::time_point> turn_deadline;  // current attempt
    std::uint64_t terminal_event_seq = 0;  // emit() number of its terminal event
    std::uint64_t store_seq = 0;           // store_io number of its last write (local mode)
    location where = location::none;
    bool cancel_requested = false;

    // Rarely set (a whole-task timeout, a cancellation, steering, a delayed
    // run, a lease): allocated by the first of them.
    opt_time<steady::time_point> deadline() const noexcept {  // whole task
        return more_ ? more_->deadline : opt_time<steady::time_point>{};
    }
    void set_deadline(steady::time_point at) { more().deadline = at; }
    steady::time_point cancel_deadline() const noexcept { return more_ ? more_->cancel_deadline : steady::time_point{}; }
    void set_cancel_deadline(steady::time_point at) { more().cancel_deadline = at; }
    // Steering messages not yet received.
    std::vector<std::string>& mailbox() { return more().mailbox; }
    std::vector<std::string> take_mailbox() {
        std::vector<std::string> out;
        if (more_) out.swap(more_->mailbox);
        return out;
    }
    void drop_mailbox() noexcept {
        if (more_) std::vector<std::string>().swap(more_->mailbox);
    }

    // Its place among the delayed tasks while it waits there.
    delayed_map::iterator delayed_it() const noexcept { return more_ ? more_->delayed_it : delayed_map::iterator{}; }
    void set_delayed_it(delayed_map::iterator it) { more().delayed_it = it; }
    // Distributed mode only: a local task has none and pays nothing for it.
    lease_state& lease() { return more().lease; }
    const lease_state& lease() const noexcept {
        static const lease_state none{};
        return more_ ? more_->lease : none;
    }

private:
    struct extras {
        std::vector<std::string> mailbox;  // not a deque: an empty deque allocates
        opt_time<steady::time_point> deadline;
        steady::time_point cancel_deadline{};
        delayed_map::iterator delayed_it{};
        lease_state lease;
    };
    extras& more() {
        if (!more_) more_ = std::make_unique<extras>();
        return *more_;
    }
    std::unique_ptr<extras> more_;
};

}  // namespace orchcore::detail
