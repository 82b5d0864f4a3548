#include <orchcore/redis/redis_node_backend.hpp>

#include "record_codec.hpp"
#include "redis_util.hpp"
#include "transport_lua.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <string>
#include <utility>

namespace orchcore {

namespace {

// After the transport prelude. KEYS[7]: the store's index set, KEYS[8..10]:
// its finished sets (completed, failed and timed out, cancelled).
// ARGV: M, record prefix "{p:q}:task:", now ms, now ticks, max, lease ms,
// worker, worker as a JSON string body, then three counted lists (types
// and tags as JSON string bodies, hold keys as '"key":'), then the count
// of outcomes and 9 fields per outcome (see finish()).
//
// Returns {settled codes (0 recorded, 1 stale, 2 conflict), leased:
// {id, token, attempt, code, s, d, p, r, ...}} with code 1 started, 0
// leased but not started (s, d, p, r as stored), 2 leased, record not
// readable here (s, d, p, r empty).
constexpr const char* node_body = R"lua(
local TP, NOW, TICKS, MAXN, DUR = ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local WRAW, WJ = ARGV[7], ARGV[8]
expect(KEYS[7], 'set'); expect(KEYS[8], 'zset'); expect(KEYS[9], 'zset'); expect(KEYS[10], 'zset')
local pos = 9
local function list()
  local n, s, l = tonumber(ARGV[pos]), {}, {}
  for i = pos + 1, pos + n do s[ARGV[i]] = true; l[#l + 1] = ARGV[i] end
  pos = pos + n + 1
  return s, l
end
local TYPES, TYPEL = list()
local TAGS = list()
local _, HOLDS = list()
local TERMINAL = {completed = KEYS[8], failed = KEYS[9], timed_out = KEYS[9], cancelled = KEYS[10]}

-- The record's JSON with the start written in, or nil if the record
-- cannot be started here (not this layout, a type or tag this worker
-- lacks, a hold key, its whole-task timeout passed).
local function started(s, d)
  local ty = string.match(d, '^{"v":1,"id":".-","type":"(.-)","priority":')
  if not ty or (#TYPEL > 0 and not TYPES[ty]) then return nil end
  local tags = string.match(d, ',"tags":%[(.-)%],"timeout_ms":')
  if not tags then return nil end
  if tags ~= '' then
    local inner, i = string.sub(tags, 2, -2), 1
    while true do
      local j = string.find(inner, '","', i, true)
      if not TAGS[string.sub(inner, i, (j or 0) - 1)] then return nil end
      if not j then break end
      i = j + 3
    end
  end
  for _, h in ipairs(HOLDS) do
    if string.find(d, h, 1, true) then return nil end
  end
  local tm = uint(string.match(d, ',"timeout_ms":(%d+),"turn_timeout_ms":'), EXACT)
  if not tm then return nil end
  if tm > 0 then
    local ca = tonumber(string.match(d, ',"created_at":(%-?%d+),"started_at":') or '')
    if not ca or ca / 1000000 + tm <= NOW then return nil end
  end
  -- The top-level fields come last; a key inside metadata comes earlier.
  local at, from = nil, 1
  while true do
    local k = string.find(d, ',"started_at":', from, true)
    if not k then break end
    at, from = k, k + 1
  end
  if not at then return nil end
  local sa, fa, a, rt, tu, wl, rest = string.match(d,
    '^,"started_at":([^,]*),"finished_at":([^,]*),"attempts":(%d+),"retries":(%d+),"turns":(%d+),' ..
    '"worker_losses":(%d+),"worker_id":".-","progress":(.*)$', at)
  a, wl = uint(a, MAX_ATTEMPT), uint(wl, MAX_ATTEMPT)
  if not a or not wl then return nil end
  if s == 'running' then wl = wl + 1 end
  return string.sub(d, 1, at - 1) .. ',"started_at":' .. (sa == 'null' and TICKS or sa) .. ',"finished_at":' ..
         fa .. ',"attempts":' .. fmt(a + 1) .. ',"retries":' .. rt .. ',"turns":' .. tu .. ',"worker_losses":' ..
         fmt(wl) .. ',"worker_id":"' .. WJ .. '","progress":' .. rest
end

-- Appends one leased task, started if its record allows.
local function start(out, id, tok, att)
  local rk = TP .. id
  local h = redis.pcall('HMGET', rk, 's', 'd', 'p', 'r')
  out[#out + 1] = id; out[#out + 1] = tok; out[#out + 1] = att
  if h.err or not h[1] or not h[2] then
    for _, v in ipairs({2, '', '', '', ''}) do out[#out + 1] = v end
    return
  end
  local s, d = h[1], h[2]
  local nd = (s == 'queued' or s == 'running') and started(s, d)
  if nd then
    redis.call('HSET', rk, 's', 'running', 'd', nd)
    s, d = 'running', nd
  end
  for _, v in ipairs({nd and 1 or 0, s, d, h[3] or '', h[4] or ''}) do out[#out + 1] = v end
end

-- Leases up to `max` as the transport's lease does, and starts them.
local function fetch(max)
  local out = {}
  max = math.min(max, 1000000000)
  if S.token + max > EXACT then fail(ST .. ' field token = ' .. fmt(S.token) .. ' leaves too few tokens') end
  local due = redis.call('ZRANGEBYSCORE', D, '-inf', fmt(NOW), 'LIMIT', 0, 1000)
  for _, id in ipairs(due) do
    redis.call('ZREM', D, id)
    local e = entry(id)
    if e then make_waiting(id, e) else park(id) end
  end
  if max <= 0 then return out end
  local ids, atts = {}, {}
  while #ids < max do
    local popped = redis.call('ZPOPMIN', W, max - #ids)
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
  local n = #ids
  if n == 0 then return out end
  if POL == 'drop-lru' then bulk('ZREM', L, ids, 4000) end
  local first = redis.call('HINCRBY', ST, 'token', n) - n
  local deadline = fmt(NOW + DUR)
  local z = {}
  for i, id in ipairs(ids) do
    local tok = first + i
    redis.call('HSET', M .. id, 'a', fmt(atts[i]), 't', fmt(tok), 'w', WRAW)
    z[#z + 1] = deadline
    z[#z + 1] = id
    start(out, id, fmt(tok), atts[i])
  end
  bulk('ZADD', LS, z, 4000)
  count('granted', n)
  if S.last then
    local iv = math.max(0, (NOW - S.last) / n)
    local e = S.ewma and (0.8 * S.ewma + 0.2 * iv) or iv
    redis.call('HSET', ST, 'ewma', string.format('%.17g', e))
  end
  redis.call('HSET', ST, 'deq_last', fmt(NOW))
  return out
end

-- One outcome: id, token, expected status, status, d, r, finished ms ('':
-- not terminal), expire-at ms (0: none), nack delay ms.
local acked, nacked, stale = 0, 0, 0
local function finish(id, tok, exp, st, d, r, fin, expat, delay)
  local e = current(id, tok)
  local dl = e and redis.call('ZSCORE', LS, id)
  if not dl or tonumber(dl) < NOW then
    stale = stale + 1
    return 1
  end
  local rk = TP .. id
  if redis.call('TYPE', rk)['ok'] ~= 'hash' or redis.call('HGET', rk, 's') ~= exp then return 2 end
  redis.call('HSET', rk, 's', st, 'd', d, 'r', r)
  redis.call('SADD', KEYS[7], id)
  if fin ~= '' and TERMINAL[st] then redis.call('ZADD', TERMINAL[st], fin, id) end
  if tonumber(expat) > 0 then redis.call('PEXPIREAT', rk, expat) end
  redis.call('ZREM', LS, id)
  if TERMINAL[st] then
    redis.call('DEL', M .. id, MB .. id)
    acked = acked + 1
  else
    redis.call('HDEL', M .. id, 't', 'w')
    if tonumber(delay) > 0 then redis.call('ZADD', D, fmt(NOW + tonumber(delay)), id) else make_waiting(id, e) end
    nacked = nacked + 1
  end
  return 0
end

local settled = {}
local nout = tonumber(ARGV[pos])
for i = pos + 1, pos + 9 * nout, 9 do
  settled[#settled + 1] = finish(unpack(ARGV, i, i + 8))
end
count('acked', acked)
count('nacked', nacked)
count('stale', stale)
return {settled, fetch(MAXN)}
)lua";

const redis_script& node_script() {
    static const redis_script s("node.finish_and_fetch", std::string(redis_detail::transport_prelude()) + node_body);
    return s;
}

// The body of `s` as a JSON string (what sits between the quotes).
std::string json_body(std::string_view s) {
    const auto q = boost::json::serialize(boost::json::string_view(s.data(), s.size()));
    return q.substr(1, q.size() - 2);
}

}  // namespace

redis_node_backend::redis_node_backend(std::shared_ptr<redis_transport> t, std::shared_ptr<redis_task_store> s)
    : tp_(t), store_(s), rtp_(std::move(t)), rstore_(std::move(s)) {
    if (!rtp_) throw invalid_argument("transport", "null", "a redis_node_backend needs a redis_transport");
    if (!rstore_) throw invalid_argument("store", "null", "a redis_node_backend needs a redis_task_store");
    const auto& base = rtp_->key_base();
    if (rstore_->key_base() != base)
        throw invalid_argument("store", rstore_->key_base(), "must be of the transport's queue " + base);
    keys_ = {base + ":waiting",
             base + ":bylevel",
             base + ":delayed",
             base + ":leases",
             base + ":state",
             base + ":poisoned",
             rstore_->index_key_,
             rstore_->finished_completed_,
             rstore_->finished_failed_,
             rstore_->finished_cancelled_};
}

std::vector<std::string> redis_node_backend::spec_args(const start_spec& s, std::size_t max, time_point now) const {
    check_args(s);
    const auto dur = redis_detail::clamp_wait(s.lease_duration);
    std::vector<std::string> a{rtp_->key_base() + ":m:",
                               rtp_->key_base() + ":task:",
                               std::to_string(detail::to_unix_ms(now)),
                               std::to_string(redis_detail::to_ticks(now)),
                               std::to_string(max),
                               std::to_string(dur.count()),
                               s.worker,
                               json_body(s.worker)};
    a.push_back(std::to_string(s.types.size()));
    for (const auto& t : s.types) a.push_back(json_body(t));
    a.push_back(std::to_string(s.tags.size()));
    for (const auto& t : s.tags) a.push_back(json_body(t));
    a.push_back(std::to_string(s.hold_keys.size()));
    for (const auto& k : s.hold_keys) a.push_back("\"" + json_body(k) + "\":");
    return a;
}

std::vector<node_task> redis_node_backend::decode_next(const redis_reply& r, const start_spec& s,
                                                       time_point now) const {
    const auto& items = redis_detail::expect_array(r, "node.finish_and_fetch");
    const auto meta = rtp_->key_base() + ":m:";
    const auto deadline =
        detail::from_unix_ms(detail::unix_ms_after(detail::to_unix_ms(now), redis_detail::clamp_wait(s.lease_duration)));
    std::vector<node_task> out;
    out.reserve(items.size() / 8);
    for (std::size_t i = 0; i + 7 < items.size(); i += 8) {
        std::array<std::string, 3> f;
        for (std::size_t k = 0; k < 3; ++k)
            f[k] = items[i + k].type == redis_reply::kind::integer ? std::to_string(items[i + k].integer)
                                                                    : items[i + k].str;
        node_task t{redis_codec::decode_leased(meta, f, s.worker, deadline), std::nullopt, false};
        const auto code = items[i + 3].integer;
        if (code == 2) {
            t.record = store_->get(t.lease.task_id);  // dead-letters an undecodable record
        } else {
            try {
                t.record = redis_codec::decode_task_record(rstore_->record_key(t.lease.task_id), t.lease.task_id,
                                                           items[i + 4].str, items[i + 5].str, items[i + 6].str,
                                                           items[i + 7].str);
                t.started = code == 1;
            } catch (const invalid_argument&) {
                t.record = store_->get(t.lease.task_id);
            }
        }
        out.push_back(std::move(t));
    }
    return out;
}

std::vector<node_task> redis_node_backend::lease_and_start(const start_spec& s, std::size_t max, time_point now) {
    return finish_and_fetch({}, s, max, now).next;
}

node_batch redis_node_backend::finish_and_fetch(std::span<const node_outcome> outcomes, const start_spec& s,
                                                std::size_t max_next, time_point now) {
    for (const auto& o : outcomes) {
        if (o.rec.status != o.expected) check_transition(o.expected, o.rec.status);
        rstore_->check_sizes(o.rec);
    }
    node_batch b;
    std::size_t from = 0;
    do {
        const auto part = outcomes.subspan(from, std::min(batch_chunk, outcomes.size() - from));
        from += part.size();
        const bool last = from >= outcomes.size();
        auto args = spec_args(s, last ? max_next : 0, now);
        args.push_back(std::to_string(part.size()));
        for (const auto& o : part) {
            auto w = rstore_->write_args(o.rec);  // id, status, meta, payload, result, finished, expire-at
            args.insert(args.end(), {std::move(w[0]), std::to_string(o.token), std::string(to_string(o.expected)),
                                     std::move(w[1]), std::move(w[2]), std::move(w[4]), std::move(w[5]),
                                     std::move(w[6]), std::to_string(o.delay.count())});
        }
        const auto reply = rtp_->client()->eval(node_script(), keys_, args);
        const auto& top = redis_detail::expect_array(reply, "node.finish_and_fetch", 2);
        const auto& codes = redis_detail::expect_array(top[0], "node.finish_and_fetch", part.size());
        for (std::size_t k = 0; k < part.size(); ++k)
            b.settled.push_back(codes[k].integer == 0   ? node_batch::fate::recorded
                                : codes[k].integer == 1 ? node_batch::fate::stale
                                                        : node_batch::fate::conflict);
        if (last) b.next = decode_next(top[1], s, now);
    } while (from < outcomes.size());
    return b;
}

}  // namespace orchcore
