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

struct task_entry {
    entry_record rec;
    std::shared_ptr<attempt_state> attempt;
    // Steering messages not yet received; allocated by the first steer().
    std::unique_ptr<std::vector<std::string>> mailbox;
    job_id queue_id = 0;  // its id in the admission queue while there
    std::multimap<steady::time_point, std::string>::iterator delayed_it{};
    opt_time<steady::time_point> deadline;       // whole task
    opt_time<steady::time_point> turn_deadline;  // current attempt
    steady::time_point cancel_deadline{};
    std::uint64_t terminal_event_seq = 0;  // emit() number of its terminal event
    std::uint64_t store_seq = 0;           // store_io number of its last write (local mode)
    location where = location::none;
    bool cancel_requested = false;
    // Distributed mode: the transport lease this node holds for the attempt.
    bool renewing = false;        // a renewal is in flight outside the lock
    bool progress_dirty = false;  // progress not yet written to the store
    std::uint64_t token = 0;
    wall::time_point held_until{};  // lease deadline as last granted or extended
    steady::time_point next_renew{};
};

}  // namespace orchcore::detail
