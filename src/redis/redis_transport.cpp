#include <orchcore/redis/redis_transport.hpp>

#include <orchcore/redis/redis_node_backend.hpp>

#include "record_codec.hpp"
#include "redis_notify.hpp"
#include "redis_util.hpp"
#include "transport_lua.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

namespace orchcore {

namespace {

// Shared prelude of every transport script. KEYS: waiting, bylevel,
// delayed, leases, state, dead letters, wake. ARGV[1]: the per-task key prefix "{p:q}:m:".
//
// Nothing may fail once a script has changed something (Redis keeps the
// changes made before an error, so a task popped from one set and not yet
// added to the next would be lost). Hence:
// * the prelude checks the type of every queue key and every field of
//   :state before the script body runs, and ends the script with an error
//   naming the key, the field and the value if one is wrong;
// * a task's entry (:m:<id>) is read with entry(), which never fails and
//   checks every field. A task whose entry is unusable (not a hash,
//   missing, a field out of range) is never dropped: lease and admission
//   park() it as a lease that expired long ago; the next recovery buries
//   it in the dead-letter set with the reason and returns it as
//   dead-lettered, so the owner of its record learns of it. ack, nack,
//   extend and take_messages refuse such a task and change nothing (if it
//   is leased, recovery meets it when its lease expires);
// * every call after that point only touches keys of a checked type.
constexpr const char* prelude = R"lua(
-- Set by begin() on each call: the keys, M = ARGV[1], MB: "{p:q}:m:" ->
-- "{p:q}:mb:" (the steering mailboxes), S: the checked :state, POL: the
-- queue's policy.
local W, L, D, LS, ST, DL, WK, M, MB, S, POL
-- The :state fields this call changes (field -> value, a number; PTEXT:
-- field -> its text where the call has it), written by one HSET at its end
-- (flush()).
local PENDING, PTEXT
-- :state texts known to be valid, with their values: the last read (and
-- checked) or written by this library, per :state key (KNOWN[key] = {texts,
-- values}, kept across calls of a function). take() compares the text it
-- meets with the known one before parsing it. KT, KV: this queue's.
local KNOWN, KNOWN_N, KT, KV = {}, 0
-- Whether :leases is known to be a sorted set in this call (see begin()).
local LS_OK
local SHIFT = 70368744177664
local EXACT = 9007199254740992  -- 2^53: larger integers are not exact in Lua
local MAX_MS = 9223372036854    -- unix ms that a system_clock time_point holds
local MAX_ATTEMPT = 4294967294  -- so that one more still fits 32 bits
local function fmt(n) return string.format('%.0f', n) end
-- An integer (|n| < 2^53) as decimal text. Numbers go to redis.call as
-- text: Redis formats a Lua number with '%.17g', several times the cost.
-- The texts of 0..4096 are kept once made (across calls of a function).
local TEXT = {}
local function itoa(n)
  local t = TEXT[n]
  if t then return t end
  t = string.format('%d', n)
  if n >= 0 and n <= 4096 then TEXT[n] = t end
  return t
end
local function shown(v)
  v = tostring(v)
  if #v > 64 then v = string.sub(v, 1, 64) .. '...' end
  return "'" .. v .. "'"
end
local function fail(msg) error({err = 'ORCHCORE corrupted queue: ' .. msg}) end
-- Decimal digits only, at most `hi`; else nil. Small values met before are
-- looked up (SMALL, kept across calls of a function) instead of parsed.
local SMALL, SMALL_N = {}, 0
local function uint(v, hi)
  local n = SMALL[v]
  if n then
    if n > hi then return nil end
    return n
  end
  if type(v) ~= 'string' or #v > 16 or not string.find(v, '^%d+$') then return nil end
  n = tonumber(v)
  if n < 1000 and SMALL_N < 4096 then SMALL[v], SMALL_N = n, SMALL_N + 1 end
  if n > hi then return nil end
  return n
end
local function int(v, lo, hi)
  if type(v) ~= 'string' or #v > 17 or not string.find(v, '^%-?%d+$') then return nil end
  local n = tonumber(v)
  if n < lo or n > hi then return nil end
  return n
end
-- A finite number >= 0 as '%.17g' writes it.
local function real(v)
  if type(v) ~= 'string' or #v > 32 then return nil end
  if not (string.find(v, '^%d+%.?%d*$') or string.find(v, '^%d+%.?%d*[eE][%+%-]?%d+$')) then return nil end
  local n = tonumber(v)
  if not n or n ~= n or n >= math.huge then return nil end
  return n
end
local function expect(key, want)
  local t = redis.call('TYPE', key)['ok']
  if t ~= want and t ~= 'none' then fail('key ' .. key .. ' is a ' .. t .. ', not a ' .. want) end
end
local COUNTERS = {accepted = 1, rej_full = 1, rej_invalid = 1, evicted = 1, cancelled = 1, granted = 1,
                  acked = 1, nacked = 1, recovered = 1, stale = 1, dead = 1}
local POLICIES = {['reject-new'] = 1, ['drop-lru'] = 1, priority = 1}
-- Checks :state field f = v into s (the state as read); a bad value ends
-- the script naming the field.
local function take(s, f, v)
  local n
  if KT[f] == v then
    n = KV[f]
  else
    if COUNTERS[f] or f == 'token' then n = uint(v, EXACT)
    elseif f == 'policy' then n = POLICIES[v] and v
    elseif f == 'seq' then n = uint(v, SHIFT - 1)
    elseif f == 'ewma' then n = real(v)
    elseif f == 'deq_last' then n = int(v, -MAX_MS, MAX_MS)
    else return
    end
    if n == nil then fail(ST .. ' field ' .. f .. ' = ' .. shown(v)) end
    KT[f], KV[f] = v, n
  end
  if COUNTERS[f] then s.c[f] = n
  elseif f == 'policy' then s.policy = n
  elseif f == 'seq' then s.seq = n
  elseif f == 'token' then s.token = n
  elseif f == 'ewma' then s.ewma = n
  else s.last = n
  end
end
-- The checked :state (policy, seq, token, ewma, last, counters c), after
-- checking the type of every queue key.
local function state()
  expect(W, 'zset'); expect(L, 'zset'); expect(D, 'zset'); expect(LS, 'zset')
  expect(ST, 'hash'); expect(DL, 'hash')
  local h, s = redis.call('HGETALL', ST), {seq = 0, token = 0, c = {}}
  for i = 1, #h, 2 do take(s, h[i], h[i + 1]) end
  return s
end
-- Only the :state fields `fields`, checked as state() checks them; the key
-- types are not checked (see begin()).
local function some_state(fields)
  local h, s = redis.call('HMGET', ST, unpack(fields)), {seq = 0, token = 0, c = {}}
  for i = 1, #fields do
    if h[i] then take(s, fields[i], h[i]) end
  end
  return s
end
local function wait_score(p, s)
  if POL == 'priority' then return (20 - p) * SHIFT + s end
  return s
end
local MISSING = 'entry is missing'
local function bad_field(f, v) return nil, 'field ' .. f .. ' = ' .. shown(v) .. ' is not valid' end
-- A task's entry, checked: {p, s, a, t, traw, w, x}; or nil and the reason
-- (MISSING if there is no entry). Fields p and s must be there; a and x
-- default to 0; t and w are there while the task is leased.
local function entry(id)
  local m = redis.pcall('HMGET', M .. id, 'p', 's', 'a', 't', 'w', 'x')
  if m.err then return nil, 'entry is not a hash' end
  local p, s, a, t, w, x = m[1], m[2], m[3], m[4], m[5], m[6]
  if not (p or s or a or t or w or x) then return nil, MISSING end
  if not p then return nil, 'field p is missing' end
  local pn = uint(p, 20)
  if not pn then return bad_field('p', p) end
  if not s then return nil, 'field s is missing' end
  local sn = uint(s, SHIFT - 1)
  if not sn then return bad_field('s', s) end
  local an, tn, xn = 0, nil, 0
  if a then
    an = uint(a, MAX_ATTEMPT)
    if not an then return bad_field('a', a) end
  end
  if t then
    tn = uint(t, EXACT)
    if not tn then return bad_field('t', t) end
  end
  if x then
    xn = uint(x, MAX_ATTEMPT)
    if not xn then return bad_field('x', x) end
  end
  return {p = pn, s = sn, a = an, t = tn, traw = t or nil, w = w or nil, x = xn}
end
-- A task whose entry cannot be used: out of the waiting sets, into the
-- leases as expired at the earliest time (for recovery to bury and report).
-- Into the leases first: a set of the wrong type met after that (see
-- begin()) leaves the task where recovery finds it.
local function park(id)
  redis.call('ZADD', LS, -MAX_MS, id)
  redis.call('ZREM', W, id); redis.call('ZREM', D, id); redis.call('ZREM', L, id)
end
-- Recovery's end for such a task: out of every set, into the dead letters.
local function bury(id, why)
  redis.call('ZREM', W, id); redis.call('ZREM', L, id); redis.call('ZREM', D, id); redis.call('ZREM', LS, id)
  redis.call('DEL', M .. id, MB .. id)
  redis.call('HSET', DL, id, 'corrupted entry ' .. M .. id .. ': ' .. why)
end
-- (Scores, counters and tokens below 2^53 go to redis.call as itoa() text.)
local function make_waiting(id, e)
  redis.call('ZADD', W, itoa(wait_score(e.p, e.s)), id)
  if POL == 'drop-lru' then redis.call('ZADD', L, itoa(e.p * SHIFT + e.s), id) end
end
local function remove_waiting(id)
  redis.call('ZREM', W, id)
  if POL == 'drop-lru' then redis.call('ZREM', L, id) end
end
local function count(field, n)
  if n > 0 then
    S.c[field] = (S.c[field] or 0) + n
    PENDING[field] = S.c[field]
  end
end
local function flush()
  if next(PENDING) == nil then return end
  local set, n = {}, 0
  for f, v in pairs(PENDING) do
    local text = PTEXT[f] or itoa(v)
    set[n + 1] = f
    set[n + 2] = text
    n = n + 2
    if v <= EXACT then KT[f], KV[f] = text, v else KT[f] = nil end
  end
  redis.call('HSET', ST, unpack(set))
  PENDING, PTEXT = {}, {}
end
-- Runs `cmd key a[i..j]` over `arr` in slices of `step` (unpack is bounded
-- by Lua's C stack).
local function bulk(cmd, key, arr, step)
  for i = 1, #arr, step do
    if key then
      redis.call(cmd, key, unpack(arr, i, math.min(i + step - 1, #arr)))
    else
      redis.call(cmd, unpack(arr, i, math.min(i + step - 1, #arr)))
    end
  end
end
-- The entry of task `id` if `tok` is its current lease, else nil (also
-- for an unusable entry).
local function current(id, tok)
  local e = entry(id)
  if not e then return nil end
  if e.traw ~= tok or not redis.call('ZSCORE', LS, id) then return nil end
  return e
end
-- KEYS[7], the wake list: one token per task that became waiting, for the
-- consumers blocked on it (wait_for_work); at most WAKE_MAX are kept.
-- Tokens nobody took expire with the key after a minute, and a lease that
-- empties the waiting set drops them all (their tasks are leased: a token
-- left would only wake an idle consumer for nothing). A damaged wake key
-- is left alone (its waiters time out instead).
local WAKE_MAX, WAKE_MAX_TEXT = 256, '255'
local function wake(n)
  if not WK or n <= 0 then return end
  local t = {}
  for i = 1, math.min(n, WAKE_MAX) do t[i] = '1' end
  if type(redis.pcall('LPUSH', WK, unpack(t))) == 'number' then
    redis.call('LTRIM', WK, '0', WAKE_MAX_TEXT)
    redis.call('PEXPIRE', WK, '60000')
  end
end
-- Puts `id` in the delayed set until `due`. True if it is now the first to
-- come due: a consumer blocked in wait_for_work cut its wait at the old
-- first due time (or not at all), so the caller wakes one (wake(1), after
-- any lease of its own, which drops tokens) to wait for this one instead.
local function delay_until(id, due)
  redis.call('ZADD', D, itoa(due), id)
  return redis.call('ZRANGE', D, '0', '0')[1] == id
end
-- Leases up to `max` tasks to `worker` until `deadline` (unix ms, text):
-- first moves at most `promote` due delayed tasks to the waiting set, then
-- pops a batch. `now`: unix ms, a number and `nows`, its text. Every
-- popped task is checked before anything is written; an unusable one is
-- parked and the batch filled up from the waiting set. Calls
-- granted(id, token, attempt) for each lease, in order.
local function lease_batch(now, nows, max, deadline, worker, promote, granted)
  max = math.min(max, 1000000000)
  if S.token + max > EXACT then fail(ST .. ' field token = ' .. fmt(S.token) .. ' leaves too few tokens') end
  if not LS_OK then expect(LS, 'zset'); LS_OK = true end  -- before a popped task goes there
  local due = redis.call('ZRANGEBYSCORE', D, '-inf', nows, 'LIMIT', '0', itoa(promote))
  for _, id in ipairs(due) do
    local e = entry(id)
    if e then
      make_waiting(id, e)
      redis.call('ZREM', D, id)
    else
      park(id)
    end
  end
  if max <= 0 then return end
  local ids, atts = {}, {}
  while #ids < max do
    local popped = redis.call('ZPOPMIN', W, itoa(max - #ids))
    if #popped == 0 then break end
    for i = 1, #popped, 2 do
      local id = popped[i]
      local e = entry(id)
      if e then
        ids[#ids + 1] = id
        atts[#atts + 1] = e.a + 1
      else
        park(id)
      end
    end
  end
  if #ids < max and WK then redis.pcall('LTRIM', WK, '1', '0') end
  local n = #ids
  if n == 0 then return end
  if POL == 'drop-lru' then bulk('ZREM', L, ids, 4000) end
  local first = S.token
  S.token = S.token + n
  PENDING.token = S.token
  local z = {}
  for i, id in ipairs(ids) do
    local tok = first + i
    redis.call('HSET', M .. id, 'a', itoa(atts[i]), 't', itoa(tok), 'w', worker)
    z[#z + 1] = deadline
    z[#z + 1] = id
    granted(id, tok, atts[i])
  end
  bulk('ZADD', LS, z, 4000)
  count('granted', n)
  if S.last then
    local iv = math.max(0, (now - S.last) / n)
    local e = S.ewma and (0.8 * S.ewma + 0.2 * iv) or iv
    PENDING.ewma, PTEXT.ewma = e, string.format('%.17g', e)
  end
  PENDING.deq_last, PTEXT.deq_last = now, nows
  flush()  -- the tokens handed out are written with the leases
end
-- The start of every call. begin() checks the type of every queue key and
-- every :state field (state()). begin(fields) reads and checks only the
-- :state fields `fields` the call uses (some_state()) and trusts the key
-- types: for a caller that checked them by a call of begin() shortly
-- before, and redoes a checking call when one fails with WRONGTYPE (a key
-- damaged since). Such a failure may come part-way, after other changes,
-- but never between taking a task out of one set and putting it into the
-- next: every such move writes its destination first or uses a set this
-- call has already used (:leases, else lease_batch checks it; :bylevel,
-- checked here if the policy uses it).
local function begin(fields)
  W, L, D, LS, ST, DL, WK = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
  if M ~= ARGV[1] then  -- (a function keeps them from its last call)
    M = ARGV[1]
    MB = string.sub(M, 1, -3) .. 'mb:'
  end
  local k = KNOWN[ST]
  if not k then
    if KNOWN_N >= 256 then KNOWN, KNOWN_N = {}, 0 end
    k = {{}, {}}
    KNOWN[ST], KNOWN_N = k, KNOWN_N + 1
  end
  KT, KV = k[1], k[2]
  S = fields and some_state(fields) or state()
  POL = S.policy or 'reject-new'
  LS_OK = not fields
  if fields and POL == 'drop-lru' then expect(L, 'zset') end
  PENDING, PTEXT = {}, {}
end
)lua";

// A transport script: the prelude as its library; per call begin(), `body`
// and flush() (also after an early return of `body`).
redis_script with_prelude(const char* name, const char* body) {
    return redis_script(name, prelude,
                        std::string("begin()\nlocal function run()\n") + body +
                            "\nend\nlocal out = run()\nflush()\nreturn out\n");
}

// ARGV: M, policy, capacity, then (id, priority) pairs.
// Returns {ewma, {code, position, evicted id, evicted priority, ...}}.
// Codes: 0 accepted, 1 duplicate, 2 full, 3 capacity 0, 4 not outranked,
// 5 empty id, 6 bad priority.
const redis_script admit_script = with_prelude("transport.admit", R"lua(
local pol, cap = ARGV[2], tonumber(ARGV[3])
if not S.policy then
  redis.call('HSET', ST, 'policy', pol)
elseif S.policy ~= pol then
  return redis.error_reply('ORCHCORE queue policy mismatch: the queue uses ' .. S.policy ..
                           ' but this transport is configured with ' .. pol)
end
POL = pol
local out = {}
local accepted, full, invalid, evicted = 0, 0, 0, 0
-- Depth and sequence are tracked here and written back once.
local depth = redis.call('ZCARD', W)
local seq = S.seq
-- The task to evict for one of priority p: code (0 or 4), id ('' if none
-- is needed or there is none), its priority. Unusable candidates are parked.
local function victim_for(p)
  while depth >= cap do
    local v
    if POL == 'drop-lru' then v = redis.call('ZRANGE', L, 0, 0)[1] else v = redis.call('ZRANGE', W, -1, -1)[1] end
    if not v then return 0, '', 0 end
    local e = entry(v)
    if e then
      if POL == 'priority' and p <= e.p then return 4, '', 0 end
      return 0, v, e.p
    end
    park(v)
    depth = redis.call('ZCARD', W)
  end
  return 0, '', 0
end
for i = 4, #ARGV, 2 do
  local id, p = ARGV[i], tonumber(ARGV[i + 1])
  local code, pos, victim, vprio = 0, 0, '', 0
  if id == '' then
    code = 5
  elseif not p or p < 0 or p > 20 or p ~= math.floor(p) then
    code = 6
  elseif redis.call('EXISTS', M .. id) == 1 then
    code = 1
  elseif depth >= cap and pol == 'reject-new' then
    code = 2
  elseif depth >= cap and depth == 0 then
    code = 3
  else
    code, victim, vprio = victim_for(p)
    if victim ~= '' then
      remove_waiting(victim)
      redis.call('DEL', M .. victim, MB .. victim)
      evicted = evicted + 1
      depth = depth - 1
    end
    if code == 0 then
      seq = seq + 1
      redis.call('HSET', M .. id, 'p', itoa(p), 's', itoa(seq), 'a', '0')
      local score = wait_score(p, seq)
      redis.call('ZADD', W, itoa(score), id)
      if POL == 'drop-lru' then redis.call('ZADD', L, itoa(p * SHIFT + seq), id) end
      if POL == 'priority' then
        pos = redis.call('ZCOUNT', W, '-inf', '(' .. fmt(score))
      else
        pos = depth  -- FIFO: the newest sequence, behind every waiting task
      end
      depth = depth + 1
      accepted = accepted + 1
    end
  end
  if code == 1 or code == 5 or code == 6 then invalid = invalid + 1 elseif code ~= 0 then full = full + 1 end
  out[#out + 1] = code
  out[#out + 1] = pos
  out[#out + 1] = victim
  out[#out + 1] = vprio
end
if seq ~= S.seq then PENDING.seq, PTEXT.seq = seq, fmt(seq) end
count('accepted', accepted)
wake(accepted)
count('rej_full', full)
count('rej_invalid', invalid)
count('evicted', evicted)
return {S.ewma and string.format('%.17g', S.ewma) or '', out}
)lua");

// ARGV: M, now ms, max, lease ms, worker, promote limit.
// Returns {id, token, attempt, ...}.
const redis_script lease_script = with_prelude("transport.lease", R"lua(
local now, max, dur, worker = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local out = {}
lease_batch(now, ARGV[2], max, itoa(now + dur), worker, tonumber(ARGV[6]), function(id, tok, att)
  out[#out + 1] = id
  out[#out + 1] = tok
  out[#out + 1] = att
end)
return out
)lua");

// ARGV: M, then (id, token) pairs. Returns {1|0, ...}.
const redis_script ack_script = with_prelude("transport.ack", R"lua(
-- The token field exists only while the task is leased (lease sets it;
-- nack, recovery and dead-lettering remove it), so it alone decides.
local out, acked, stale = {}, 0, 0
local ids, keys, seen = {}, {}, {}
for i = 2, #ARGV, 2 do
  local id, tok = ARGV[i], ARGV[i + 1]
  local t = redis.pcall('HGET', M .. id, 't')
  if not seen[id] and t == tok then
    seen[id] = true
    ids[#ids + 1] = id
    keys[#keys + 1] = M .. id
    keys[#keys + 1] = MB .. id
    out[#out + 1] = 1
    acked = acked + 1
  else
    out[#out + 1] = 0
    stale = stale + 1
  end
end
bulk('ZREM', LS, ids, 4000)
bulk('DEL', nil, keys, 4000)
count('acked', acked)
count('stale', stale)
return out
)lua");

// ARGV: M, id, token, now ms, delay ms.
const redis_script nack_script = with_prelude("transport.nack", R"lua(
local id, tok, now, delay = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local e = current(id, tok)
if not e then
  count('stale', 1)
  return 0
end
redis.call('ZREM', LS, id)
redis.call('HDEL', M .. id, 't', 'w')
if delay > 0 then
  if delay_until(id, now + delay) then wake(1) end
else
  make_waiting(id, e)
  wake(1)
end
count('nacked', 1)
return 1
)lua");

// ARGV: M, id, token, now ms, duration ms.
const redis_script extend_script = with_prelude("transport.extend", R"lua(
local id, tok, now, dur = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local dl = current(id, tok) and redis.call('ZSCORE', LS, id)
if not dl or tonumber(dl) < now then
  count('stale', 1)
  return 0
end
redis.call('ZADD', LS, 'XX', fmt(now + dur), id)
return 1
)lua");

// ARGV: M, id.
const redis_script cancel_script = with_prelude("transport.cancel", R"lua(
local id = ARGV[2]
if redis.call('ZREM', W, id) == 1 then
  if POL == 'drop-lru' then redis.call('ZREM', L, id) end
elseif redis.call('ZREM', D, id) == 0 then
  return 0
end
redis.call('DEL', M .. id, MB .. id)
count('cancelled', 1)
return 1
)lua");

// ARGV: M, id. A delayed task becomes waiting now (an unusable entry is
// parked for recovery) and one blocked consumer is woken.
const redis_script promote_script = with_prelude("transport.promote", R"lua(
local id = ARGV[2]
if redis.call('ZREM', D, id) == 0 then return 0 end
local e = entry(id)
if e then make_waiting(id, e) else park(id) end
wake(1)
return 1
)lua");

// ARGV: M, now ms, max, max lease expiries (0: unlimited).
// Returns {id, worker, attempt, token, deadline, expiries, dead (0|1), ...}.
// An orphan whose entry is unusable is buried and returned as dead
// (worker '', attempt 0, token 0, expiries 0).
const redis_script recover_script = with_prelude("transport.recover", R"lua(
local now, max, maxexp = tonumber(ARGV[2]), math.min(tonumber(ARGV[3]), 1000000000), tonumber(ARGV[4])
local found = redis.call('ZRANGEBYSCORE', LS, '-inf', '(' .. fmt(now), 'WITHSCORES', 'LIMIT', 0, max)
local out = {}
local recovered, dead = 0, 0
local function report(id, w, a, t, dl, x, buried)
  out[#out + 1] = id
  out[#out + 1] = w
  out[#out + 1] = a
  out[#out + 1] = t
  out[#out + 1] = fmt(math.max(dl, -MAX_MS))
  out[#out + 1] = x
  out[#out + 1] = buried
end
for i = 1, #found, 2 do
  local id, dl = found[i], tonumber(found[i + 1])
  redis.call('ZREM', LS, id)
  local e, why = entry(id)
  if e and not (dl and dl >= -MAX_MS) then e, why = nil, 'lease deadline ' .. shown(found[i + 1]) .. ' out of range' end
  if e and not e.t then
    -- Parked (never leased) and repaired since: back to the queue as it was.
    make_waiting(id, e)
  elseif e then
    local x, buried = e.x + 1, 0
    if maxexp > 0 and x >= maxexp then
      redis.call('DEL', M .. id, MB .. id)
      redis.call('HSET', DL, id, 'lease expired ' .. x .. (x == 1 and ' time' or ' times'))
      buried = 1
      dead = dead + 1
    else
      redis.call('HSET', M .. id, 'x', fmt(x))
      redis.call('HDEL', M .. id, 't', 'w')
      make_waiting(id, e)
      recovered = recovered + 1
    end
    report(id, e.w or '', e.a, e.traw, dl, x, buried)
  else
    bury(id, why)
    dead = dead + 1
    report(id, '', 0, '0', dl or -MAX_MS, 0, 1)
  end
end
count('recovered', recovered)
wake(recovered)
count('dead', dead)
return out
)lua");

// ARGV: M, id, messages... Returns 1, or 0 if the task is not in the queue.
const redis_script post_messages_script = with_prelude("transport.post_messages", R"lua(
local id = ARGV[2]
if redis.call('EXISTS', M .. id) == 0 then return 0 end
local t = redis.call('TYPE', MB .. id)['ok']
if t ~= 'list' and t ~= 'none' then fail('key ' .. MB .. id .. ' is a ' .. t .. ', not a list') end
for i = 3, #ARGV, 4000 do
  redis.call('RPUSH', MB .. id, unpack(ARGV, i, math.min(i + 3999, #ARGV)))
end
return 1
)lua");

// ARGV: M, id, token. Returns {1, messages...} or {0} (stale token).
const redis_script take_messages_script = with_prelude("transport.take_messages", R"lua(
local id, tok = ARGV[2], ARGV[3]
local t = current(id, tok) and redis.call('TYPE', MB .. id)['ok']
if t and t ~= 'list' and t ~= 'none' then fail('key ' .. MB .. id .. ' is a ' .. t .. ', not a list') end
if not t then
  count('stale', 1)
  return {0}
end
local msgs = redis.call('LRANGE', MB .. id, 0, -1)
redis.call('DEL', MB .. id)
table.insert(msgs, 1, 1)
return msgs
)lua");

std::string policy_name(queue_policy p) { return std::string(to_string(p)); }

// A string or integer reply as text (what the decoders read).
std::string text_of(const redis_reply& r, std::string_view what) {
    if (r.type == redis_reply::kind::integer) return std::to_string(r.integer);
    if (r.type == redis_reply::kind::string) return r.str;
    throw redis_error(redis_failure::server,
                      "orchcore: unexpected reply from redis to " + std::string(what) + " (not a string or integer)");
}

template <std::size_t N>
std::array<std::string, N> texts_of(const std::vector<redis_reply>& items, std::size_t from, std::string_view what) {
    std::array<std::string, N> out;
    for (std::size_t k = 0; k < N; ++k) out[k] = text_of(items[from + k], what);
    return out;
}

}  // namespace

const char* redis_detail::transport_prelude() noexcept { return prelude; }

redis_transport::redis_transport(std::shared_ptr<redis_client> client, std::string queue, transport_options o)
    : client_(std::move(client)), options_(o) {
    options_.validate();
    if (!client_) throw invalid_argument("client", "null", "a redis_transport needs a redis_client");
    base_ = redis_detail::key_base(client_->options().prefix, queue);
    keys_ = {base_ + ":waiting", base_ + ":bylevel", base_ + ":delayed", base_ + ":leases",
             base_ + ":state",   base_ + ":poisoned", base_ + ":wake"};
    meta_prefix_ = base_ + ":m:";
    interrupt_key_ = base_ + ":wake:" + redis_detail::random_hex();
    finished_channel_ = base_ + ":finished";
}

std::vector<transport_admission> redis_transport::admit_chunk(std::span<const transport_request> rs) {
    std::vector<std::string> args;
    args.reserve(3 + 2 * rs.size());
    args.push_back(meta_prefix_);
    args.push_back(policy_name(options_.policy));
    args.push_back(std::to_string(options_.capacity));
    for (const auto& r : rs) {
        args.push_back(r.id);
        args.push_back(std::to_string(r.priority));
    }
    const auto reply = client_->eval(admit_script, keys_, args);
    const auto& top = redis_detail::expect_array(reply, "transport.admit", 2);
    const auto retry_after =
        detail::retry_after_from(redis_codec::decode_ewma(keys_[4], text_of(top[0], "transport.admit")), options_);
    const auto& items = redis_detail::expect_array(top[1], "transport.admit", 4 * rs.size());
    std::vector<transport_admission> out;
    out.reserve(rs.size());
    const auto zero = std::chrono::milliseconds{0};
    for (std::size_t i = 0; i < rs.size(); ++i) {
        transport_admission r;
        r.id = rs[i].id;
        const long long code = items[4 * i].integer;
        switch (code) {
            case 0:
                r.is_accepted = true;
                r.position = static_cast<std::size_t>(items[4 * i + 1].integer);
                if (!items[4 * i + 2].str.empty())
                    r.evicted.emplace(queue_entry<std::monostate, std::string>{
                        items[4 * i + 2].str, {}, static_cast<int>(items[4 * i + 3].integer), {}});
                break;
            case 1:
                r = detail::transport_reject(std::move(r), rejection_reason::invalid_request,
                                             detail::transport_text_duplicate, zero);
                break;
            case 2:
                r = detail::transport_reject(std::move(r), rejection_reason::queue_full, detail::transport_text_full,
                                             retry_after);
                break;
            case 3:
                r = detail::transport_reject(std::move(r), rejection_reason::queue_full,
                                             detail::transport_text_capacity_zero, retry_after);
                break;
            case 4:
                r = detail::transport_reject(std::move(r), rejection_reason::queue_full,
                                             detail::transport_text_not_outranked, retry_after);
                break;
            case 5:
                r = detail::transport_reject(std::move(r), rejection_reason::invalid_request,
                                             detail::transport_text_empty_id, zero);
                break;
            default:
                r = detail::transport_reject(std::move(r), rejection_reason::invalid_request,
                                             detail::transport_text_bad_priority, zero);
                break;
        }
        out.push_back(std::move(r));
    }
    return out;
}

transport_admission redis_transport::admit(const transport_request& r) {
    return std::move(admit_chunk(std::span<const transport_request>(&r, 1)).front());
}

std::vector<transport_admission> redis_transport::admit_many(std::span<const transport_request> rs) {
    std::vector<transport_admission> out;
    out.reserve(rs.size());
    for (std::size_t i = 0; i < rs.size(); i += batch_chunk) {
        auto part = admit_chunk(rs.subspan(i, std::min(batch_chunk, rs.size() - i)));
        for (auto& r : part) out.push_back(std::move(r));
    }
    return out;
}

std::vector<transport_lease> redis_transport::lease(std::string_view worker, std::size_t max,
                                                    std::chrono::milliseconds duration, time_point now) {
    if (duration.count() <= 0)
        throw invalid_argument("lease duration", std::to_string(duration.count()) + "ms", "must be > 0");
    duration = redis_detail::clamp_wait(duration);  // now + duration must not overflow
    const auto now_ms = detail::to_unix_ms(now);
    const std::vector<std::string> args{meta_prefix_,
                                        std::to_string(now_ms),
                                        std::to_string(max),
                                        std::to_string(duration.count()),
                                        std::string(worker),
                                        "1000"};
    const auto reply = client_->eval(lease_script, keys_, args);
    const auto& items = redis_detail::expect_array(reply, "transport.lease");
    std::vector<transport_lease> out;
    out.reserve(items.size() / 3);
    const auto deadline = detail::from_unix_ms(now_ms + duration.count());
    for (std::size_t i = 0; i + 2 < items.size(); i += 3)
        out.push_back(redis_codec::decode_leased(meta_prefix_, texts_of<3>(items, i, "transport.lease"), worker,
                                                 deadline));
    return out;
}

std::vector<bool> redis_transport::ack_many(std::span<const lease_ref> refs) {
    std::vector<bool> out;
    out.reserve(refs.size());
    for (std::size_t i = 0; i < refs.size(); i += batch_chunk) {
        const auto part = refs.subspan(i, std::min(batch_chunk, refs.size() - i));
        std::vector<std::string> args;
        args.reserve(1 + 2 * part.size());
        args.push_back(meta_prefix_);
        for (const auto& r : part) {
            args.push_back(r.task_id);
            args.push_back(std::to_string(r.token));
        }
        const auto reply = client_->eval(ack_script, keys_, args);
        const auto& items = redis_detail::expect_array(reply, "transport.ack", part.size());
        for (const auto& v : items) out.push_back(v.integer == 1);
    }
    return out;
}

bool redis_transport::ack(const std::string& id, std::uint64_t token) {
    const lease_ref ref{id, token};
    return ack_many(std::span<const lease_ref>(&ref, 1)).front();
}

bool redis_transport::nack(const std::string& id, std::uint64_t token, std::chrono::milliseconds delay,
                           time_point now) {
    const std::vector<std::string> args{meta_prefix_, id, std::to_string(token),
                                        std::to_string(detail::to_unix_ms(now)), std::to_string(delay.count())};
    return client_->eval(nack_script, keys_, args).integer == 1;
}

bool redis_transport::extend(const std::string& id, std::uint64_t token, std::chrono::milliseconds duration,
                             time_point now) {
    const std::vector<std::string> args{meta_prefix_, id, std::to_string(token),
                                        std::to_string(detail::to_unix_ms(now)), std::to_string(duration.count())};
    return client_->eval(extend_script, keys_, args).integer == 1;
}

bool redis_transport::cancel(const std::string& id) {
    const std::vector<std::string> args{meta_prefix_, id};
    return client_->eval(cancel_script, keys_, args).integer == 1;
}

bool redis_transport::promote(const std::string& id) {
    const std::vector<std::string> args{meta_prefix_, id};
    return client_->eval(promote_script, keys_, args).integer == 1;
}

bool redis_transport::post_messages(const std::string& id, std::span<const std::string> messages) {
    if (messages.empty()) {
        // Nothing to append: still answer whether the task is there.
        const std::vector<std::string> args{meta_prefix_, id};
        return client_->eval(post_messages_script, keys_, args).integer == 1;
    }
    std::vector<std::string> args;
    args.reserve(2 + messages.size());
    args.push_back(meta_prefix_);
    args.push_back(id);
    args.insert(args.end(), messages.begin(), messages.end());
    return client_->eval(post_messages_script, keys_, args).integer == 1;
}

std::optional<std::vector<std::string>> redis_transport::take_messages(const std::string& id, std::uint64_t token) {
    const std::vector<std::string> args{meta_prefix_, id, std::to_string(token)};
    const auto reply = client_->eval(take_messages_script, keys_, args);
    const auto& items = redis_detail::expect_array(reply, "transport.take_messages", 1);
    if (items[0].integer != 1) return std::nullopt;
    std::vector<std::string> out;
    out.reserve(items.size() - 1);
    for (std::size_t i = 1; i < items.size(); ++i) out.push_back(items[i].str);
    return out;
}

std::vector<transport_lease> redis_transport::recover_expired(time_point now, std::size_t max) {
    const std::vector<std::string> args{meta_prefix_, std::to_string(detail::to_unix_ms(now)), std::to_string(max),
                                        std::to_string(options_.max_lease_expiries)};
    const auto reply = client_->eval(recover_script, keys_, args);
    const auto& items = redis_detail::expect_array(reply, "transport.recover");
    std::vector<transport_lease> out;
    for (std::size_t i = 0; i + 6 < items.size(); i += 7)
        out.push_back(redis_codec::decode_recovered(meta_prefix_, texts_of<7>(items, i, "transport.recover")));
    return out;
}

std::size_t redis_transport::size_approx() {
    const auto r = client_->pipeline({{"ZCARD", keys_[0]}, {"ZCARD", keys_[2]}});
    return static_cast<std::size_t>(redis_detail::expect_count(r[0], "ZCARD " + keys_[0]) +
                                    redis_detail::expect_count(r[1], "ZCARD " + keys_[2]));
}

std::size_t redis_transport::leased_count() {
    return static_cast<std::size_t>(
        redis_detail::expect_count(client_->command({"ZCARD", keys_[3]}), "ZCARD " + keys_[3]));
}

transport_stats redis_transport::stats() {
    const auto r = client_->pipeline(
        {{"ZCARD", keys_[0]}, {"ZCARD", keys_[2]}, {"ZCARD", keys_[3]}, {"HGETALL", keys_[4]}, {"HLEN", keys_[5]}});
    std::vector<std::string> flat;
    for (const auto& e : redis_detail::expect_array(r[3], "HGETALL " + keys_[4])) flat.push_back(e.str);
    transport_stats s = redis_codec::decode_queue_state(keys_[4], flat).counters;
    s.waiting = static_cast<std::size_t>(redis_detail::expect_count(r[0], "ZCARD " + keys_[0]));
    s.delayed = static_cast<std::size_t>(redis_detail::expect_count(r[1], "ZCARD " + keys_[2]));
    s.leased = static_cast<std::size_t>(redis_detail::expect_count(r[2], "ZCARD " + keys_[3]));
    s.dead = static_cast<std::size_t>(redis_detail::expect_count(r[4], "HLEN " + keys_[5]));
    return s;
}

std::vector<transport_dead_letter> redis_transport::dead_letters(std::size_t limit) {
    std::vector<transport_dead_letter> out;
    if (limit == 0) return out;
    std::string cursor = "0";
    do {
        const auto r = client_->command({"HSCAN", keys_[5], cursor, "COUNT", "1000"});
        const auto& top = redis_detail::expect_array(r, "HSCAN", 2);
        cursor = top[0].str;
        const auto& kv = top[1].elements;
        for (std::size_t i = 0; i + 1 < kv.size(); i += 2) out.push_back({kv[i].str, kv[i + 1].str});
    } while (cursor != "0");
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    if (out.size() > limit) out.resize(limit);
    return out;
}

redis_client& redis_transport::blocking_client() {
    std::lock_guard lk(blocking_mutex_);
    if (!blocking_) blocking_ = std::make_unique<redis_client>(client_->options());
    return *blocking_;
}

// How long to block: the caller's timeout, cut at the next delayed task's
// due time and at half the command timeout (the reply must come in time).
std::chrono::milliseconds redis_transport::block_for(std::chrono::milliseconds timeout) {
    auto block = std::min(redis_detail::clamp_wait(timeout), client_->options().command_timeout / 2);
    const auto first = client_->command({"ZRANGE", keys_[2], "0", "0", "WITHSCORES"});
    const auto& items = redis_detail::expect_array(first, "ZRANGE " + keys_[2]);
    if (items.size() == 2) {
        const double due = std::strtod(items[1].str.c_str(), nullptr);
        const double in = due - static_cast<double>(detail::to_unix_ms(clock::now()));
        if (!(in > 0)) return std::chrono::milliseconds(0);
        if (in < static_cast<double>(block.count())) block = std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(in)));
    }
    return block;
}

bool redis_transport::wait_for_work(std::chrono::milliseconds timeout) {
    const auto block = block_for(timeout);
    if (block.count() <= 0) return true;  // a delayed task is due (or no time to wait)
    auto& bc = blocking_client();
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.3f", static_cast<double>(block.count()) / 1000.0);
    struct counted {
        std::atomic<std::size_t>& n;
        explicit counted(std::atomic<std::size_t>& x) : n(x) { ++n; }
        ~counted() { --n; }
    } guard(waiters_);
    const auto r = bc.command({"BLPOP", keys_[6], interrupt_key_, secs}, redis_retry::at_most_once);
    if (r.is_error()) throw redis_error(redis_failure::server, "orchcore: BLPOP " + keys_[6] + ": " + r.str);
    return r.type == redis_reply::kind::array;
}

void redis_transport::interrupt_waits() {
    std::vector<std::string> push{"RPUSH", interrupt_key_};
    const auto n = std::clamp<std::size_t>(waiters_.load(), 1, 64);
    for (std::size_t i = 0; i < n; ++i) push.emplace_back("1");
    // Kept a while for a wait about to start; gone if nobody takes it.
    client_->pipeline({push, {"PEXPIRE", interrupt_key_, "60000"}}, redis_retry::at_most_once);
}

void redis_transport::publish_finished(std::span<const std::string> ids) {
    std::vector<std::vector<std::string>> cmds;
    cmds.reserve(ids.size());
    for (const auto& id : ids) cmds.push_back({"PUBLISH", finished_channel_, id});
    if (!cmds.empty()) client_->pipeline(cmds);
}

std::unique_ptr<transport_watch> redis_transport::watch_finished(std::function<void(const std::string&)> on_finished) {
    return redis_detail::watch_channel(client_->options(), finished_channel_, std::move(on_finished));
}

std::shared_ptr<node_backend> redis_transport::make_node_backend(const std::shared_ptr<task_store>& store) {
    if (!options_.combined_node_calls) return nullptr;
    auto self = weak_from_this().lock();
    return self ? redis_node_backend::combining(std::move(self), store) : nullptr;
}

bool redis_transport::drop_dead_letter(const std::string& id) {
    return redis_detail::expect_count(client_->command({"HDEL", keys_[5], id}), "HDEL " + keys_[5]) == 1;
}

}  // namespace orchcore
