// The Lua scripts of redis_task_store (layout: docs/redis.md, "Keys").
//
// A non-terminal record's id is in the live set. A terminal one's id is in
// the bucket list of its class (completed, failed: failed and timed out,
// cancelled) and of the second it finished in ("never" without
// finished_at); per class, a registry ZSET (bucket -> its second) and a
// count hash (bucket -> ids filed, "total" -> all of them) find and count
// the buckets. A record and its bucket list carry Redis expiries, so a
// finished record and its index entry both go without any maintenance.
#pragma once

#include "record_codec.hpp"

#include <orchcore/redis/redis_client.hpp>

#include <string>

namespace orchcore::redis_store_scripts {

// Every script first checks the type of each key it writes (a key of the
// wrong type would make a later call fail half-way through the script, with
// the calls before it applied): nothing is changed if one is wrong.
inline std::string prelude() {
    return "local F_STATUS, F_FINISHED = '" + std::string(redis_codec::task_field::status) + "', '" +
           std::string(redis_codec::task_field::finished_at) + "'\n" + R"lua(
local function expect(key, want)
  local t = redis.call('TYPE', key)['ok']
  if t ~= want and t ~= 'none' then
    error({err = 'ORCHCORE corrupted key ' .. key .. ': a ' .. t .. ' where a ' .. want .. ' belongs'})
  end
end
local function class_of(s)
  if s == 'completed' or s == 'cancelled' then return s end
  if s == 'failed' or s == 'timed_out' then return 'failed' end
  return nil
end
-- The bucket (whole seconds since the epoch) of a stored finished_at
-- (decimal nanoseconds), as the client computes it.
local function bucket_of(f)
  if not f then return 'never' end
  if #f > 9 and string.sub(f, 1, 1) ~= '-' then return string.sub(f, 1, -10) end
  local n = tonumber(f)
  if not n then return nil end
  return string.format('%.0f', math.floor(n / 1e9))
end
-- Takes n ids off the counts of bucket b (a count that reaches 0 goes).
local function uncount(counts, b, n)
  if n == 0 then return end
  for _, f in ipairs({b, 'total'}) do
    if redis.call('HINCRBY', counts, f, string.format('%d', -n)) <= 0 then redis.call('HDEL', counts, f) end
  end
end
local function drop_bucket(reg, counts, b)
  redis.call('ZREM', reg, b)
  uncount(counts, b, tonumber(redis.call('HGET', counts, b) or '0') or 0)
  redis.call('HDEL', counts, b)
end
)lua";
}

