#include <orchcore/redis/redis_worker_registry.hpp>

#include "record_codec.hpp"
#include "redis_util.hpp"

#include <algorithm>
#include <iostream>
#include <utility>

namespace orchcore {

namespace {

// Heartbeats are system_clock ticks as decimal strings, compared exactly
// (Lua numbers are doubles and would round nanosecond counts).
constexpr const char* int_compare = R"lua(
local function less(a, b)
  local na, nb = string.sub(a, 1, 1) == '-', string.sub(b, 1, 1) == '-'
  if na ~= nb then return na end
  if na then a, b = string.sub(b, 2), string.sub(a, 2) end
  if #a ~= #b then return #a < #b end
  return a < b
end
)lua";

// Checks that the worker set is a set before a script changes anything
// (SADD / SREM on a key of another type would fail half-way).
constexpr const char* check_set = R"lua(
local st = redis.call('TYPE', KEYS[2])['ok']
if st ~= 'set' and st ~= 'none' then
  return redis.error_reply('ORCHCORE corrupted key ' .. KEYS[2] .. ': a ' .. st .. ' where a set belongs')
end
)lua";

// KEYS: worker, set. ARGV: id, status, heartbeat, data.
const redis_script upsert_script("registry.upsert", std::string(check_set) + R"lua(
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 's', ARGV[2], 'hb', ARGV[3], 'd', ARGV[4])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
)lua");

// KEYS: worker. ARGV: heartbeat.
const redis_script heartbeat_script("registry.heartbeat", std::string(int_compare) + R"lua(
local s = redis.call('HGET', KEYS[1], 's')
if not s or s == 'error' or s == 'stopped' then return 0 end
local hb = redis.call('HGET', KEYS[1], 'hb') or '0'
if less(hb, ARGV[1]) then redis.call('HSET', KEYS[1], 'hb', ARGV[1]) end
return 1
)lua");

// KEYS: worker. ARGV: status.
const redis_script status_script("registry.set_status", R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 's', ARGV[1])
return 1
)lua");

