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

// Every write script takes KEYS: record, live set, finished completed,
// failed, cancelled; and ARGV[1..6]: id, class (0: not terminal; 1..3: the
// finished set KEYS[2 + class]), finished (unix ms), expire-at (unix ms, 0:
// none), trim cutoff (unix ms, '': none), record key prefix. `index` files
// the record under its class; a terminal one gets its Redis expiry, and up
// to 8 entries of its finished set older than the trim cutoff whose records
// are gone (Redis expired them and no expire() reported them) are dropped.
constexpr const char* write_head = R"lua(
expect(KEYS[2], 'set')
for i = 3, 5 do expect(KEYS[i], 'zset') end
local function index()
  local id, class = ARGV[1], tonumber(ARGV[2])
  if class == 0 then redis.call('SADD', KEYS[2], id) return end
  local fin = KEYS[2 + class]
  redis.call('SREM', KEYS[2], id)
  redis.call('ZADD', fin, ARGV[3], id)
  if tonumber(ARGV[4]) > 0 then redis.call('PEXPIREAT', KEYS[1], ARGV[4]) end
  if ARGV[5] == '' then return end
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', fin, '-inf', ARGV[5], 'LIMIT', 0, 8)) do
    if redis.call('EXISTS', ARGV[6] .. old) == 0 then redis.call('ZREM', fin, old) end
  end
end
)lua";

