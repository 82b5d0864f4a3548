// redis_worker_registry: the worker_registry interface
// (<orchcore/worker_registry.hpp>) over Redis, so coordinators on several
// machines see each other's workers.
//
// Keys: {<prefix>:<queue>}:workers (SET of ids) and
// {<prefix>:<queue>}:worker:<id> (HASH: s status, hb last heartbeat in
// system_clock ticks, d the rest as JSON). heartbeat, set_status and
// reap_stale are Lua scripts: a reaped (error) or stopped worker cannot
// heartbeat back, and racing reapers each report a dead worker once.
// purge_silent removes the hash and the set entry together (one script);
// racing purgers each report a removed worker once.
// Undecodable worker entries are skipped by list() and reported as absent
// by get(); each time, a warning naming the key, the field and the value
// goes to redis_options::on_warning (stderr if it is empty).
#pragma once

#include <orchcore/redis/redis_client.hpp>
#include <orchcore/worker_registry.hpp>

#include <memory>
#include <string>

namespace orchcore {

class redis_worker_registry final : public worker_registry {
public:
    redis_worker_registry(std::shared_ptr<redis_client> client, std::string queue);

    void upsert(const worker_record& w) override;
    bool heartbeat(const std::string& id, std::chrono::system_clock::time_point at) override;
    bool set_status(const std::string& id, worker_status s) override;
    std::optional<worker_record> get(const std::string& id) const override;
    std::vector<worker_record> list(const worker_filter& f = {}) const override;
    std::vector<std::string> reap_stale(std::chrono::system_clock::time_point now,
                                        std::chrono::milliseconds timeout) override;
    bool remove(const std::string& id) override;
    std::vector<std::string> purge_silent(std::chrono::system_clock::time_point now,
                                          std::chrono::milliseconds silence) override;

    const std::string& key_base() const noexcept { return base_; }

private:
    std::string worker_key(const std::string& id) const { return base_ + ":worker:" + id; }

    std::shared_ptr<redis_client> client_;
    std::string base_;
    std::string set_key_;
};

}  // namespace orchcore