// The record writes shared by the store's write scripts and the node
// backend's script (src/redis/redis_node_backend.cpp), so both file and
// write records alike. `x`: the index arguments of one record (a table of
// 7 strings): id, class ('' = not terminal), bucket, bucket score (seconds
// or '+inf'), record expire-at (unix ms, 0 = none), bucket expire-at (unix
// ms, 0 = none), bucket key prefix of the class. `reg`, `counts`: registry
// and count hash of the record's class (any class when not terminal).
//
// file_record(rec, live, reg, counts, x, entering, batch) files the
// record: a terminal one, when it enters its class, into its bucket (and
// its expiry); when that opens a bucket, up to 2 of the class's oldest
// buckets that Redis expired leave the registry. With `batch` (a table), a
// terminal record gets its expiry and is collected into `batch` instead,
// which file_batch(batch) files later, all of a bucket at once (one SREM,
// RPUSH and count per bucket). write_state(rec, live, reg, counts, x,
// expected, vals, batch) is the update: if the record is a hash whose status
// is `expected`, it writes the state values `vals`
// (redis_codec::task_state_fields order, '' = HDEL), files it and returns
// 1; else it changes nothing and returns 0.
inline std::string record_write_fns() {
    return "local STATE_FIELDS = " + redis_codec::lua_task_state_fields() + "\n" + R"lua(
-- Files the ids `ids` (at most a few thousand) of one bucket: x: the index
-- arguments of one of them.
local function file_ids(live, reg, counts, x, ids)
  local n, b = #ids, x[3]
  redis.call('SREM', live, unpack(ids))
  local list = x[7] .. b
  local opened = redis.call('RPUSH', list, unpack(ids)) == n
  if opened then
    drop_bucket(reg, counts, b)
    redis.call('ZADD', reg, x[4], b)
    if x[6] ~= '0' then redis.call('PEXPIREAT', list, x[6]) end
  end
  local by = n == 1 and '1' or string.format('%d', n)
  redis.call('HINCRBY', counts, b, by)
  redis.call('HINCRBY', counts, 'total', by)
  if not opened then return end
  for _, o in ipairs(redis.call('ZRANGE', reg, '0', '1')) do
    if redis.call('EXISTS', x[7] .. o) == 1 then break end
    drop_bucket(reg, counts, o)
  end
end
local function file_record(rec, live, reg, counts, x, entering, batch)
  local id = x[1]
  if x[2] == '' then redis.call('SADD', live, id) return end
  if not entering then return end
  if not batch then
    file_ids(live, reg, counts, x, {id})
    if x[5] ~= '0' then redis.call('PEXPIREAT', rec, x[5]) end
    return
  end
  if x[5] ~= '0' then redis.call('PEXPIREAT', rec, x[5]) end
  local list = x[7] .. x[3]
  local g = batch[list]
  if not g then
    g = {live, reg, counts, x, {}}
    batch[list] = g
    batch[#batch + 1] = g
  end
  g[5][#g[5] + 1] = id
end
local function file_batch(batch)
  for _, g in ipairs(batch) do file_ids(g[1], g[2], g[3], g[4], g[5]) end
end
local function write_state(rec, live, reg, counts, x, expected, vals, batch)
  local set, del, n = {}, {}, 0
  for i = 1, #STATE_FIELDS do
    local f, v = STATE_FIELDS[i], vals[i]
    if v == '' then del[#del + 1] = f else set[n + 1] = f; set[n + 2] = v; n = n + 2 end
  end
  -- The status and which fields to delete are there. (Not a hash: HMGET
  -- fails, and nothing is written.)
  local cur = redis.pcall('HMGET', rec, F_STATUS, unpack(del))
  if cur.err or cur[1] ~= expected then return 0 end
  local gone = {}
  for i = 2, #cur do if cur[i] then gone[#gone + 1] = del[i - 1] end end
  redis.call('HSET', rec, unpack(set))
  if #gone > 0 then redis.call('HDEL', rec, unpack(gone)) end
  file_record(rec, live, reg, counts, x, class_of(expected) == nil, batch)
  return 1
end
)lua";
}

// Write scripts (after prelude() and record_write_fns()). KEYS: record,
// live set, registry, count hash (of the record's class; any class when not
// terminal). ARGV[1..7]: the index arguments `x` of record_write_fns().
inline std::string write_head() {
    return R"lua(
expect(KEYS[2], 'set')
expect(KEYS[3], 'zset')
expect(KEYS[4], 'hash')
local function file(entering) file_record(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV, entering) end
)lua";
}

// ARGV[8..]: field, value pairs of the whole record.
inline constexpr const char* create_body = R"lua(
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 8))
file(true)
return 1
)lua";

