// Distributed mode: record changes and lease extensions carried out
// outside the lock.
#pragma once

#include "attempt.hpp"
#include "clock.hpp"

#include <orchcore/event_bus.hpp>
#include <orchcore/task.hpp>

#include <optional>

namespace orchcore::detail {

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

}  // namespace orchcore::detail
