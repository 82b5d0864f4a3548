#include <orchcore/redis/redis_transport.hpp>

#include "redis_util.hpp"

#include <algorithm>
#include <string>
#include <utility>

namespace orchcore {

namespace {

// Shared prelude of every transport script. KEYS: waiting, bylevel,
// delayed, leases, state, dead letters. ARGV[1]: the per-task key prefix "{p:q}:m:".
constexpr const char* prelude = R"lua(
local W, L, D, LS, ST, DL = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local M = ARGV[1]
-- "{p:q}:m:" -> "{p:q}:mb:": the steering mailbox of a task.
local MB = string.sub(M, 1, -3) .. 'mb:'
local SHIFT = 70368744177664
local function fmt(n) return string.format('%.0f', n) end
local function current_policy() return redis.call('HGET', ST, 'policy') or 'reject-new' end
local function wait_score(p, s, pol)
  if pol == 'priority' then return (20 - p) * SHIFT + s end
  return s
end
local function make_waiting(id, pol)
  local m = redis.call('HMGET', M .. id, 'p', 's')
  local p, s = tonumber(m[1]), tonumber(m[2])
  if not p or not s then return false end
  redis.call('ZADD', W, fmt(wait_score(p, s, pol)), id)
  if pol == 'drop-lru' then redis.call('ZADD', L, fmt(p * SHIFT + s), id) end
  return true
end
local function remove_waiting(id, pol)
  redis.call('ZREM', W, id)
  if pol == 'drop-lru' then redis.call('ZREM', L, id) end
end
local function count(field, n)
  if n > 0 then redis.call('HINCRBY', ST, field, n) end
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
local function is_current(id, tok)
  return redis.call('HGET', M .. id, 't') == tok and redis.call('ZSCORE', LS, id)
end
)lua";

std::string with_prelude(const char* body) { return std::string(prelude) + body; }

// ARGV: M, policy, capacity, then (id, priority) pairs.
// Returns {ewma, {code, position, evicted id, evicted priority, ...}}.
// Codes: 0 accepted, 1 duplicate, 2 full, 3 capacity 0, 4 not outranked,
// 5 empty id, 6 bad priority.
const redis_script admit_script("transport.admit", with_prelude(R"lua(
local pol, cap = ARGV[2], tonumber(ARGV[3])
local stored = redis.call('HGET', ST, 'policy')
if not stored then
  redis.call('HSET', ST, 'policy', pol)
elseif stored ~= pol then
  return redis.error_reply('ORCHCORE queue policy mismatch: the queue uses ' .. stored ..
                           ' but this transport is configured with ' .. pol)
end
local out = {}
local accepted, full, invalid, evicted = 0, 0, 0, 0
-- Depth and sequence are tracked here and written back once.
local depth = redis.call('ZCARD', W)
local seq0 = tonumber(redis.call('HGET', ST, 'seq') or '0')
local seq = seq0
for i = 4, #ARGV, 2 do
  local id, p = ARGV[i], tonumber(ARGV[i + 1])
  local code, pos, victim, vprio = 0, 0, '', 0
  if id == '' then
    code = 5
  elseif not p or p < 0 or p > 20 or p ~= math.floor(p) then
    code = 6
  elseif redis.call('EXISTS', M .. id) == 1 then
    code = 1
  else
    if depth >= cap then
      if pol == 'reject-new' then
        code = 2
      elseif depth == 0 then
        code = 3
      elseif pol == 'drop-lru' then
        victim = redis.call('ZRANGE', L, 0, 0)[1] or ''
      else
        victim = redis.call('ZRANGE', W, -1, -1)[1] or ''
        if victim ~= '' and p <= tonumber(redis.call('HGET', M .. victim, 'p')) then
          code = 4
          victim = ''
        end
      end
      if code == 0 and victim ~= '' then
        vprio = tonumber(redis.call('HGET', M .. victim, 'p'))
        remove_waiting(victim, pol)
        redis.call('DEL', M .. victim, MB .. victim)
        evicted = evicted + 1
        depth = depth - 1
      end
    end
    if code == 0 then
      seq = seq + 1
      local s = seq
      redis.call('HSET', M .. id, 'p', p, 's', s, 'a', 0)
      local score = wait_score(p, s, pol)
      redis.call('ZADD', W, fmt(score), id)
      if pol == 'drop-lru' then redis.call('ZADD', L, fmt(p * SHIFT + s), id) end
      if pol == 'priority' then
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
if seq ~= seq0 then redis.call('HSET', ST, 'seq', fmt(seq)) end
count('accepted', accepted)
count('rej_full', full)
count('rej_invalid', invalid)
count('evicted', evicted)
return {redis.call('HGET', ST, 'ewma') or '', out}
)lua"));

// ARGV: M, now ms, max, lease ms, worker, promote limit.
// Returns {id, token, attempt, ...}.
const redis_script lease_script("transport.lease", with_prelude(R"lua(
local now, max, dur, worker = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local pol = current_policy()
local due = redis.call('ZRANGEBYSCORE', D, '-inf', fmt(now), 'LIMIT', 0, tonumber(ARGV[6]))
for _, id in ipairs(due) do
  redis.call('ZREM', D, id)
  make_waiting(id, pol)
end
local out = {}
if max <= 0 then return out end
max = math.min(max, 1000000000)
-- One ZPOPMIN, one token reservation and one ZADD per batch; two calls
-- per task (its attempt counter, its token and worker).
local popped = redis.call('ZPOPMIN', W, max)
local ids = {}
for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
local n = #ids
if n > 0 then
  if pol == 'drop-lru' then bulk('ZREM', L, ids, 4000) end
  local first = redis.call('HINCRBY', ST, 'token', n) - n
  local deadline = fmt(now + dur)
  local z = {}
  for i, id in ipairs(ids) do
    local tok = first + i
    local att = redis.call('HINCRBY', M .. id, 'a', 1)
    redis.call('HSET', M .. id, 't', fmt(tok), 'w', worker)
    z[#z + 1] = deadline
    z[#z + 1] = id
    out[#out + 1] = id
    out[#out + 1] = tok
    out[#out + 1] = att
  end
  bulk('ZADD', LS, z, 4000)
  count('granted', n)
  local last = tonumber(redis.call('HGET', ST, 'deq_last'))
  if last then
    local iv = math.max(0, (now - last) / n)
    local e = tonumber(redis.call('HGET', ST, 'ewma'))
    if e then e = 0.8 * e + 0.2 * iv else e = iv end
    redis.call('HSET', ST, 'ewma', string.format('%.17g', e))
  end
  redis.call('HSET', ST, 'deq_last', fmt(now))
end
return out
)lua"));

// ARGV: M, then (id, token) pairs. Returns {1|0, ...}.
const redis_script ack_script("transport.ack", with_prelude(R"lua(
-- The token field exists only while the task is leased (lease sets it;
-- nack, recovery and dead-lettering remove it), so it alone decides.
local out, acked, stale = {}, 0, 0
local ids, keys, seen = {}, {}, {}
for i = 2, #ARGV, 2 do
  local id, tok = ARGV[i], ARGV[i + 1]
  if not seen[id] and redis.call('HGET', M .. id, 't') == tok then
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
)lua"));

// ARGV: M, id, token, now ms, delay ms.
const redis_script nack_script("transport.nack", with_prelude(R"lua(
local id, tok, now, delay = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
if not is_current(id, tok) then
  count('stale', 1)
  return 0
end
redis.call('ZREM', LS, id)
redis.call('HDEL', M .. id, 't', 'w')
if delay > 0 then
  redis.call('ZADD', D, fmt(now + delay), id)
else
  make_waiting(id, current_policy())
end
count('nacked', 1)
return 1
)lua"));

// ARGV: M, id, token, now ms, duration ms.
const redis_script extend_script("transport.extend", with_prelude(R"lua(
local id, tok, now, dur = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local dl = is_current(id, tok)
if not dl or tonumber(dl) < now then
  count('stale', 1)
  return 0
end
redis.call('ZADD', LS, 'XX', fmt(now + dur), id)
return 1
)lua"));

// ARGV: M, id.
const redis_script cancel_script("transport.cancel", with_prelude(R"lua(
local id = ARGV[2]
local pol = current_policy()
if redis.call('ZREM', W, id) == 1 then
  if pol == 'drop-lru' then redis.call('ZREM', L, id) end
elseif redis.call('ZREM', D, id) == 0 then
  return 0
end
redis.call('DEL', M .. id, MB .. id)
count('cancelled', 1)
return 1
)lua"));

// ARGV: M, now ms, max, max lease expiries (0: unlimited).
// Returns {id, worker, attempt, token, deadline, expiries, dead (0|1), ...}.
const redis_script recover_script("transport.recover", with_prelude(R"lua(
local now, max, maxexp = tonumber(ARGV[2]), math.min(tonumber(ARGV[3]), 1000000000), tonumber(ARGV[4])
local pol = current_policy()
local found = redis.call('ZRANGEBYSCORE', LS, '-inf', '(' .. fmt(now), 'WITHSCORES', 'LIMIT', 0, max)
local out = {}
local recovered, dead = 0, 0
for i = 1, #found, 2 do
  local id, dl = found[i], found[i + 1]
  redis.call('ZREM', LS, id)
  local m = redis.call('HMGET', M .. id, 'w', 'a', 't')
  if m[3] then
    local x = redis.call('HINCRBY', M .. id, 'x', 1)
    local buried = 0
    if maxexp > 0 and x >= maxexp then
      redis.call('DEL', M .. id, MB .. id)
      redis.call('HSET', DL, id, 'lease expired ' .. x .. (x == 1 and ' time' or ' times'))
      buried = 1
      dead = dead + 1
    else
      redis.call('HDEL', M .. id, 't', 'w')
      make_waiting(id, pol)
      recovered = recovered + 1
    end
    out[#out + 1] = id
    out[#out + 1] = m[1] or ''
    out[#out + 1] = tonumber(m[2]) or 0
    out[#out + 1] = m[3]
    out[#out + 1] = dl
    out[#out + 1] = x
    out[#out + 1] = buried
  end
end
count('recovered', recovered)
count('dead', dead)
return out
)lua"));

// ARGV: M, id, messages... Returns 1, or 0 if the task is not in the queue.
const redis_script post_messages_script("transport.post_messages", with_prelude(R"lua(
local id = ARGV[2]
if redis.call('EXISTS', M .. id) == 0 then return 0 end
for i = 3, #ARGV, 4000 do
  redis.call('RPUSH', MB .. id, unpack(ARGV, i, math.min(i + 3999, #ARGV)))
end
return 1
)lua"));

// ARGV: M, id, token. Returns {1, messages...} or {0} (stale token).
const redis_script take_messages_script("transport.take_messages", with_prelude(R"lua(
local id, tok = ARGV[2], ARGV[3]
if not is_current(id, tok) then
  count('stale', 1)
  return {0}
end
local msgs = redis.call('LRANGE', MB .. id, 0, -1)
redis.call('DEL', MB .. id)
table.insert(msgs, 1, 1)
return msgs
)lua"));

std::string policy_name(queue_policy p) { return std::string(to_string(p)); }

}  // namespace

redis_transport::redis_transport(std::shared_ptr<redis_client> client, std::string queue, transport_options o)
    : client_(std::move(client)), options_(o) {
    options_.validate();
    if (!client_) throw invalid_argument("client", "null", "a redis_transport needs a redis_client");
    base_ = redis_detail::key_base(client_->options().prefix, queue);
    keys_ = {base_ + ":waiting", base_ + ":bylevel", base_ + ":delayed",
             base_ + ":leases",  base_ + ":state",   base_ + ":poisoned"};
    meta_prefix_ = base_ + ":m:";
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
    std::optional<double> ewma;
    if (!top[0].str.empty()) ewma = std::stod(top[0].str);
    const auto retry_after = detail::retry_after_from(ewma, options_);
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
        out.push_back({items[i].str, std::string(worker), static_cast<std::uint32_t>(items[i + 2].integer),
                       static_cast<std::uint64_t>(items[i + 1].integer), deadline});
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
    for (std::size_t i = 0; i + 6 < items.size(); i += 7) {
        transport_lease l;
        l.task_id = items[i].str;
        l.worker_id = items[i + 1].str;
        l.attempt = static_cast<std::uint32_t>(items[i + 2].integer);
        l.token = std::stoull(items[i + 3].str);
        l.deadline = detail::from_unix_ms(static_cast<std::int64_t>(std::stod(items[i + 4].str)));
        l.expiries = static_cast<std::uint32_t>(items[i + 5].integer);
        l.dead_lettered = items[i + 6].integer == 1;
        out.push_back(std::move(l));
    }
    return out;
}

std::size_t redis_transport::size_approx() {
    const auto r = client_->pipeline({{"ZCARD", keys_[0]}, {"ZCARD", keys_[2]}});
    return static_cast<std::size_t>(r[0].integer + r[1].integer);
}

std::size_t redis_transport::leased_count() {
    return static_cast<std::size_t>(client_->command({"ZCARD", keys_[3]}).integer);
}

transport_stats redis_transport::stats() {
    const auto r = client_->pipeline(
        {{"ZCARD", keys_[0]}, {"ZCARD", keys_[2]}, {"ZCARD", keys_[3]}, {"HGETALL", keys_[4]}, {"HLEN", keys_[5]}});
    transport_stats s;
    s.waiting = static_cast<std::size_t>(r[0].integer);
    s.delayed = static_cast<std::size_t>(r[1].integer);
    s.leased = static_cast<std::size_t>(r[2].integer);
    s.dead = static_cast<std::size_t>(r[4].integer);
    const auto& h = r[3].elements;
    for (std::size_t i = 0; i + 1 < h.size(); i += 2) {
        const std::string& k = h[i].str;
        std::uint64_t v = 0;
        try {
            v = std::stoull(h[i + 1].str);
        } catch (const std::exception&) {
            continue;  // non-counter fields (policy, ewma)
        }
        if (k == "accepted") s.accepted = v;
        else if (k == "rej_full") s.rejected_by_reason[static_cast<std::size_t>(rejection_reason::queue_full)] = v;
        else if (k == "rej_invalid")
            s.rejected_by_reason[static_cast<std::size_t>(rejection_reason::invalid_request)] = v;
        else if (k == "evicted") s.evicted = v;
        else if (k == "cancelled") s.cancelled = v;
        else if (k == "granted") s.leases_granted = v;
        else if (k == "acked") s.acked = v;
        else if (k == "nacked") s.nacked = v;
        else if (k == "recovered") s.recovered = v;
        else if (k == "stale") s.stale_refusals = v;
        else if (k == "dead") s.dead_lettered = v;
    }
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

bool redis_transport::drop_dead_letter(const std::string& id) {
    return client_->command({"HDEL", keys_[5], id}).integer == 1;
}

}  // namespace orchcore
