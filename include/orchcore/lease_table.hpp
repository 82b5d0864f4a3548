// Leases with fencing tokens, as a pure state machine (time passed in).
//
// A lease is one attempt's exclusive claim on a task. Each grant gets a new
// token, strictly greater than every token granted before by this table, so
// a worker presumed dead that comes back late holds a stale token: its
// complete / fail / extend / heartbeat / steering read is refused, and the
// refusal is counted. Expired leases are handed back by expire() exactly
// once, for the owner to requeue.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace orchcore {

struct lease {
    std::string task_id;
    std::string worker_id;
    std::uint32_t attempt = 0;
    std::uint64_t token = 0;
    std::chrono::steady_clock::time_point deadline{};
};

class lease_table {
public:
    using clock = std::chrono::steady_clock;

    /// Grants a lease on a task that has none. Returns empty if the task is
    /// already leased (a task never runs twice at once).
    std::optional<lease> grant(const std::string& task_id, const std::string& worker_id, std::uint32_t attempt,
                               clock::time_point now, clock::duration length) {
        auto [it, inserted] = leases_.try_emplace(task_id);
        if (!inserted) return std::nullopt;
        it->second = lease{task_id, worker_id, attempt, ++last_token_, now + length};
        return it->second;
    }

    /// True if `token` is the current lease of `task_id` (and counts a
    /// refusal otherwise).
    bool validate(const std::string& task_id, std::uint64_t token) {
        auto it = leases_.find(task_id);
        if (it != leases_.end() && it->second.token == token) return true;
        ++stale_refusals_;
        return false;
    }

    /// Pushes the deadline out; refused for a stale token or an expired lease.
    bool extend(const std::string& task_id, std::uint64_t token, clock::time_point now, clock::duration length) {
        auto it = leases_.find(task_id);
        if (it == leases_.end() || it->second.token != token || it->second.deadline < now) {
            ++stale_refusals_;
            return false;
        }
        it->second.deadline = now + length;
        return true;
    }

    /// Ends a lease (completion, failure, cancellation). Refused if stale.
    std::optional<lease> release(const std::string& task_id, std::uint64_t token) {
        auto it = leases_.find(task_id);
        if (it == leases_.end() || it->second.token != token) {
            ++stale_refusals_;
            return std::nullopt;
        }
        lease l = std::move(it->second);
        leases_.erase(it);
        return l;
    }

    /// Removes and returns every lease whose deadline is before `now`.
    std::vector<lease> expire(clock::time_point now) {
        std::vector<lease> out;
        for (auto it = leases_.begin(); it != leases_.end();) {
            if (it->second.deadline < now) {
                out.push_back(std::move(it->second));
                it = leases_.erase(it);
            } else {
                ++it;
            }
        }
        return out;
    }

    /// Removes and returns every lease held by a worker (declared dead).
    std::vector<lease> revoke_worker(const std::string& worker_id) {
        std::vector<lease> out;
        for (auto it = leases_.begin(); it != leases_.end();) {
            if (it->second.worker_id == worker_id) {
                out.push_back(std::move(it->second));
                it = leases_.erase(it);
            } else {
                ++it;
            }
        }
        return out;
    }

    std::optional<lease> find(const std::string& task_id) const {
        auto it = leases_.find(task_id);
        if (it == leases_.end()) return std::nullopt;
        return it->second;
    }

    std::size_t size() const noexcept { return leases_.size(); }
    std::uint64_t stale_refusals() const noexcept { return stale_refusals_; }

private:
    std::unordered_map<std::string, lease> leases_;
    std::uint64_t last_token_ = 0;
    std::uint64_t stale_refusals_ = 0;
};

}  // namespace orchcore
