// A task in the coordinator's table: its record and where it waits or runs.
#pragma once

#include "attempt.hpp"
#include "clock.hpp"

#include <orchcore/admission_result.hpp>
#include <orchcore/task.hpp>

#include <map>
#include <optional>
#include <vector>

namespace orchcore::detail {

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
    std::uint64_t store_seq = 0;           // store_io number of its last write (local mode)
    // Distributed mode: the transport lease this node holds for the attempt.
    std::uint64_t token = 0;
    wall::time_point held_until{};  // lease deadline as last granted or extended
    steady::time_point next_renew{};
    bool renewing = false;       // a renewal is in flight outside the lock
    bool progress_dirty = false;  // progress not yet written to the store
};

}  // namespace orchcore::detail