// KEYS: set. ARGV: worker key prefix, cutoff. Marks live workers whose
// heartbeat < cutoff as error and returns them.
const redis_script reap_script("registry.reap", std::string(int_compare) + R"lua(
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local k = ARGV[1] .. id
  -- pcall: an entry that is not a hash is skipped (a failing call would
  -- end the script with the workers marked before it unreported).
  local m = redis.pcall('HMGET', k, 's', 'hb')
  if not m.err and m[1] and m[1] ~= 'error' and m[1] ~= 'stopped' and less(m[2] or '0', ARGV[2]) then
    redis.call('HSET', k, 's', 'error')
    out[#out + 1] = id
  end
end
return out
)lua");

// KEYS: set. ARGV: worker key prefix, cutoff. Removes the workers (any
// status) whose heartbeat < cutoff, and set members without a hash.
const redis_script purge_script("registry.purge", std::string(int_compare) + R"lua(
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local k = ARGV[1] .. id
  local hb = redis.call('HGET', k, 'hb')
  if not hb or less(hb, ARGV[2]) then
    redis.call('DEL', k)
    redis.call('SREM', KEYS[1], id)
    out[#out + 1] = id
  end
end
return out
)lua");

// KEYS: worker, set. ARGV: id.
const redis_script remove_script("registry.remove", std::string(check_set) + R"lua(
local n = redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return n
)lua");

// `e`: reply to HMGET key s hb d. Empty if absent; an entry that cannot be
// decoded is reported to redis_options::on_warning (with the key, the field
// and the value) and treated as absent.
std::optional<worker_record> decode(const redis_client& client, const std::string& key, const std::string& id,
                                    const redis_reply& e) {
    std::string why;
    if (e.is_error()) {
        why = "orchcore: unreadable worker entry " + key + ": " + e.str;
    } else if (e.type != redis_reply::kind::array || e.elements.size() != 3) {
        why = "orchcore: unexpected reply from redis to HMGET " + key;
    } else {
        const auto& f = e.elements;
        if (f[0].is_nil() && f[1].is_nil() && f[2].is_nil()) return std::nullopt;  // absent
        try {
            return redis_codec::decode_worker_record(key, id, f[0].str, f[1].str, f[2].str);
        } catch (const invalid_argument& ex) {
            why = std::string("orchcore: undecodable worker entry skipped: ") + ex.what();
        }
    }
    if (client.options().on_warning) client.options().on_warning(why);
    else std::cerr << why << '\n';
    return std::nullopt;
}

}  // namespace

redis_worker_registry::redis_worker_registry(std::shared_ptr<redis_client> client, std::string queue)
    : client_(std::move(client)) {
    if (!client_) throw invalid_argument("client", "null", "a redis_worker_registry needs a redis_client");
    base_ = redis_detail::key_base(client_->options().prefix, queue);
    set_key_ = base_ + ":workers";
}

void redis_worker_registry::upsert(const worker_record& w) {
    if (w.id.empty()) throw invalid_argument("worker id", "\"\"", "must not be empty");
    const std::vector<std::string> keys{worker_key(w.id), set_key_};
    const std::vector<std::string> args{w.id, std::string(to_string(w.status)),
                                        std::to_string(redis_detail::to_ticks(w.last_heartbeat)),
                                        redis_codec::encode_worker_data(w)};
    client_->eval(upsert_script, keys, args, redis_retry::idempotent);
}

bool redis_worker_registry::heartbeat(const std::string& id, std::chrono::system_clock::time_point at) {
    const std::vector<std::string> keys{worker_key(id)};
    const std::vector<std::string> args{std::to_string(redis_detail::to_ticks(at))};
    return client_->eval(heartbeat_script, keys, args, redis_retry::idempotent).integer == 1;
}

bool redis_worker_registry::set_status(const std::string& id, worker_status s) {
    const std::vector<std::string> keys{worker_key(id)};
    const std::vector<std::string> args{std::string(to_string(s))};
    return client_->eval(status_script, keys, args, redis_retry::idempotent).integer == 1;
}

std::optional<worker_record> redis_worker_registry::get(const std::string& id) const {
    const auto key = worker_key(id);
    return decode(*client_, key, id, client_->command({"HMGET", key, "s", "hb", "d"}));
}

std::vector<worker_record> redis_worker_registry::list(const worker_filter& f) const {
    const auto members = client_->command({"SMEMBERS", set_key_});
    const auto& ids = redis_detail::expect_array(members, "SMEMBERS");
    std::vector<std::vector<std::string>> cmds;
    cmds.reserve(ids.size());
    for (const auto& id : ids) cmds.push_back({"HMGET", worker_key(id.str), "s", "hb", "d"});
    const auto replies = client_->pipeline(cmds);
    std::vector<worker_record> out;
    for (std::size_t i = 0; i < ids.size(); ++i)
        if (auto w = decode(*client_, worker_key(ids[i].str), ids[i].str, replies[i]); w && f.matches(*w))
            out.push_back(std::move(*w));
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    return out;
}

std::vector<std::string> redis_worker_registry::reap_stale(std::chrono::system_clock::time_point now,
                                                           std::chrono::milliseconds timeout) {
    const auto since_epoch = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
    if (timeout.count() < 0 || timeout >= since_epoch) return {};  // nobody can be silent that long
    const auto cutoff = now - std::chrono::duration_cast<std::chrono::system_clock::duration>(timeout);
    const std::vector<std::string> keys{set_key_};
    const std::vector<std::string> args{base_ + ":worker:", std::to_string(redis_detail::to_ticks(cutoff))};
    const auto reply = client_->eval(reap_script, keys, args);
    std::vector<std::string> out;
    for (const auto& e : redis_detail::expect_array(reply, "registry.reap")) out.push_back(e.str);
    std::sort(out.begin(), out.end());
    return out;
}

bool redis_worker_registry::remove(const std::string& id) {
    const std::vector<std::string> keys{worker_key(id), set_key_};
    const std::vector<std::string> args{id};
    return client_->eval(remove_script, keys, args, redis_retry::idempotent).integer == 1;
}

std::vector<std::string> redis_worker_registry::purge_silent(std::chrono::system_clock::time_point now,
                                                             std::chrono::milliseconds silence) {
    const auto since_epoch = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
    if (silence.count() < 0 || silence >= since_epoch) return {};  // nobody can be silent that long
    const auto cutoff = now - std::chrono::duration_cast<std::chrono::system_clock::duration>(silence);
    const std::vector<std::string> keys{set_key_};
    const std::vector<std::string> args{base_ + ":worker:", std::to_string(redis_detail::to_ticks(cutoff))};
    const auto reply = client_->eval(purge_script, keys, args, redis_retry::idempotent);
    std::vector<std::string> out;
    for (const auto& e : redis_detail::expect_array(reply, "registry.purge")) out.push_back(e.str);
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace orchcore
