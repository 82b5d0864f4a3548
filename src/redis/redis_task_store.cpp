#include <orchcore/redis/redis_task_store.hpp>

#include "record_codec.hpp"
#include "redis_util.hpp"

#include <algorithm>
#include <limits>
#include <string>
#include <utility>

namespace orchcore {

namespace {

// Every script first checks the type of each key it writes (a key of the
// wrong type would make a later call fail half-way through the script, with
// the calls before it applied): nothing is changed if one is wrong.
constexpr const char* expect_types = R"lua(
local function expect(key, want)
  local t = redis.call('TYPE', key)['ok']
  if t ~= want and t ~= 'none' then
    error({err = 'ORCHCORE corrupted key ' .. key .. ': a ' .. t .. ' where a ' .. want .. ' belongs'})
  end
end
)lua";

std::string script_text(const char* check, const char* body = "") {
    return std::string(expect_types) + check + body;
}

// KEYS: record, index, finished zset. ARGV: id, status, meta, payload,
// result, finished ms ('' = not terminal), expire-at ms (0 = none).
constexpr const char* write_tail = R"lua(
redis.call('HSET', KEYS[1], 's', ARGV[2], 'd', ARGV[3], 'p', ARGV[4], 'r', ARGV[5])
redis.call('SADD', KEYS[2], ARGV[1])
if ARGV[6] ~= '' then redis.call('ZADD', KEYS[3], ARGV[6], ARGV[1]) end
if tonumber(ARGV[7]) > 0 then redis.call('PEXPIREAT', KEYS[1], ARGV[7]) end
return 1
)lua";

