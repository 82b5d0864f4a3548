// The task model shared by the coordinator and every backend.
#pragma once

#include <orchcore/backoff.hpp>
#include <orchcore/priority.hpp>
#include <orchcore/resources.hpp>
#include <orchcore/task_status.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace orchcore {

/// What a submitter may specify; everything has a default.
struct task_options {
    std::optional<std::string> id{};               ///< empty: generated
    int priority = priority::normal;             ///< [0, 20]
    std::string owner{};                           ///< who to tell (free text)
    std::map<std::string, std::string> metadata{};
    std::vector<std::string> tags{};               ///< required worker tags
    std::chrono::milliseconds timeout{0};        ///< whole task across turns and retries; 0 = none
    std::chrono::milliseconds turn_timeout{0};   ///< one attempt or turn; 0 = worker's task_timeout
    std::optional<std::uint32_t> max_retries{};    ///< empty: coordinator default
    std::optional<backoff_policy> backoff{};       ///< empty: coordinator default
    /// What it needs of a worker: it runs only where these are free, and
    /// holds them until the attempt ends. Empty: fits every worker.
    resource_request resources{};
    /// Tasks with the same non-empty session key run on the same worker
    /// while it is alive and has room (see coordinator.hpp, placement).
    std::string session{};
};

/// A snapshot of a task, as the task store holds it.
struct task_record {
    std::string id{};
    std::string type{};
    std::string payload{};
    int priority = priority::normal;
    std::string owner{};
    std::map<std::string, std::string> metadata{};
    std::vector<std::string> tags{};
    std::chrono::milliseconds timeout{0};
    std::chrono::milliseconds turn_timeout{0};
    std::uint32_t max_retries = 0;
    backoff_policy backoff{};
    resource_request resources{};
    std::string session{};

    task_status status = task_status::pending;
    std::chrono::system_clock::time_point created_at{};
    std::optional<std::chrono::system_clock::time_point> started_at{};   ///< first start
    std::optional<std::chrono::system_clock::time_point> finished_at{};  ///< terminal
    std::uint32_t attempts = 0;  ///< times a worker started it (turns, retries, re-runs after a worker died)
    std::uint32_t retries = 0;   ///< failed or timed-out attempts that were retried (<= max_retries)
    std::uint32_t turns = 0;     ///< continuation turns completed
    std::uint32_t worker_losses = 0;  ///< attempts lost because their worker died
    std::string worker_id{};       ///< current or last worker
    double progress = 0.0;
    std::string progress_message{};
    std::string result{};          ///< completed: encoded result
    std::string error{};           ///< failed / timed_out / cancelled: why
};

/// The part of a task's record that tells whether and how it ended
/// (coordinator::get_outcomes): a read that copies none of the rest.
struct task_outcome {
    task_status status = task_status::pending;
    std::chrono::system_clock::time_point created_at{};
    std::optional<std::chrono::system_clock::time_point> started_at{};
    std::optional<std::chrono::system_clock::time_point> finished_at{};
    std::string result{};  ///< completed: encoded result
    std::string error{};   ///< failed / timed_out / cancelled: why

    /// The outcome part of a whole record.
    static task_outcome of(task_record r) {
        return {r.status, r.created_at, r.started_at, r.finished_at, std::move(r.result), std::move(r.error)};
    }
};

/// A task that ended and how (coordinator::watch_outcomes).
struct finished_task {
    std::string id;
    task_outcome outcome;
};

}  // namespace orchcore