// Many creates in one call: the key types are checked once, not per
// record. KEYS: live set, then registry and count hash of completed,
// failed, cancelled, then the records. ARGV, per record: its argument count
// n, then n arguments: the index arguments `x` (7) and the field, value
// pairs of the whole record. Returns 1 (created) or 0 (the key exists) per
// record. After prelude() and record_write_fns().
inline std::string create_many_body() {
    return R"lua(
expect(KEYS[1], 'set')
for i = 2, 7, 2 do expect(KEYS[i], 'zset'); expect(KEYS[i + 1], 'hash') end
local CLASS_KEYS = {completed = 2, failed = 4, cancelled = 6}
local out, pos = {}, 1
for r = 8, #KEYS do
  local n, rec = tonumber(ARGV[pos]), KEYS[r]
  if redis.call('EXISTS', rec) == 1 then
    out[#out + 1] = 0
  else
    local x = {unpack(ARGV, pos + 1, pos + 7)}
    redis.call('HSET', rec, unpack(ARGV, pos + 8, pos + n))
    local k = CLASS_KEYS[x[2]] or 2
    file_record(rec, KEYS[1], KEYS[k], KEYS[k + 1], x, true)
    out[#out + 1] = 1
  end
  pos = pos + n + 1
end
return out
)lua";
}

// ARGV[8]: the expected status; ARGV[9..]: the state values, in
// redis_codec::task_state_fields order ('' = absent: HDEL).
inline constexpr const char* update_body = R"lua(
return write_state(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV, ARGV[8], {unpack(ARGV, 9, 8 + #STATE_FIELDS)})
)lua";

// Removes record KEYS[1]'s id ARGV[1] from the live set KEYS[2] and from
// its bucket, if its status and finished_at can be read. KEYS[k], KEYS[k+1]:
// registry and count hash of completed, then failed, then cancelled.
// ARGV[2]: the bucket key prefix without the class ("{base}:finished:").
inline std::string unfile_fn(int k) {
    return "local unfile_keys = {completed = " + std::to_string(k) + ", failed = " + std::to_string(k + 2) +
           ", cancelled = " + std::to_string(k + 4) + "}\n" + R"lua(
local function unfile()
  redis.call('SREM', KEYS[2], ARGV[1])
  if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then return end
  local st = redis.call('HMGET', KEYS[1], F_STATUS, F_FINISHED)
  local c = class_of(st[1])
  if not c then return end
  local b = bucket_of(st[2])
  if not b then return end
  local counts = KEYS[unfile_keys[c] + 1]
  if redis.call('LREM', ARGV[2] .. c .. ':' .. b, 1, ARGV[1]) > 0 then uncount(counts, b, 1) end
end
)lua";
}

// KEYS: record, live set, then registry and count hash x3. ARGV: id,
// bucket key prefix.
inline std::string erase_body() {
    return unfile_fn(3) + R"lua(
expect(KEYS[2], 'set')
for i = 3, 8, 2 do expect(KEYS[i], 'zset'); expect(KEYS[i + 1], 'hash') end
unfile()
return redis.call('DEL', KEYS[1])
)lua";
}

// KEYS: registry and count hash x3. ARGV: record key prefix, bucket key
// prefix, the cutoff of each class (unix ms: a record finished at or before
// it is due), the most ids to remove (whole buckets: it stops after the
// bucket that reaches it). A bucket's due ids go (its record deleted, if
// Redis has not yet expired it) and are returned; the rest stay listed.
// A listed id whose record now is another one (an id used again) is
// dropped, neither deleted nor returned.
inline constexpr const char* expire_body = R"lua(
for i = 1, 6, 2 do expect(KEYS[i], 'zset'); expect(KEYS[i + 1], 'hash') end
local names = {'completed', 'failed', 'cancelled'}
local out = {}
-- 'due', 'keep' or 'other' for id of bucket b of class c.
local function state_of(rec, c, b, cutoff)
  local t = redis.call('TYPE', rec)['ok']
  if t == 'none' then return 'due' end
  if t ~= 'hash' then return 'other' end
  local st = redis.call('HMGET', rec, F_STATUS, F_FINISHED)
  if class_of(st[1]) ~= c or bucket_of(st[2]) ~= b then return 'other' end
  local ms = st[2] and tonumber(string.sub(st[2], 1, -7))
  if ms and #st[2] > 9 and ms > cutoff then return 'keep' end
  return 'due'
end
for i = 1, 3 do
  local reg, counts, cutoff = KEYS[2 * i - 1], KEYS[2 * i], tonumber(ARGV[2 + i])
  local last = string.format('%.0f', math.floor(cutoff / 1000))
  for _, b in ipairs(redis.call('ZRANGEBYSCORE', reg, '-inf', last, 'LIMIT', 0, 1000)) do
    if #out >= tonumber(ARGV[6]) then break end
    local list = ARGV[2] .. names[i] .. ':' .. b
    local keep = {}
    for _, id in ipairs(redis.call('LRANGE', list, 0, -1)) do
      local rec = ARGV[1] .. id
      local s = state_of(rec, names[i], b, cutoff)
      if s == 'keep' then keep[#keep + 1] = id end
      if s == 'due' then redis.call('DEL', rec); out[#out + 1] = id end
    end
    if #keep == 0 then
      redis.call('DEL', list)
      drop_bucket(reg, counts, b)
    else
      local n = redis.call('LLEN', list)
      local ttl = redis.call('PTTL', list)
      redis.call('DEL', list)
      for k = 1, #keep, 1000 do redis.call('RPUSH', list, unpack(keep, k, math.min(k + 999, #keep))) end
      if ttl > 0 then redis.call('PEXPIRE', list, ttl) end
      uncount(counts, b, n - #keep)
    end
  end
end
return out
)lua";

// KEYS: record, live set, dead hash, dead record, then registry and count
// hash x3. ARGV: id, bucket key prefix, is-hash flag, reason, then the
// record's fields as read (a hash changed since is left alone).
inline std::string bury_body() {
    return unfile_fn(5) + R"lua(
expect(KEYS[2], 'set')
expect(KEYS[3], 'hash')
for i = 5, 10, 2 do expect(KEYS[i], 'zset'); expect(KEYS[i + 1], 'hash') end
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'none' then return 0 end
if ARGV[3] == '1' then
  if t ~= 'hash' then return 0 end
  local cur = redis.call('HGETALL', KEYS[1])
  if #cur ~= #ARGV - 4 then return 0 end
  for i = 1, #cur do if cur[i] ~= ARGV[4 + i] then return 0 end end
end
unfile()
redis.call('RENAME', KEYS[1], KEYS[4])
redis.call('PERSIST', KEYS[4])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
return 1
)lua";
}

}  // namespace orchcore::redis_store_scripts
