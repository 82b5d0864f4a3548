// worker_registry: which workers exist, what they offer, and when each was
// last heard from. The coordinator registers its workers here and records
// their heartbeats; health checks ask it for stale workers. The in-memory
// registry is the default; the Redis adapter implements the same interface
// so coordinators on several machines see each other's workers.
#pragma once

#include <orchcore/resources.hpp>
#include <orchcore/worker_status.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace orchcore {

struct worker_record {
    std::string id{};
    worker_status status = worker_status::idle;
    std::vector<std::string> tags{};
    std::size_t max_concurrent = 1;
    std::string host{};  ///< free text: hostname, pid...
    std::chrono::system_clock::time_point registered_at{};
    std::chrono::system_clock::time_point last_heartbeat{};
    resource_inventory resources{};  ///< what the worker offers (worker_options::resources)
    resource_inventory free{};       ///< what of it is not held, as of the last publication
};

struct worker_filter {
    std::optional<worker_status> status{};
    std::vector<std::string> tags{};  ///< the worker must have all of them

    bool matches(const worker_record& w) const {
        if (status && w.status != *status) return false;
        return std::all_of(tags.begin(), tags.end(), [&](const std::string& t) {
            return std::find(w.tags.begin(), w.tags.end(), t) != w.tags.end();
        });
    }
};

class worker_registry {
public:
    virtual ~worker_registry() = default;

    /// Registers or replaces a worker.
    virtual void upsert(const worker_record& w) = 0;
    /// Records a heartbeat. Returns false for an unknown worker or one
    /// already declared dead (status error/stopped): a reaped worker cannot
    /// heartbeat its way back under the same id.
    virtual bool heartbeat(const std::string& id, std::chrono::system_clock::time_point at) = 0;
    virtual bool set_status(const std::string& id, worker_status s) = 0;
    virtual std::optional<worker_record> get(const std::string& id) const = 0;
    virtual std::vector<worker_record> list(const worker_filter& f = {}) const = 0;
    /// Marks every live worker silent since before `now - timeout` as
    /// error (dead) and returns their ids; each is returned once.
    virtual std::vector<std::string> reap_stale(std::chrono::system_clock::time_point now,
                                                std::chrono::milliseconds timeout) = 0;
    virtual bool remove(const std::string& id) = 0;
    /// Removes every worker, whatever its status, silent since before
    /// `now - silence`, and returns their ids: the entries a crashed
    /// process left behind (a clean stop removes its own). The default
    /// lists and removes; backends override it with one atomic step.
    virtual std::vector<std::string> purge_silent(std::chrono::system_clock::time_point now,
                                                  std::chrono::milliseconds silence) {
        std::vector<std::string> out;
        for (const auto& w : list({}))
            if (silent_since_before(w, now, silence) && remove(w.id)) out.push_back(w.id);
        return out;
    }

protected:
    /// Whether `w` was last heard from before `now - silence` (no overflow
    /// for any silence: one longer than the clock's epoch is never over).
    static bool silent_since_before(const worker_record& w, std::chrono::system_clock::time_point now,
                                    std::chrono::milliseconds silence) {
        const auto since_epoch = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
        if (silence.count() < 0 || silence >= since_epoch) return false;
        return w.last_heartbeat < now - silence;
    }
};

class memory_worker_registry final : public worker_registry {
public:
    void upsert(const worker_record& w) override {
        std::lock_guard lk(mutex_);
        workers_[w.id] = w;
    }

    bool heartbeat(const std::string& id, std::chrono::system_clock::time_point at) override {
        std::lock_guard lk(mutex_);
        auto it = workers_.find(id);
        if (it == workers_.end() || !alive(it->second.status)) return false;
        it->second.last_heartbeat = std::max(it->second.last_heartbeat, at);
        return true;
    }

    bool set_status(const std::string& id, worker_status s) override {
        std::lock_guard lk(mutex_);
        auto it = workers_.find(id);
        if (it == workers_.end()) return false;
        it->second.status = s;
        return true;
    }

    std::optional<worker_record> get(const std::string& id) const override {
        std::lock_guard lk(mutex_);
        auto it = workers_.find(id);
        if (it == workers_.end()) return std::nullopt;
        return it->second;
    }

    std::vector<worker_record> list(const worker_filter& f) const override {
        std::lock_guard lk(mutex_);
        std::vector<worker_record> out;
        for (const auto& [id, w] : workers_)
            if (f.matches(w)) out.push_back(w);
        return out;
    }

    std::vector<std::string> reap_stale(std::chrono::system_clock::time_point now,
                                        std::chrono::milliseconds timeout) override {
        std::lock_guard lk(mutex_);
        std::vector<std::string> out;
        for (auto& [id, w] : workers_) {
            if (alive(w.status) && silent_since_before(w, now, timeout)) {
                w.status = worker_status::error;
                out.push_back(id);
            }
        }
        return out;
    }

    bool remove(const std::string& id) override {
        std::lock_guard lk(mutex_);
        return workers_.erase(id) == 1;
    }

    std::vector<std::string> purge_silent(std::chrono::system_clock::time_point now,
                                          std::chrono::milliseconds silence) override {
        std::lock_guard lk(mutex_);
        std::vector<std::string> out;
        for (auto it = workers_.begin(); it != workers_.end();) {
            if (silent_since_before(it->second, now, silence)) {
                out.push_back(it->first);
                it = workers_.erase(it);
            } else {
                ++it;
            }
        }
        return out;
    }

private:
    static bool alive(worker_status s) { return s != worker_status::error && s != worker_status::stopped; }

    mutable std::mutex mutex_;
    std::map<std::string, worker_record> workers_;
};

}  // namespace orchcore
