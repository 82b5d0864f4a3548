// Helpers for tests that drive redis_node_backend directly.
#pragma once

#include <orchcore/task.hpp>
#include <orchcore/task_store.hpp>
#include <orchcore/transport.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

namespace orchcore::test {

/// Creates task `id`'s queued record (type "t", created at `now`) and
/// admits it, as a submission does.
inline void create_and_admit(task_store& store, transport& tp, const std::string& id,
                             std::chrono::system_clock::time_point now) {
    task_record r;
    r.id = id;
    r.type = "t";
    r.status = task_status::queued;
    r.created_at = now;
    REQUIRE(store.create(r));
    REQUIRE(tp.admit({id}).is_accepted);
}

}  // namespace orchcore::test