// ARGV[7..]: field, value pairs of the whole record.
const redis_script create_script("store.create", script_text(write_head, R"lua(
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
index()
return 1
)lua"));

// ARGV[7]: the expected status; ARGV[8..]: the state values, in
// redis_codec::task_state_fields order ('' = absent: HDEL).
const std::string update_body = "local fields = " + redis_codec::lua_task_state_fields() + "\nlocal status = '" +
                                std::string(redis_codec::task_field::status) + "'\n" + R"lua(
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then return 0 end
if redis.call('HGET', KEYS[1], status) ~= ARGV[7] then return 0 end
local set, del = {}, {}
for i, f in ipairs(fields) do
  local v = ARGV[7 + i]
  if v == '' then del[#del + 1] = f else set[#set + 1] = f; set[#set + 1] = v end
end
redis.call('HSET', KEYS[1], unpack(set))
if #del > 0 then redis.call('HDEL', KEYS[1], unpack(del)) end
index()
return 1
)lua";
const redis_script update_script("store.update", script_text(write_head, update_body.c_str()));

// KEYS: record, live set, finished x3. ARGV: id.
const redis_script erase_script("store.erase", script_text(R"lua(
expect(KEYS[2], 'set')
for i = 3, 5 do expect(KEYS[i], 'zset') end
local n = redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
for i = 3, 5 do redis.call('ZREM', KEYS[i], ARGV[1]) end
return n
)lua"));

// KEYS: finished completed, failed, cancelled. ARGV: record key prefix, the
// cutoff (unix ms) of each finished set, the most ids per set.
const redis_script expire_script("store.expire", script_text(R"lua(
for i = 1, 3 do expect(KEYS[i], 'zset') end
local out = {}
for i = 1, 3 do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', ARGV[i + 1], 'LIMIT', 0, ARGV[5])
  for _, id in ipairs(ids) do
    redis.call('DEL', ARGV[1] .. id)
    redis.call('ZREM', KEYS[i], id)
    out[#out + 1] = id
  end
end
return out
)lua"));

// KEYS: record, live set, dead hash, dead record, finished x3.
// ARGV: id, is-hash flag, reason, then the record's fields as read (a hash
// changed since is left alone).
const redis_script bury_script("store.dead_letter", script_text(R"lua(
expect(KEYS[2], 'set')
expect(KEYS[3], 'hash')
for i = 5, 7 do expect(KEYS[i], 'zset') end
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'none' then return 0 end
if ARGV[2] == '1' then
  if t ~= 'hash' then return 0 end
  local cur = redis.call('HGETALL', KEYS[1])
  if #cur ~= #ARGV - 3 then return 0 end
  for i = 1, #cur do if cur[i] ~= ARGV[3 + i] then return 0 end end
end
redis.call('RENAME', KEYS[1], KEYS[4])
redis.call('PERSIST', KEYS[4])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
redis.call('SREM', KEYS[2], ARGV[1])
for i = 5, 7 do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 1
)lua"));

}  // namespace

namespace {
// How long past its TTL a finished-set entry whose record Redis expired is
// left for expire() to report, before a later finishing write drops it.
constexpr std::int64_t index_grace_ms = 60'000;
// The most ids expire() removes per finished set and call.
constexpr std::size_t expire_batch = 10'000;
}  // namespace

redis_task_store::redis_task_store(std::shared_ptr<redis_client> client, std::string queue,
                                   redis_task_store_options o)
    : client_(std::move(client)), options_(o) {
    if (!client_) throw invalid_argument("client", "null", "a redis_task_store needs a redis_client");
    for (auto [name, v] : {std::pair{"completed_ttl", o.completed_ttl}, std::pair{"failed_ttl", o.failed_ttl},
                           std::pair{"cancelled_ttl", o.cancelled_ttl}})
        if (v.count() < 0) throw invalid_argument(name, std::to_string(v.count()) + "ms", "must be >= 0");
    base_ = redis_detail::key_base(client_->options().prefix, queue);
    live_key_ = base_ + ":tasks";
    dead_key_ = base_ + ":dead";
    finished_completed_ = base_ + ":finished:completed";
    finished_failed_ = base_ + ":finished:failed";
    finished_cancelled_ = base_ + ":finished:cancelled";
}

std::size_t redis_task_store::max_value_bytes() const noexcept { return client_->options().max_payload_bytes; }

void redis_task_store::check_sizes(const task_record& r, bool whole) const {
    const auto limit = client_->options().max_payload_bytes;
    if (whole && r.payload.size() > limit)
        throw invalid_argument("payload", std::to_string(r.payload.size()) + " bytes",
                               "exceeds max_payload_bytes = " + std::to_string(limit));
    if (r.result.size() > limit)
        throw invalid_argument("result", std::to_string(r.result.size()) + " bytes",
                               "exceeds max_payload_bytes = " + std::to_string(limit));
    if (r.id.empty()) throw invalid_argument("id", "\"\"", "must not be empty");
    if (whole) redis_codec::check_task_record(r);
    else redis_codec::check_task_state(r);
}

std::vector<std::string> redis_task_store::write_keys(const std::string& id) const {
    return {record_key(id), live_key_, finished_completed_, finished_failed_, finished_cancelled_};
}

// ARGV[1..6] of the write scripts (see write_head). A terminal record
// without finished_at is filed at +inf: it never expires.
std::vector<std::string> redis_task_store::index_args(const task_record& r) const {
    if (!is_terminal(r.status)) return {r.id, "0", "", "0", "", base_ + ":task:"};
    const auto cls = r.status == task_status::completed ? "1" : r.status == task_status::cancelled ? "3" : "2";
    if (!r.finished_at) return {r.id, cls, "+inf", "0", "", base_ + ":task:"};
    const auto fin_ms = redis_detail::to_ms(*r.finished_at);
    const auto ttl = r.status == task_status::completed   ? options_.completed_ttl
                     : r.status == task_status::cancelled ? options_.cancelled_ttl
                                                          : options_.failed_ttl;
    // A TTL that reaches past the largest unix-ms time (any TTL up to
    // milliseconds::max() is allowed) sets no Redis expiry: it never comes.
    const auto room = std::numeric_limits<std::int64_t>::max() - index_grace_ms - (fin_ms < 0 ? -fin_ms : fin_ms);
    std::string expire_at = "0", trim;
    if (ttl.count() > 0 && ttl.count() <= room) {
        expire_at = std::to_string(std::max<std::int64_t>(1, fin_ms + ttl.count()));
        trim = std::to_string(fin_ms - ttl.count() - index_grace_ms);
    }
    return {r.id, cls, std::to_string(fin_ms), expire_at, trim, base_ + ":task:"};
}

std::vector<std::string> redis_task_store::create_args(const task_record& r) const {
    auto args = index_args(r);
    for (auto& [f, v] : redis_codec::encode_task_fields(r)) {
        args.emplace_back(f);
        args.push_back(std::move(v));
    }
    return args;
}

std::vector<std::string> redis_task_store::update_args(const task_record& r, task_status expected) const {
    auto args = index_args(r);
    args.emplace_back(to_string(expected));
    for (auto& v : redis_codec::encode_task_state(r)) args.push_back(std::move(v));
    return args;
}

bool redis_task_store::create(const task_record& r) {
    check_sizes(r, true);
    return client_->eval(create_script, write_keys(r.id), create_args(r)).integer == 1;
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
    for (const auto& r : rs) check_sizes(r, true);
    return eval_batch(*client_, create_script, "store.create", rs.size(), [&](std::size_t k) {
        return redis_script_call{write_keys(rs[k].id), create_args(rs[k])};
    });
}

bool redis_task_store::update(const task_record& r, task_status expected) {
    if (r.status != expected) check_transition(expected, r.status);
    check_sizes(r, false);
    return client_->eval(update_script, write_keys(r.id), update_args(r, expected)).integer == 1;
}

std::vector<bool> redis_task_store::update_many(std::span<const task_record> rs, std::span<const task_status> expected) {
    check_batch(rs.size(), expected.size());
    for (std::size_t i = 0; i < rs.size(); ++i) {
        if (rs[i].status != expected[i]) check_transition(expected[i], rs[i].status);
        check_sizes(rs[i], false);
    }
    return eval_batch(*client_, update_script, "store.update", rs.size(), [&](std::size_t k) {
        return redis_script_call{write_keys(rs[k].id), update_args(rs[k], expected[k])};
    });
}

bool redis_task_store::erase(const std::string& id) {
    const std::vector<std::string> args{id};
    return client_->eval(erase_script, write_keys(id), args).integer == 1;
}

void redis_task_store::bury(const std::string& id, const std::vector<redis_reply>* fields,
                            const std::string& reason) const {
    const std::vector<std::string> keys{record_key(id),       live_key_,        dead_key_,         base_ + ":dead:" + id,
                                        finished_completed_, finished_failed_, finished_cancelled_};
    std::vector<std::string> args{id, fields ? "1" : "0", reason};
    if (fields)
        for (const auto& f : *fields) args.push_back(f.str);
    client_->eval(bury_script, keys, args);
}

// `reply`: the reply to HGETALL of the record (or an error reply).
std::optional<task_record> redis_task_store::decode_or_bury(const std::string& id, const redis_reply& reply) const {
    if (reply.is_error()) {
        // WRONGTYPE: something that is not a hash sits under the record key.
        bury(id, nullptr, "not a hash: " + reply.str);
        return std::nullopt;
    }
    if (reply.type != redis_reply::kind::array || reply.elements.empty()) return std::nullopt;  // absent
    std::vector<std::string> flat;
    flat.reserve(reply.elements.size());
    for (const auto& e : reply.elements) flat.push_back(e.str);
    try {
        return redis_codec::decode_task_record(record_key(id), id, flat);
    } catch (const invalid_argument& ex) {
        bury(id, &reply.elements, std::string("undecodable record: ") + ex.what());
        return std::nullopt;
    }
}

std::optional<task_record> redis_task_store::get(const std::string& id) const {
    return decode_or_bury(id, client_->command({"HGETALL", record_key(id)}));
}

std::vector<std::optional<task_record>> redis_task_store::get_many(std::span<const std::string> ids) const {
    std::vector<std::optional<task_record>> out;
    out.reserve(ids.size());
    constexpr std::size_t chunk = 1000;
    std::vector<std::vector<std::string>> cmds;
    for (std::size_t i = 0; i < ids.size(); i += chunk) {
        const auto part = ids.subspan(i, std::min(chunk, ids.size() - i));
        cmds.clear();
        for (const auto& id : part) cmds.push_back({"HGETALL", record_key(id)});
        const auto replies = client_->pipeline(cmds);
        for (std::size_t k = 0; k < part.size(); ++k) out.push_back(decode_or_bury(part[k], replies[k]));
    }
    return out;
}

// The index keys holding the records that `f` can match.
std::vector<std::string> redis_task_store::index_keys(const task_filter& f) const {
    if (!f.status) return {live_key_, finished_completed_, finished_failed_, finished_cancelled_};
    if (!is_terminal(*f.status)) return {live_key_};
    return {finished_key(*f.status)};
}

const std::string& redis_task_store::finished_key(task_status s) const {
    switch (s) {
        case task_status::completed: return finished_completed_;
        case task_status::cancelled: return finished_cancelled_;
        default: return finished_failed_;
    }
}

std::vector<task_record> redis_task_store::list(const task_filter& f) const {
    std::vector<task_record> out;
    for (const auto& key : index_keys(f)) {
        const bool is_set = key == live_key_;
        std::string cursor = "0";
        do {
            const auto page = client_->command({is_set ? "SSCAN" : "ZSCAN", key, cursor, "COUNT", "256"});
            const auto& parts = redis_detail::expect_array(page, is_set ? "SSCAN " + key : "ZSCAN " + key, 2);
            cursor = parts[0].str;
            const auto& elems = parts[1].elements;
            const std::size_t step = is_set ? 1 : 2;  // ZSCAN: member, score
            std::vector<std::vector<std::string>> cmds;
            for (std::size_t i = 0; i < elems.size(); i += step) cmds.push_back({"HGETALL", record_key(elems[i].str)});
            if (cmds.empty()) continue;
            const auto replies = client_->pipeline(cmds);
            // A vanished record (Redis expired it) is skipped; expire()
            // removes its index entry and reports it.
            for (std::size_t i = 0; i < cmds.size() && out.size() < f.limit; ++i) {
                auto r = decode_or_bury(elems[i * step].str, replies[i]);
                if (r && f.matches(*r)) out.push_back(std::move(*r));
            }
        } while (cursor != "0" && out.size() < f.limit);
        if (out.size() >= f.limit) break;
    }
    return out;
}

std::vector<std::string> redis_task_store::expire(std::chrono::system_clock::time_point now,
                                                  std::chrono::milliseconds completed_ttl,
                                                  std::chrono::milliseconds failed_ttl,
                                                  std::chrono::milliseconds cancelled_ttl) {
    const auto now_ms = redis_detail::to_ms(now);
    // A record with a Redis-side TTL is gone once that TTL passed: report it
    // (and drop its index entry) then, even if the caller's TTL is longer.
    auto cutoff = [&](std::chrono::milliseconds arg, std::chrono::milliseconds in_redis) {
        const auto ttl = in_redis.count() > 0 ? std::min(arg, in_redis) : arg;
        constexpr auto lowest = std::numeric_limits<std::int64_t>::min();
        return std::to_string(now_ms < lowest + ttl.count() ? lowest : now_ms - ttl.count());
    };
    const std::vector<std::string> keys{finished_completed_, finished_failed_, finished_cancelled_};
    const std::vector<std::string> args{base_ + ":task:", cutoff(completed_ttl, options_.completed_ttl),
                                        cutoff(failed_ttl, options_.failed_ttl),
                                        cutoff(cancelled_ttl, options_.cancelled_ttl), std::to_string(expire_batch)};
    const auto reply = client_->eval(expire_script, keys, args);
    std::vector<std::string> out;
    for (const auto& e : redis_detail::expect_array(reply, "store.expire")) out.push_back(e.str);
    return out;
}

std::size_t redis_task_store::size() const {
    const auto replies = client_->pipeline({{"SCARD", live_key_},
                                            {"ZCARD", finished_completed_},
                                            {"ZCARD", finished_failed_},
                                            {"ZCARD", finished_cancelled_}});
    const std::array<const std::string*, 4> names{&live_key_, &finished_completed_, &finished_failed_,
                                                  &finished_cancelled_};
    std::size_t n = 0;
    for (std::size_t i = 0; i < replies.size(); ++i)
        n += static_cast<std::size_t>(
            redis_detail::expect_count(replies[i], (i == 0 ? "SCARD " : "ZCARD ") + *names[i]));
    return n;
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