const redis_script create_script("store.create", script_text(R"lua(
expect(KEYS[2], 'set')
expect(KEYS[3], 'zset')
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
)lua", write_tail));

// As create, plus ARGV[8]: the expected status.
const redis_script update_script("store.update", script_text(R"lua(
expect(KEYS[2], 'set')
expect(KEYS[3], 'zset')
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then return 0 end
if redis.call('HGET', KEYS[1], 's') ~= ARGV[8] then return 0 end
)lua", write_tail));

// KEYS: record, index, finished x3. ARGV: id.
const redis_script erase_script("store.erase", script_text(R"lua(
expect(KEYS[2], 'set')
for i = 3, 5 do expect(KEYS[i], 'zset') end
local n = redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
for i = 3, 5 do redis.call('ZREM', KEYS[i], ARGV[1]) end
return n
)lua"));

// KEYS: index, finished completed, failed, cancelled. ARGV: record key
// prefix, then the cutoff (unix ms) of each finished set.
const redis_script expire_script("store.expire", script_text(R"lua(
expect(KEYS[1], 'set')
for i = 2, 4 do expect(KEYS[i], 'zset') end
local out = {}
for i = 2, 4 do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', ARGV[i])
  for _, id in ipairs(ids) do
    redis.call('DEL', ARGV[1] .. id)
    redis.call('SREM', KEYS[1], id)
    redis.call('ZREM', KEYS[i], id)
    out[#out + 1] = id
  end
end
return out
)lua"));

// KEYS: record, index, dead hash, dead record, finished x3.
// ARGV: id, meta as read, is-hash flag, reason.
const redis_script bury_script("store.dead_letter", script_text(R"lua(
expect(KEYS[2], 'set')
expect(KEYS[3], 'hash')
for i = 5, 7 do expect(KEYS[i], 'zset') end
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'none' then return 0 end
if ARGV[3] == '1' then
  if t ~= 'hash' or (redis.call('HGET', KEYS[1], 'd') or '') ~= ARGV[2] then return 0 end
end
redis.call('RENAME', KEYS[1], KEYS[4])
redis.call('PERSIST', KEYS[4])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
redis.call('SREM', KEYS[2], ARGV[1])
for i = 5, 7 do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 1
)lua"));

}  // namespace

std::string redis_task_store::encode_meta(const task_record& r) { return redis_codec::encode_task_meta(r); }

redis_task_store::redis_task_store(std::shared_ptr<redis_client> client, std::string queue,
                                   redis_task_store_options o)
    : client_(std::move(client)), options_(o) {
    if (!client_) throw invalid_argument("client", "null", "a redis_task_store needs a redis_client");
    for (auto [name, v] : {std::pair{"completed_ttl", o.completed_ttl}, std::pair{"failed_ttl", o.failed_ttl},
                           std::pair{"cancelled_ttl", o.cancelled_ttl}})
        if (v.count() < 0) throw invalid_argument(name, std::to_string(v.count()) + "ms", "must be >= 0");
    base_ = redis_detail::key_base(client_->options().prefix, queue);
    index_key_ = base_ + ":tasks";
    dead_key_ = base_ + ":dead";
    finished_completed_ = base_ + ":finished:completed";
    finished_failed_ = base_ + ":finished:failed";
    finished_cancelled_ = base_ + ":finished:cancelled";
}

const std::string& redis_task_store::finished_key(task_status s) const {
    switch (s) {
        case task_status::completed: return finished_completed_;
        case task_status::cancelled: return finished_cancelled_;
        default: return finished_failed_;
    }
}

std::size_t redis_task_store::max_value_bytes() const noexcept { return client_->options().max_payload_bytes; }

void redis_task_store::check_sizes(const task_record& r) const {
    const auto limit = client_->options().max_payload_bytes;
    if (r.payload.size() > limit)
        throw invalid_argument("payload", std::to_string(r.payload.size()) + " bytes",
                               "exceeds max_payload_bytes = " + std::to_string(limit));
    if (r.result.size() > limit)
        throw invalid_argument("result", std::to_string(r.result.size()) + " bytes",
                               "exceeds max_payload_bytes = " + std::to_string(limit));
    if (r.id.empty()) throw invalid_argument("id", "\"\"", "must not be empty");
    redis_codec::check_task_record(r);
}

std::vector<std::string> redis_task_store::write_args(const task_record& r) const {
    std::string finished, expire_at = "0";
    if (is_terminal(r.status) && r.finished_at) {
        const auto fin_ms = redis_detail::to_ms(*r.finished_at);
        finished = std::to_string(fin_ms);
        const auto ttl = r.status == task_status::completed   ? options_.completed_ttl
                         : r.status == task_status::cancelled ? options_.cancelled_ttl
                                                              : options_.failed_ttl;
        // A TTL that reaches past the largest unix-ms time (any TTL up to
        // milliseconds::max() is allowed) sets no Redis expiry: it never comes.
        const bool reachable =
            ttl.count() <= std::numeric_limits<std::int64_t>::max() - std::max<std::int64_t>(fin_ms, 0);
        if (ttl.count() > 0 && reachable)
            expire_at = std::to_string(std::max<std::int64_t>(1, fin_ms + ttl.count()));
    }
    return {r.id, std::string(to_string(r.status)), encode_meta(r), r.payload, r.result, finished, expire_at};
}

bool redis_task_store::create(const task_record& r) {
    check_sizes(r);
    const std::vector<std::string> keys{record_key(r.id), index_key_, finished_key(r.status)};
    return client_->eval(create_script, keys, write_args(r)).integer == 1;
}

namespace {
// Runs `n` calls of one script (call k built by make_call(k)) in pipelines
// of 1,000 (one round trip each); result k: whether call k returned 1.
template <class MakeCall>
std::vector<bool> eval_batch(redis_client& client, const redis_script& script, std::string_view name, std::size_t n,
                             MakeCall make_call) {
    std::vector<bool> out;
    out.reserve(n);
    constexpr std::size_t chunk = 1000;
    std::vector<redis_script_call> part;
    for (std::size_t i = 0; i < n; i += chunk) {
        part.clear();
        for (std::size_t k = i; k < std::min(n, i + chunk); ++k) part.push_back(make_call(k));
        for (const auto& reply : client.eval_pipeline(script, part)) {
            if (reply.is_error())
                throw redis_error(redis_failure::server, "orchcore: redis script " + std::string(name) +
                                                             " failed at " + client.options().describe() + ": " +
                                                             reply.str);
            out.push_back(reply.integer == 1);
        }
    }
    return out;
}
}  // namespace

std::vector<bool> redis_task_store::create_many(std::span<const task_record> rs) {
    for (const auto& r : rs) check_sizes(r);
    return eval_batch(*client_, create_script, "store.create", rs.size(), [&](std::size_t k) {
        return redis_script_call{{record_key(rs[k].id), index_key_, finished_key(rs[k].status)}, write_args(rs[k])};
    });
}

bool redis_task_store::update(const task_record& r, task_status expected) {
    if (r.status != expected) check_transition(expected, r.status);
    check_sizes(r);
    const std::vector<std::string> keys{record_key(r.id), index_key_, finished_key(r.status)};
    auto args = write_args(r);
    args.emplace_back(to_string(expected));
    return client_->eval(update_script, keys, args).integer == 1;
}

bool redis_task_store::erase(const std::string& id) {
    const std::vector<std::string> keys{record_key(id), index_key_, finished_completed_, finished_failed_,
                                        finished_cancelled_};
    const std::vector<std::string> args{id};
    return client_->eval(erase_script, keys, args).integer == 1;
}

void redis_task_store::bury(const std::string& id, const std::string& raw_d, bool is_hash,
                            const std::string& reason) const {
    const std::vector<std::string> keys{record_key(id),       index_key_,       dead_key_,         base_ + ":dead:" + id,
                                        finished_completed_, finished_failed_, finished_cancelled_};
    const std::vector<std::string> args{id, raw_d, is_hash ? "1" : "0", reason};
    client_->eval(bury_script, keys, args);
}

// `fields`: the reply to HMGET key s d p r (or an error reply).
std::optional<task_record> redis_task_store::decode_or_bury(const std::string& id, const redis_reply& fields) const {
    if (fields.is_error()) {
        // WRONGTYPE: something that is not a hash sits under the record key.
        bury(id, {}, false, "not a hash: " + fields.str);
        return std::nullopt;
    }
    if (fields.type != redis_reply::kind::array || fields.elements.size() != 4) return std::nullopt;
    const auto& e = fields.elements;
    if (e[0].is_nil() && e[1].is_nil() && e[2].is_nil() && e[3].is_nil()) return std::nullopt;  // absent
    const auto key = record_key(id);
    try {
        if (e[0].is_nil()) redis_codec::corrupt(key, "s", "", "missing status");
        if (e[1].is_nil()) redis_codec::corrupt(key, "d", "", "missing record data");
        return redis_codec::decode_task_record(key, id, e[0].str, e[1].str, e[2].str, e[3].str);
    } catch (const invalid_argument& ex) {
        bury(id, e[1].str, true, std::string("undecodable record: ") + ex.what());
        return std::nullopt;
    }
}

std::optional<task_record> redis_task_store::get(const std::string& id) const {
    return decode_or_bury(id, client_->command({"HMGET", record_key(id), "s", "d", "p", "r"}));
}

std::vector<std::optional<task_record>> redis_task_store::get_many(std::span<const std::string> ids) const {
    std::vector<std::optional<task_record>> out;
    out.reserve(ids.size());
    constexpr std::size_t chunk = 1000;
    std::vector<std::vector<std::string>> cmds;
    for (std::size_t i = 0; i < ids.size(); i += chunk) {
        const auto part = ids.subspan(i, std::min(chunk, ids.size() - i));
        cmds.clear();
        for (const auto& id : part) cmds.push_back({"HMGET", record_key(id), "s", "d", "p", "r"});
        const auto replies = client_->pipeline(cmds);
        for (std::size_t k = 0; k < part.size(); ++k) out.push_back(decode_or_bury(part[k], replies[k]));
    }
    return out;
}

std::vector<bool> redis_task_store::update_many(std::span<const task_record> rs, std::span<const task_status> expected) {
    check_batch(rs.size(), expected.size());
    for (std::size_t i = 0; i < rs.size(); ++i) {
        if (rs[i].status != expected[i]) check_transition(expected[i], rs[i].status);
        check_sizes(rs[i]);
    }
    return eval_batch(*client_, update_script, "store.update", rs.size(), [&](std::size_t k) {
        auto args = write_args(rs[k]);
        args.emplace_back(to_string(expected[k]));
        return redis_script_call{{record_key(rs[k].id), index_key_, finished_key(rs[k].status)}, std::move(args)};
    });
}

std::vector<task_record> redis_task_store::list(const task_filter& f) const {
    std::vector<task_record> out;
    std::string cursor = "0";
    do {
        const auto page = client_->command({"SSCAN", index_key_, cursor, "COUNT", "256"});
        const auto& parts = redis_detail::expect_array(page, "SSCAN", 2);
        cursor = parts[0].str;
        const auto& ids = parts[1].elements;
        if (ids.empty()) continue;
        std::vector<std::vector<std::string>> cmds;
        cmds.reserve(ids.size());
        for (const auto& id : ids) cmds.push_back({"HMGET", record_key(id.str), "s", "d", "p", "r"});
        const auto replies = client_->pipeline(cmds);
        for (std::size_t i = 0; i < ids.size() && out.size() < f.limit; ++i) {
            auto r = decode_or_bury(ids[i].str, replies[i]);
            if (r && f.matches(*r)) out.push_back(std::move(*r));
        }
    } while (cursor != "0" && out.size() < f.limit);
    return out;
}

std::vector<std::string> redis_task_store::expire(std::chrono::system_clock::time_point now,
                                                  std::chrono::milliseconds completed_ttl,
                                                  std::chrono::milliseconds failed_ttl,
                                                  std::chrono::milliseconds cancelled_ttl) {
    const auto now_ms = redis_detail::to_ms(now);
    // A record with a Redis-side TTL is gone once that TTL passed: report it
    // (and drop its index entries) then, even if the caller's TTL is longer.
    auto effective = [](std::chrono::milliseconds arg, std::chrono::milliseconds in_redis) {
        return in_redis.count() > 0 ? std::min(arg, in_redis) : arg;
    };
    completed_ttl = effective(completed_ttl, options_.completed_ttl);
    failed_ttl = effective(failed_ttl, options_.failed_ttl);
    cancelled_ttl = effective(cancelled_ttl, options_.cancelled_ttl);
    const std::vector<std::string> keys{index_key_, finished_completed_, finished_failed_, finished_cancelled_};
    const std::vector<std::string> args{base_ + ":task:", std::to_string(now_ms - completed_ttl.count()),
                                        std::to_string(now_ms - failed_ttl.count()),
                                        std::to_string(now_ms - cancelled_ttl.count())};
    const auto reply = client_->eval(expire_script, keys, args);
    std::vector<std::string> out;
    for (const auto& e : redis_detail::expect_array(reply, "store.expire")) out.push_back(e.str);
    return out;
}

std::size_t redis_task_store::size() const {
    return static_cast<std::size_t>(
        redis_detail::expect_count(client_->command({"SCARD", index_key_}), "SCARD " + index_key_));
}

std::vector<dead_letter> redis_task_store::dead_letters(std::size_t limit) const {
    std::vector<dead_letter> out;
    std::string cursor = "0";
    do {
        const auto page = client_->command({"HSCAN", dead_key_, cursor, "COUNT", "256"});
        const auto& parts = redis_detail::expect_array(page, "HSCAN", 2);
        cursor = parts[0].str;
        const auto& kv = parts[1].elements;
        for (std::size_t i = 0; i + 1 < kv.size() && out.size() < limit; i += 2)
            out.push_back({kv[i].str, kv[i + 1].str});
    } while (cursor != "0" && out.size() < limit);
    return out;
}

bool redis_task_store::drop_dead_letter(const std::string& id) {
    const auto r = client_->pipeline({{"HDEL", dead_key_, id}, {"DEL", base_ + ":dead:" + id}},
                                     redis_retry::idempotent);
    return redis_detail::expect_count(r[0], "HDEL " + dead_key_) == 1;
}

}  // namespace orchcore
