#include <orchcore/redis/redis_node_backend.hpp>

#include "record_codec.hpp"
#include "redis_util.hpp"
#include "task_store_scripts.hpp"
#include "transport_lua.hpp"

#include <algorithm>
#include <array>
#include <exception>
#include <string_view>
#include <string>
#include <utility>

namespace orchcore {

namespace {

// The node script's own library part (after the transport's and the
// store's): the per-call values the body sets, and the functions over them.
constexpr const char* node_lib = R"lua(
-- Set by each call (node_body).
local NOW, NOW_TEXT, NOW_NS, DEADLINE, WRAW
-- The store's keys and the finish channel, made from M ("{p:q}:m:") when it
-- changes (a function keeps them from its last call): record prefix TP,
-- live set LIVE, per class its registry REG, count hash CNT and bucket key
-- prefix BUCKETS.
local KEYS_OF, TP, CHAN, LIVE
local REG, CNT, BUCKETS = {}, {}, {}
local CLASSES = {'completed', 'failed', 'cancelled'}
local function store_keys()
  if KEYS_OF == M then return end
  KEYS_OF = M
  local base = string.sub(M, 1, -4)
  TP, CHAN, LIVE = base .. ':task:', base .. ':finished', base .. ':tasks'
  for _, c in ipairs(CLASSES) do
    REG[c] = base .. ':finished:' .. c
    CNT[c] = REG[c] .. ':count'
    BUCKETS[c] = REG[c] .. ':'
  end
end
-- The start spec: types (a set and a list), tags (a set), hold keys (a list).
local TYPES, TYPEL, TAGS, HOLDS
local NOW_S, NOW_R  -- split_ns(NOW_NS), once a timeout needs it
local acked, nacked, stale, woken, first_due  -- what the finishes did
local OUT  -- the leased tasks (fetch())
-- With more than one outcome, the terminal ones recorded: their records to
-- file (file_batch()) and their ids, whose leases are then settled
-- (settle()); else nil (filed and settled at once).
local FILING, DONE
local NONE = {}  -- an empty list or set (never written)
-- The counted list at ARGV[pos]: its values as a set and as a list, and
-- the position after it.
local function list(pos)
  if ARGV[pos] == '0' then return NONE, NONE, pos + 1 end
  local n = tonumber(ARGV[pos])
  local s, l = {}, {}
  for i = pos + 1, pos + n do s[ARGV[i]] = true; l[#l + 1] = ARGV[i] end
  return s, l, pos + n + 1
end

-- Decimal nanoseconds as (seconds, nanoseconds), exact for any int64.
local function split_ns(v)
  if type(v) ~= 'string' then return nil end
  if #v > 9 and string.find(v, '^%d+$') then return tonumber(string.sub(v, 1, -10)), tonumber(string.sub(v, -9)) end
  local n = tonumber(v)
  if not n then return nil end
  local sec = math.floor(n / 1e9)
  return sec, n - sec * 1e9
end
-- Whether the whole-task timeout of record `m` (field map) has not passed:
-- created + timeout > now.
local function in_time(m)
  local tm = 0
  if m[F_OPTIONS] then
    tm = tonumber(string.match(m[F_OPTIONS], '^[^,]*,(%d+),') or '')
    if not tm then return false end
  end
  if tm <= 0 then return true end
  local cs, cr = split_ns(m[F_CREATED])
  if not cs then return false end
  if not NOW_S then NOW_S, NOW_R = split_ns(NOW_NS) end
  local ds, dr = cs + math.floor(tm / 1000), cr + (tm % 1000) * 1e6
  if dr >= 1e9 then ds, dr = ds + 1, dr - 1e9 end
  return ds > NOW_S or (ds == NOW_S and dr > NOW_R)
end
-- Whether record `m` may be started here (node_backend::startable).
local function startable(m)
  local st = m[F_STATUS]
  if st ~= 'queued' and st ~= 'running' then return false end
  if #TYPEL > 0 and not TYPES[m[F_TYPE] or ''] then return false end
  if m[F_TAGS] then
    local ok, tags = pcall(cjson.decode, m[F_TAGS])
    if not ok or type(tags) ~= 'table' then return false end
    for _, t in ipairs(tags) do if not TAGS[t] then return false end end
  end
  if #HOLDS > 0 and m[F_META] then
    local ok, meta = pcall(cjson.decode, m[F_META])
    if not ok or type(meta) ~= 'table' then return false end
    for _, h in ipairs(HOLDS) do if meta[h] ~= nil then return false end end
  end
  return in_time(m)
end
-- Writes the start into record `rk` whose fields are `m`
-- (node_backend::started). False if a counter cannot be read.
local function write_start(rk, m)
  local a, l = uint(m[F_ATTEMPTS] or '0', MAX_ATTEMPT), uint(m[F_LOSSES] or '0', MAX_ATTEMPT)
  if not a or not l then return false end
  local set = {F_STATUS, 'running', F_ATTEMPTS, itoa(a + 1), F_WORKER, WRAW}
  if not m[F_STARTED] then set[7], set[8] = F_STARTED, NOW_NS end
  if m[F_STATUS] == 'running' then
    set[#set + 1] = F_LOSSES
    set[#set + 1] = itoa(l + 1)
  end
  redis.call('HSET', rk, unpack(set))
  return true
end

-- Appends one leased task to OUT, started if its record allows.
local function start(id, tok, att)
  local rk, out = TP .. id, OUT
  out[#out + 1] = id; out[#out + 1] = tok; out[#out + 1] = att
  local flat, m = redis.pcall('HGETALL', rk), {}
  if flat.err or #flat == 0 then
    out[#out + 1] = 2; out[#out + 1] = {}
    return
  end
  for i = 1, #flat, 2 do m[flat[i]] = flat[i + 1] end
  local started = startable(m) and write_start(rk, m)
  out[#out + 1] = started and 1 or 0; out[#out + 1] = flat
end

-- Leases up to `max` as the transport's lease does, and starts them.
local function fetch(max)
  OUT = {}
  lease_batch(NOW, NOW_TEXT, max, DEADLINE, WRAW, 1000, start)
  return OUT
end

-- One outcome at ARGV[i]: token, expected status, nack delay ms, id, and of
-- the store's index arguments the bucket, record expire-at and bucket
-- expire-at (the others follow from the status), then the state values
-- (STATE_FIELDS order): the record is written by the store's write_state.
-- A terminal one's record is filed and its lease settled at once, or with
-- the call's other terminal outcomes (DONE, settle()).
local OUT_ARGS = 7 + #STATE_FIELDS
-- Whether the lease is current: for a terminal outcome, as the transport's
-- ack decides, by the entry's token alone (the entry goes); else the whole
-- entry is read and checked (the task goes back to a set).
local function finish(i)
  local tok, exp, id = ARGV[i], ARGV[i + 1], ARGV[i + 3]
  local terminal = class_of(ARGV[i + 7])
  local e, t
  if terminal then
    t = redis.pcall('HGET', M .. id, 't')
  else
    e = entry(id)
    t = e and e.traw
  end
  local dl = false
  if t == tok then
    dl = redis.call('ZSCORE', LS, id)
    LS_OK = true  -- (else that call failed)
  end
  if not dl or tonumber(dl) < NOW then
    stale = stale + 1
    return 1
  end
  local c, b = terminal or 'completed', ARGV[i + 4]
  local x = {id, terminal or '', b, b == 'never' and '+inf' or b, ARGV[i + 5], ARGV[i + 6], BUCKETS[c]}
  local vals = {unpack(ARGV, i + 7, i + OUT_ARGS - 1)}
  if write_state(TP .. id, LIVE, REG[c], CNT[c], x, exp, vals, FILING) == 0 then return 2 end
  if terminal then
    acked = acked + 1
    if DONE then
      DONE[#DONE + 1] = id
    else
      redis.call('ZREM', LS, id)
      redis.call('DEL', M .. id, MB .. id)
      redis.call('PUBLISH', CHAN, id)
    end
  else
    -- Into its waiting or delayed set before out of the leases (see begin()).
    local delay = tonumber(ARGV[i + 2])
    if delay > 0 then
      if delay_until(id, NOW + delay) then first_due = true end
    else
      make_waiting(id, e)
      woken = woken + 1
    end
    redis.call('ZREM', LS, id)
    redis.call('HDEL', M .. id, 't', 'w')
    nacked = nacked + 1
  end
  return 0
end
-- Files the records of the terminal outcomes recorded, then settles their
-- leases (out of the leases, the entries deleted, the finish published).
local function settle()
  file_batch(FILING)
  if #DONE == 0 then return end
  local keys = {}
  for i, id in ipairs(DONE) do keys[2 * i - 1], keys[2 * i] = M .. id, MB .. id end
  redis.call('ZREM', LS, unpack(DONE))
  redis.call('DEL', unpack(keys))
  for _, id in ipairs(DONE) do redis.call('PUBLISH', CHAN, id) end
end
)lua";

// After the transport prelude, the store's prelude and its record writes
// (redis_store_scripts::record_write_fns, the store's own update) and
// node_lib, which are the script's library; it starts with the transport's
// begin().
// KEYS[1..7]: the transport's (the store's keys, of the same queue, are
// made from M: store_keys()).
// ARGV: M, now ms, now ns, max, the lease deadline (unix ms), worker, '1'
// if the key types are trusted (else checked, the transport's and the
// store's: then begin() reads only the :state fields TRUSTED_STATE), then
// three counted lists
// (types, tags, hold keys), then the count of outcomes and OUT_ARGS per
// outcome (see finish()). With more than one outcome, the terminal ones are
// recorded first, then their records filed (per bucket at once) and their
// leases settled, then the others.
//
// Returns {settled codes (0 recorded, 1 stale, 2 conflict), leased:
// {id, token, attempt, code, fields, ...}} with code 1 started, 0 leased
// but not started, 2 leased, the record not a hash here (fields empty);
// fields: the record's HGETALL as read, before the start's writes (the
// caller applies node_backend::started, which writes the same values).
// Each terminal outcome recorded is PUBLISHed on the finish channel (its
// id), as redis_transport::publish_finished does. (Whether anyone listens
// is not known here: in a cluster, PUBLISH counts only this shard's
// subscribers.)
constexpr const char* node_body = R"lua(
begin(ARGV[7] == '1' and TRUSTED_STATE or nil)
store_keys()
NOW, NOW_TEXT, NOW_NS, DEADLINE, WRAW = tonumber(ARGV[2]), ARGV[2], ARGV[3], ARGV[5], ARGV[6]
NOW_S, NOW_R = nil, nil
if ARGV[7] ~= '1' then
  expect(LIVE, 'set')
  for _, c in ipairs(CLASSES) do expect(REG[c], 'zset'); expect(CNT[c], 'hash') end
end
local pos, _
TYPES, TYPEL, pos = list(8)
TAGS, _, pos = list(pos)
_, HOLDS, pos = list(pos)
acked, nacked, stale, woken, first_due = 0, 0, 0, 0, false
local settled, nout = {}, tonumber(ARGV[pos])
if nout == 1 then
  FILING, DONE = nil, nil
  settled[1] = finish(pos + 1)
elseif nout > 1 then
  -- The terminal outcomes first (recorded, filed, settled), then the others.
  FILING, DONE = {}, {}
  local again = {}
  for k = 1, nout do
    local i = pos + 1 + (k - 1) * OUT_ARGS
    if class_of(ARGV[i + 7]) then settled[k] = finish(i) else again[#again + 1] = k end
  end
  settle()
  for _, k in ipairs(again) do settled[k] = finish(pos + 1 + (k - 1) * OUT_ARGS) end
end
count('acked', acked)
count('nacked', nacked)
count('stale', stale)
wake(woken)
local leased = fetch(tonumber(ARGV[4]))
if first_due then wake(1) end
flush()
return {settled, leased}
)lua";

// Lua names of the record fields node_body reads and writes.
std::string field_names() {
    namespace tf = redis_codec::task_field;
    std::string out;
    for (const auto& [name, f] : {std::pair{"F_TYPE", tf::type}, std::pair{"F_TAGS", tf::tags},
                                  std::pair{"F_META", tf::metadata}, std::pair{"F_OPTIONS", tf::options},
                                  std::pair{"F_CREATED", tf::created_at}, std::pair{"F_ATTEMPTS", tf::attempts},
                                  std::pair{"F_LOSSES", tf::worker_losses}, std::pair{"F_WORKER", tf::worker_id},
                                  std::pair{"F_STARTED", tf::started_at}})
        out += "local " + std::string(name) + " = '" + std::string(f) + "'\n";
    // The :state fields a call that trusts the key types reads (begin()).
    out += "local TRUSTED_STATE = {'policy', 'token', 'ewma', 'deq_last', 'acked', 'nacked', 'stale', 'granted'}\n";
    return out;
}

const redis_script& node_script() {
    static const redis_script s("node.finish_and_fetch",
                                std::string(redis_detail::transport_prelude()) + redis_store_scripts::prelude() +
                                    redis_store_scripts::record_write_fns() + field_names() + node_lib,
                                node_body);
    return s;
}

}  // namespace

redis_node_backend::redis_node_backend(std::shared_ptr<redis_transport> t, std::shared_ptr<redis_task_store> s)
    : tp_(t), store_(s), rtp_(std::move(t)), rstore_(std::move(s)) {
    if (!rtp_) throw invalid_argument("transport", "null", "a redis_node_backend needs a redis_transport");
    if (!rstore_) throw invalid_argument("store", "null", "a redis_node_backend needs a redis_task_store");
    const auto& base = rtp_->key_base();
    if (rstore_->key_base() != base)
        throw invalid_argument("store", rstore_->key_base(), "must be of the transport's queue " + base);
    if (!fits(*rtp_, *rstore_))
        throw invalid_argument("store", rstore_->client_->options().describe(),
                               "must be on the transport's server " + rtp_->client()->options().describe());
    keys_ = {base + ":waiting", base + ":bylevel", base + ":delayed", base + ":leases",
             base + ":state",   base + ":poisoned", base + ":wake"};
}

bool redis_node_backend::fits(const redis_transport& t, const redis_task_store& s) noexcept {
    if (s.key_base() != t.key_base()) return false;
    const auto& a = t.client()->options();
    const auto& b = s.client_->options();
    return t.client() == s.client_ || (a.host == b.host && a.port == b.port && a.db == b.db);
}

std::shared_ptr<redis_node_backend> redis_node_backend::combining(std::shared_ptr<redis_transport> t,
                                                                  const std::shared_ptr<task_store>& s) {
    auto rs = std::dynamic_pointer_cast<redis_task_store>(s);
    if (!t || !rs || !fits(*t, *rs)) return nullptr;
    return std::make_shared<redis_node_backend>(std::move(t), std::move(rs));
}

std::vector<std::string> redis_node_backend::spec_args(const start_spec& s, std::size_t max, time_point now) const {
    check_args(s);
    const auto dur = redis_detail::clamp_wait(s.lease_duration);
    const auto now_ms = detail::to_unix_ms(now);
    std::vector<std::string> a{rtp_->key_base() + ":m:",
                               std::to_string(now_ms),
                               std::to_string(redis_codec::to_unix_ns(now)),
                               std::to_string(max),
                               std::to_string(detail::unix_ms_after(now_ms, dur)),
                               s.worker,
                               "0"};  // trust_arg
    a.push_back(std::to_string(s.types.size()));
    a.insert(a.end(), s.types.begin(), s.types.end());
    a.push_back(std::to_string(s.tags.size()));
    a.insert(a.end(), s.tags.begin(), s.tags.end());
    a.push_back(std::to_string(s.hold_keys.size()));
    a.insert(a.end(), s.hold_keys.begin(), s.hold_keys.end());
    return a;
}

std::vector<node_task> redis_node_backend::decode_next(redis_reply& r, const start_spec& s, time_point now) const {
    (void)redis_detail::expect_array(r, "node.finish_and_fetch");
    auto& items = r.elements;  // the records' fields are moved out
    const auto meta = rtp_->key_base() + ":m:";
    const auto deadline =
        detail::from_unix_ms(detail::unix_ms_after(detail::to_unix_ms(now), redis_detail::clamp_wait(s.lease_duration)));
    std::vector<node_task> out;
    out.reserve(items.size() / 5);
    for (std::size_t i = 0; i + 4 < items.size(); i += 5) {
        std::array<std::string, 3> f;
        for (std::size_t k = 0; k < 3; ++k)
            f[k] = items[i + k].type == redis_reply::kind::integer ? std::to_string(items[i + k].integer)
                                                                    : items[i + k].str;
        node_task t{redis_codec::decode_leased(meta, f, s.worker, deadline), std::nullopt, false};
        const auto code = items[i + 3].integer;
        std::vector<std::string> flat;
        flat.reserve(items[i + 4].elements.size());
        for (auto& e : items[i + 4].elements) flat.push_back(std::move(e.str));
        if (code == 2 || flat.empty()) {
            t.record = store_->get(t.lease.task_id);  // dead-letters what is not a record
        } else {
            try {
                t.record = redis_codec::decode_task_record(rstore_->record_key(t.lease.task_id), t.lease.task_id, flat);
                t.started = code == 1;
                if (t.started) t.record = started(std::move(*t.record), s, now);
            } catch (const invalid_argument&) {
                t.record = store_->get(t.lease.task_id);  // dead-letters it
            }
        }
        out.push_back(std::move(t));
    }
    return out;
}

// One script call. The types of the transport's and the store's keys (the
// queue's sets and :state; the live set, the registries and counts) are
// checked on the backend's first call, after any call that failed and at
// least every key_check_every; the calls in between trust them (and read
// and check only the :state fields they use). A key damaged since makes a
// trusting call fail part-way (Redis keeps what the script changed): a
// store key after a record write and before its lease is settled, a queue
// key before a task leaves the set it is in (see the transport prelude's
// begin()), so that the lease expires and recovery settles the task, as
// for a node that died there. The failure is reported as a checking call
// reports it, naming the key, by a checking call that leases and records
// nothing.
redis_reply redis_node_backend::eval(std::vector<std::string>& args, const start_spec& s, time_point now) {
    const auto t = std::chrono::steady_clock::now().time_since_epoch().count();
    const auto seen = checked_at_.load(std::memory_order_relaxed);
    const bool trusted =
        seen != 0 && t - seen < std::chrono::duration_cast<std::chrono::steady_clock::duration>(key_check_every).count();
    args[trust_arg] = trusted ? "1" : "0";
    std::exception_ptr failed;
    try {
        auto r = rtp_->client()->eval(node_script(), keys_, args);
        if (!trusted) checked_at_.store(t, std::memory_order_relaxed);
        return r;
    } catch (const redis_error& e) {
        checked_at_.store(0, std::memory_order_relaxed);
        if (!trusted || std::string_view(e.what()).find("WRONGTYPE") == std::string_view::npos) throw;
        failed = std::current_exception();
    } catch (...) {
        checked_at_.store(0, std::memory_order_relaxed);
        throw;
    }
    auto check = spec_args(s, 0, now);
    check.push_back("0");  // no outcomes
    (void)rtp_->client()->eval(node_script(), keys_, check);  // throws naming the key
    std::rethrow_exception(failed);                           // repaired meanwhile
}

std::vector<node_task> redis_node_backend::lease_and_start(const start_spec& s, std::size_t max, time_point now) {
    return finish_and_fetch({}, s, max, now).next;
}

node_batch redis_node_backend::finish_and_fetch(std::span<const node_outcome> outcomes, const start_spec& s,
                                                std::size_t max_next, time_point now) {
    for (const auto& o : outcomes) {
        if (o.rec.status != o.expected) check_transition(o.expected, o.rec.status);
        rstore_->check_sizes(o.rec, false);
    }
    node_batch b;
    b.announced = true;
    std::size_t from = 0;
    do {
        const auto part = outcomes.subspan(from, std::min(batch_chunk, outcomes.size() - from));
        from += part.size();
        const bool last = from >= outcomes.size();
        auto args = spec_args(s, last ? max_next : 0, now);
        args.push_back(std::to_string(part.size()));
        for (const auto& o : part) {
            args.insert(args.end(), {std::to_string(o.token), std::string(to_string(o.expected)),
                                     std::to_string(o.delay.count())});
            auto x = rstore_->index_args(o.rec);  // id, class, bucket, score, expire-at, bucket's, prefix
            args.insert(args.end(), {std::move(x[0]), std::move(x[2]), std::move(x[4]), std::move(x[5])});
            for (auto& v : redis_codec::encode_task_state(o.rec)) args.push_back(std::move(v));
        }
        auto reply = eval(args, s, now);
        (void)redis_detail::expect_array(reply, "node.finish_and_fetch", 2);
        auto& top = reply.elements;
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
