#include <orchcore/redis/redis_task_store.hpp>

#include "record_codec.hpp"
#include "redis_util.hpp"
#include "task_store_scripts.hpp"

#include <algorithm>
#include <iterator>
#include <limits>
#include <string>
#include <utility>

namespace orchcore {

namespace {

namespace lua = redis_store_scripts;

// A store script: the prelude (and the record writes, if `writes`) as its
// library, `body` per call.
redis_script store_script(const char* name, bool writes, std::string body) {
    return redis_script(name, lua::prelude() + (writes ? lua::record_write_fns() : std::string()), std::move(body));
}

const redis_script create_script = store_script("store.create", true, lua::write_head() + lua::create_body);
const redis_script create_many_script = store_script("store.create_many", true, lua::create_many_body());
const redis_script update_script = store_script("store.update", true, lua::write_head() + lua::update_body);
const redis_script erase_script = store_script("store.erase", false, lua::erase_body());
const redis_script expire_script = store_script("store.expire", false, lua::expire_body);
const redis_script bury_script = store_script("store.dead_letter", false, lua::bury_body());

// How long past its expiry time a bucket list stays, for expire() to
// report its ids, before Redis drops it.
constexpr std::int64_t index_grace_ms = 60'000;
// The most ids expire() removes per call (whole buckets).
constexpr std::size_t expire_batch = 10'000;
constexpr std::array<const char*, 3> class_names{"completed", "failed", "cancelled"};

std::size_t class_of(task_status s) { return s == task_status::completed ? 0 : s == task_status::cancelled ? 2 : 1; }

std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

// a + b, or nullopt if it overflows.
std::optional<std::int64_t> checked_add(std::int64_t a, std::int64_t b) {
    std::int64_t out = 0;
    if (__builtin_add_overflow(a, b, &out)) return std::nullopt;
    return out;
}

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
    finished_prefix_ = base_ + ":finished:";
    for (std::size_t c = 0; c < class_names.size(); ++c) {
        registry_[c] = finished_prefix_ + class_names[c];
        counts_[c] = registry_[c] + ":count";
    }
}

std::chrono::milliseconds redis_task_store::ttl_of(task_status s) const {
    return s == task_status::completed   ? options_.completed_ttl
           : s == task_status::cancelled ? options_.cancelled_ttl
                                         : options_.failed_ttl;
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

std::vector<std::string> redis_task_store::write_keys(const task_record& r) const {
    const auto c = class_of(r.status);
    return {record_key(r.id), live_key_, registry_[c], counts_[c]};
}

// ARGV[1..7] of the write scripts (`x` of redis_store_scripts::record_write_fns).
std::vector<std::string> redis_task_store::index_args(const task_record& r) const {
    const auto c = class_of(r.status);
    const auto prefix = finished_prefix_ + class_names[c] + ":";
    if (!is_terminal(r.status)) return {r.id, "", "", "", "0", "0", prefix};
    if (!r.finished_at) return {r.id, class_names[c], "never", "+inf", "0", "0", prefix};
    const auto bucket = floor_div(redis_codec::to_unix_ns(*r.finished_at), 1'000'000'000);
    const auto fin_ms = redis_detail::to_ms(*r.finished_at);
    const auto ttl = ttl_of(r.status).count();
    // A TTL that reaches past the largest unix-ms time (any TTL up to
    // milliseconds::max() is allowed) sets no Redis expiry: it never comes.
    std::string expire_at = "0", bucket_expire_at = "0";
    if (ttl > 0) {
        if (const auto at = checked_add(fin_ms, ttl)) expire_at = std::to_string(std::max<std::int64_t>(1, *at));
        const auto keep = checked_add(ttl, index_grace_ms);
        if (const auto at = keep ? checked_add((bucket + 1) * 1000, *keep) : std::nullopt)
            bucket_expire_at = std::to_string(std::max<std::int64_t>(1, *at));
    }
    const auto b = std::to_string(bucket);
    return {r.id, class_names[c], b, b, expire_at, bucket_expire_at, prefix};
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
    return client_->eval(create_script, write_keys(r), create_args(r)).integer == 1;
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

// One store.create_many call for records [from, to).
redis_script_call redis_task_store::create_many_call(std::span<const task_record> rs, std::size_t from,
                                                     std::size_t to) const {
    redis_script_call call;
    call.keys.reserve(7 + (to - from));
    call.keys.push_back(live_key_);
    for (std::size_t c = 0; c < class_names.size(); ++c) {
        call.keys.push_back(registry_[c]);
        call.keys.push_back(counts_[c]);
    }
    for (std::size_t k = from; k < to; ++k) {
        call.keys.push_back(record_key(rs[k].id));
        auto a = create_args(rs[k]);
        call.args.push_back(std::to_string(a.size()));
        std::move(a.begin(), a.end(), std::back_inserter(call.args));
    }
    return call;
}

std::vector<bool> redis_task_store::create_many(std::span<const task_record> rs) {
    for (const auto& r : rs) check_sizes(r, true);
    // Calls of up to 100 records (a script blocks the server while it
    // runs), up to 10 of them per round trip.
    constexpr std::size_t per_call = 100, per_trip = 10;
    std::vector<bool> out;
    out.reserve(rs.size());
    std::vector<redis_script_call> calls;
    for (std::size_t i = 0; i < rs.size(); i += per_call * per_trip) {
        calls.clear();
        for (std::size_t k = i; k < std::min(rs.size(), i + per_call * per_trip); k += per_call)
            calls.push_back(create_many_call(rs, k, std::min(rs.size(), k + per_call)));
        const auto replies = client_->eval_pipeline(create_many_script, calls);
        for (std::size_t c = 0; c < calls.size(); ++c) {
            const auto n = calls[c].keys.size() - 7;
            const auto& created = redis_detail::expect_array(replies.at(c), "store.create_many", n);
            for (std::size_t k = 0; k < n; ++k) out.push_back(created[k].integer == 1);
        }
    }
    return out;
}

bool redis_task_store::update(const task_record& r, task_status expected) {
    if (r.status != expected) check_transition(expected, r.status);
    check_sizes(r, false);
    return client_->eval(update_script, write_keys(r), update_args(r, expected)).integer == 1;
}

std::vector<bool> redis_task_store::update_many(std::span<const task_record> rs, std::span<const task_status> expected) {
    check_batch(rs.size(), expected.size());
    for (std::size_t i = 0; i < rs.size(); ++i) {
        if (rs[i].status != expected[i]) check_transition(expected[i], rs[i].status);
        check_sizes(rs[i], false);
    }
    return eval_batch(*client_, update_script, "store.update", rs.size(), [&](std::size_t k) {
        return redis_script_call{write_keys(rs[k]), update_args(rs[k], expected[k])};
    });
}

std::vector<std::string> redis_task_store::index_keys_all(const std::string& id) const {
    std::vector<std::string> keys{record_key(id), live_key_};
    for (std::size_t c = 0; c < class_names.size(); ++c) {
        keys.push_back(registry_[c]);
        keys.push_back(counts_[c]);
    }
    return keys;
}

bool redis_task_store::erase(const std::string& id) {
    const std::vector<std::string> args{id, finished_prefix_};
    return client_->eval(erase_script, index_keys_all(id), args).integer == 1;
}

void redis_task_store::bury(const std::string& id, const std::vector<redis_reply>* fields,
                            const std::string& reason) const {
    auto keys = index_keys_all(id);
    keys.insert(keys.begin() + 2, {dead_key_, base_ + ":dead:" + id});
    std::vector<std::string> args{id, finished_prefix_, fields ? "1" : "0", reason};
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

// The ids of one page of index `source` (0: the live set; 1 + c: the
// buckets of class c) from `cursor`, which it advances ("0" when done).
// Bucket pages are read whole bucket by bucket, 256 ids at a time.
std::vector<std::pair<std::string, std::string>> redis_task_store::index_page(std::size_t source,
                                                                              std::string& cursor) const {
    std::vector<std::pair<std::string, std::string>> out;  // id, bucket ("" for the live set)
    if (source == 0) {
        const auto page = client_->command({"SSCAN", live_key_, cursor, "COUNT", "256"});
        const auto& parts = redis_detail::expect_array(page, "SSCAN " + live_key_, 2);
        cursor = parts[0].str;
        for (const auto& e : parts[1].elements) out.emplace_back(e.str, "");
        return out;
    }
    // cursor: "<bucket rank>:<offset in it>", "0" = start.
    const auto& reg = registry_[source - 1];
    const auto colon = cursor.find(':');
    const long long rank = colon == std::string::npos ? 0 : std::stoll(cursor.substr(0, colon));
    const long long offset = colon == std::string::npos ? 0 : std::stoll(cursor.substr(colon + 1));
    const auto buckets = client_->command({"ZRANGE", reg, std::to_string(rank), std::to_string(rank)});
    const auto& b = redis_detail::expect_array(buckets, "ZRANGE " + reg);
    if (b.empty()) {
        cursor = "0";
        return out;
    }
    constexpr long long chunk = 256;
    const auto list = finished_prefix_ + class_names[source - 1] + ":" + b[0].str;
    const auto ids = client_->command({"LRANGE", list, std::to_string(offset), std::to_string(offset + chunk - 1)});
    const auto& e = redis_detail::expect_array(ids, "LRANGE " + list);
    for (const auto& id : e) out.emplace_back(id.str, b[0].str);
    cursor = static_cast<long long>(e.size()) < chunk ? std::to_string(rank + 1) + ":0"
                                                       : std::to_string(rank) + ":" + std::to_string(offset + chunk);
    return out;
}

// Whether `r`, met in index `source` (bucket `bucket`), is filed there: a
// bucket may still list an id whose record now is another one.
bool redis_task_store::filed_in(const task_record& r, std::size_t source, const std::string& bucket) const {
    if (source == 0) return !is_terminal(r.status);
    if (!is_terminal(r.status) || class_of(r.status) != source - 1) return false;
    if (!r.finished_at) return bucket == "never";
    return bucket == std::to_string(floor_div(redis_codec::to_unix_ns(*r.finished_at), 1'000'000'000));
}

std::vector<task_record> redis_task_store::list(const task_filter& f) const {
    std::vector<task_record> out;
    for (std::size_t source = 0; source < 4 && out.size() < f.limit; ++source) {
        if (f.status && (source == 0 ? is_terminal(*f.status) : class_of(*f.status) != source - 1 ||
                                                                     !is_terminal(*f.status)))
            continue;
        std::string cursor = "0";
        do {
            const auto ids = index_page(source, cursor);
            if (ids.empty()) continue;
            std::vector<std::vector<std::string>> cmds;
            for (const auto& [id, bucket] : ids) cmds.push_back({"HGETALL", record_key(id)});
            const auto replies = client_->pipeline(cmds);
            // A vanished record (Redis expired it) is skipped; expire()
            // removes its index entry and reports it.
            for (std::size_t i = 0; i < ids.size() && out.size() < f.limit; ++i) {
                auto r = decode_or_bury(ids[i].first, replies[i]);
                if (r && filed_in(*r, source, ids[i].second) && f.matches(*r)) out.push_back(std::move(*r));
            }
        } while (cursor != "0" && out.size() < f.limit);
    }
    return out;
}

std::vector<std::string> redis_task_store::expire(std::chrono::system_clock::time_point now,
                                                  std::chrono::milliseconds completed_ttl,
                                                  std::chrono::milliseconds failed_ttl,
                                                  std::chrono::milliseconds cancelled_ttl) {
    const auto now_ms = redis_detail::to_ms(now);
    // A record with a Redis-side TTL is gone once that TTL passed: report
    // it (and drop its index entry) then, even if the caller's TTL is longer.
    auto cutoff = [&](std::chrono::milliseconds arg, std::chrono::milliseconds in_redis) -> std::string {
        const auto ttl = in_redis.count() > 0 ? std::min(arg, in_redis) : arg;
        const auto at = checked_add(now_ms, -ttl.count());
        // Lua numbers are doubles: a cutoff before any storable time is -2^53.
        constexpr std::int64_t lowest = -(std::int64_t{1} << 53);
        return std::to_string(at && *at > lowest ? *at : lowest);
    };
    std::vector<std::string> keys;
    for (std::size_t c = 0; c < class_names.size(); ++c) {
        keys.push_back(registry_[c]);
        keys.push_back(counts_[c]);
    }
    const std::vector<std::string> args{base_ + ":task:",
                                        finished_prefix_,
                                        cutoff(completed_ttl, options_.completed_ttl),
                                        cutoff(failed_ttl, options_.failed_ttl),
                                        cutoff(cancelled_ttl, options_.cancelled_ttl),
                                        std::to_string(expire_batch)};
    const auto reply = client_->eval(expire_script, keys, args);
    std::vector<std::string> out;
    for (const auto& e : redis_detail::expect_array(reply, "store.expire")) out.push_back(e.str);
    return out;
}

std::size_t redis_task_store::size() const {
    std::vector<std::vector<std::string>> cmds{{"SCARD", live_key_}};
    for (const auto& k : counts_) cmds.push_back({"HGET", k, "total"});
    const auto replies = client_->pipeline(cmds);
    auto n = static_cast<std::size_t>(redis_detail::expect_count(replies[0], "SCARD " + live_key_));
    for (std::size_t c = 0; c < counts_.size(); ++c) {
        const auto& r = replies[c + 1];
        if (r.is_nil()) continue;
        if (r.type != redis_reply::kind::string)
            throw redis_error(redis_failure::server, "orchcore: unexpected reply from redis to HGET " + counts_[c] +
                                                         " total" + (r.is_error() ? ": " + r.str : std::string()));
        n += static_cast<std::size_t>(std::max<std::int64_t>(0, redis_codec::parse_int(r.str, counts_[c], "total")));
    }
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
