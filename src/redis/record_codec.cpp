#include "record_codec.hpp"

#include "redis_util.hpp"

#include <orchcore/codec.hpp>

#include <boost/json.hpp>

#include <charconv>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

namespace orchcore::redis_codec {

namespace json = boost::json;

namespace {

std::string shown(std::string_view v) {
    constexpr std::size_t cut = 64;
    std::string s = "\"";
    s.append(v.substr(0, cut));
    if (v.size() > cut) s.append("...");
    s.append("\"");
    return s;
}

std::string joined(std::string_view key, std::string_view field) {
    std::string s(key);
    s.append(" ").append(field);
    return s;
}

// from_chars over the whole text, or nullopt.
template <class T>
std::optional<T> whole_number(std::string_view text) {
    T v{};
    const char* end = text.data() + text.size();
    const auto [p, ec] = std::from_chars(text.data(), end, v);
    if (ec != std::errc{} || p != end || text.empty()) return std::nullopt;
    return v;
}

}  // namespace

void corrupt(std::string_view key, std::string_view field, std::string_view value, std::string_view reason) {
    throw invalid_argument(joined(key, field), shown(value), reason);
}

std::int64_t parse_int(std::string_view text, std::string_view key, std::string_view field, std::int64_t lo,
                       std::int64_t hi) {
    const auto v = whole_number<std::int64_t>(text);
    if (!v) corrupt(key, field, text, "not an integer");
    if (*v < lo || *v > hi)
        corrupt(key, field, text, "out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return *v;
}

std::uint64_t parse_uint(std::string_view text, std::string_view key, std::string_view field, std::uint64_t hi) {
    const auto v = whole_number<std::uint64_t>(text);
    if (!v) corrupt(key, field, text, "not a non-negative integer");
    if (*v > hi) corrupt(key, field, text, "out of range [0, " + std::to_string(hi) + "]");
    return *v;
}

double parse_double(std::string_view text, std::string_view key, std::string_view field, double lo, double hi) {
    // from_chars also reads "nan" and "inf": refused by the finite check.
    const auto v = whole_number<double>(text);
    if (!v) corrupt(key, field, text, "not a number");
    if (!std::isfinite(*v)) corrupt(key, field, text, "not a finite number");
    if (*v < lo || *v > hi)
        corrupt(key, field, text, "out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return *v;
}

// --- task records -----------------------------------------------------------

void check_task_record(const task_record& r) {
    auto ms = [](std::chrono::milliseconds d) { return std::to_string(d.count()) + "ms"; };
    if (!priority::is_valid(r.priority))
        throw invalid_argument("priority", std::to_string(r.priority), "must be within [0, 20]");
    if (r.timeout.count() < 0) throw invalid_argument("timeout", ms(r.timeout), "must be >= 0");
    if (r.turn_timeout.count() < 0) throw invalid_argument("turn_timeout", ms(r.turn_timeout), "must be >= 0");
    r.backoff.validate();
    if (!(r.progress >= 0.0 && r.progress <= 1.0))
        throw invalid_argument("progress", std::to_string(r.progress), "must be a number within [0, 1]");
}

std::string encode_task_meta(const task_record& r) {
    json::object o;
    o["v"] = 1;
    o["id"] = r.id;
    o["type"] = r.type;
    o["priority"] = r.priority;
    o["owner"] = r.owner;
    json::object md;
    for (const auto& [k, v] : r.metadata) md[k] = v;
    o["metadata"] = std::move(md);
    json::array tags;
    for (const auto& t : r.tags) tags.emplace_back(t);
    o["tags"] = std::move(tags);
    o["timeout_ms"] = r.timeout.count();
    o["turn_timeout_ms"] = r.turn_timeout.count();
    o["max_retries"] = r.max_retries;
    o["backoff"] = {{"base_ms", r.backoff.base.count()}, {"cap_ms", r.backoff.cap.count()}, {"jitter", r.backoff.jitter}};
    o["created_at"] = redis_detail::to_ticks(r.created_at);
    o["started_at"] = r.started_at ? json::value(redis_detail::to_ticks(*r.started_at)) : json::value(nullptr);
    o["finished_at"] = r.finished_at ? json::value(redis_detail::to_ticks(*r.finished_at)) : json::value(nullptr);
    o["attempts"] = r.attempts;
    o["retries"] = r.retries;
    o["turns"] = r.turns;
    o["worker_losses"] = r.worker_losses;
    o["worker_id"] = r.worker_id;
    o["progress"] = r.progress;
    o["progress_message"] = r.progress_message;
    o["error"] = r.error;
    return json::serialize(o);
}

namespace {

// Fields of one JSON object, read with range checks; errors name the key
// and the field ("d.priority").
class json_reader {
public:
    json_reader(std::string_view key, std::string prefix, const json::object& o)
        : key_(key), prefix_(std::move(prefix)), o_(o) {}

    const json::value& at(std::string_view name) const {
        const auto it = o_.find(name);
        if (it == o_.end()) corrupt(key_, prefix_ + std::string(name), "", "missing field");
        return it->value();
    }
    [[noreturn]] void bad(std::string_view name, const json::value& v, std::string_view reason) const {
        corrupt(key_, prefix_ + std::string(name), json::serialize(v), reason);
    }
    std::int64_t integer(std::string_view name, std::int64_t lo = std::numeric_limits<std::int64_t>::min(),
                         std::int64_t hi = std::numeric_limits<std::int64_t>::max()) const {
        const auto& v = at(name);
        std::int64_t n = 0;
        if (v.is_int64()) n = v.as_int64();
        else if (!v.is_uint64()) bad(name, v, "not an integer");
        else if (v.as_uint64() > static_cast<std::uint64_t>(hi)) bad(name, v, "out of range");
        else n = static_cast<std::int64_t>(v.as_uint64());
        if (n < lo || n > hi)
            bad(name, v, "out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
        return n;
    }
    std::uint32_t u32(std::string_view name) const {
        return static_cast<std::uint32_t>(integer(name, 0, std::numeric_limits<std::uint32_t>::max()));
    }
    std::chrono::milliseconds duration(std::string_view name) const {
        return std::chrono::milliseconds{integer(name, 0)};
    }
    std::string string(std::string_view name) const {
        const auto& v = at(name);
        if (!v.is_string()) bad(name, v, "not a string");
        return std::string(v.as_string());
    }
    bool boolean(std::string_view name) const {
        const auto& v = at(name);
        if (!v.is_bool()) bad(name, v, "not a boolean");
        return v.as_bool();
    }
    const json::object& object(std::string_view name) const {
        const auto& v = at(name);
        if (!v.is_object()) bad(name, v, "not an object");
        return v.as_object();
    }
    std::vector<std::string> strings(std::string_view name) const {
        const auto& v = at(name);
        if (!v.is_array()) bad(name, v, "not an array");
        std::vector<std::string> out;
        for (const auto& t : v.as_array()) {
            if (!t.is_string()) bad(name, t, "an element is not a string");
            out.emplace_back(t.as_string());
        }
        return out;
    }
    std::optional<std::chrono::system_clock::time_point> opt_time(std::string_view name) const {
        if (at(name).is_null()) return std::nullopt;
        return redis_detail::from_ticks(integer(name));
    }
    std::string_view key() const { return key_; }

private:
    std::string_view key_;
    std::string prefix_;
    const json::object& o_;
};

json::object parse_object(std::string_view key, std::string_view field, std::string_view text) {
    json::parse_options po;
    po.allow_invalid_utf8 = true;
    json::error_code ec;
    json::value v = detail::json_parse_exact(text, ec, po);
    if (ec) corrupt(key, field, text, "not valid JSON (" + ec.message() + ")");
    if (!v.is_object()) corrupt(key, field, text, "not a JSON object");
    return std::move(v.as_object());
}

void decode_task_meta(const json_reader& d, task_record& r) {
    if (d.integer("v") != 1) d.bad("v", d.at("v"), "unknown record version");
    r.type = d.string("type");
    r.priority = static_cast<int>(d.integer("priority", priority::min, priority::max));
    r.owner = d.string("owner");
    const json_reader md(d.key(), "d.metadata.", d.object("metadata"));
    for (const auto& kv : d.object("metadata")) r.metadata.emplace(std::string(kv.key()), md.string(kv.key()));
    r.tags = d.strings("tags");
    r.timeout = d.duration("timeout_ms");
    r.turn_timeout = d.duration("turn_timeout_ms");
    r.max_retries = d.u32("max_retries");
    const json_reader b(d.key(), "d.backoff.", d.object("backoff"));
    r.backoff.base = b.duration("base_ms");
    r.backoff.cap = std::chrono::milliseconds{b.integer("cap_ms", r.backoff.base.count())};
    r.backoff.jitter = b.boolean("jitter");
    r.created_at = redis_detail::from_ticks(d.integer("created_at"));
    r.started_at = d.opt_time("started_at");
    r.finished_at = d.opt_time("finished_at");
    r.attempts = d.u32("attempts");
    r.retries = d.u32("retries");
    r.turns = d.u32("turns");
    r.worker_losses = d.u32("worker_losses");
    r.worker_id = d.string("worker_id");
    const auto& progress = d.at("progress");
    const double p = progress.is_number() ? progress.to_number<double>() : -1.0;
    if (!progress.is_number() || !(p >= 0.0 && p <= 1.0)) d.bad("progress", progress, "not a number in [0, 1]");
    r.progress = p;
    r.progress_message = d.string("progress_message");
    r.error = d.string("error");
}

}  // namespace

task_record decode_task_record(std::string_view key, std::string id, std::string_view status, std::string_view meta,
                               std::string payload, std::string result) {
    task_record r;
    r.id = std::move(id);
    const auto st = try_parse_task_status(status);
    if (!st) corrupt(key, "s", status, "unknown status");
    r.status = *st;
    const auto o = parse_object(key, "d", meta);
    decode_task_meta(json_reader(key, "d.", o), r);
    r.payload = std::move(payload);
    r.result = std::move(result);
    return r;
}

// --- worker records ---------------------------------------------------------

std::string encode_worker_data(const worker_record& w) {
    json::object o;
    json::array tags;
    for (const auto& t : w.tags) tags.emplace_back(t);
    o["tags"] = std::move(tags);
    o["max_concurrent"] = w.max_concurrent;
    o["host"] = w.host;
    o["registered_at"] = redis_detail::to_ticks(w.registered_at);
    return json::serialize(o);
}

worker_record decode_worker_record(std::string_view key, std::string id, std::string_view status,
                                   std::string_view heartbeat, std::string_view data) {
    worker_record w;
    w.id = std::move(id);
    bool known = false;
    for (auto s : {worker_status::idle, worker_status::busy, worker_status::draining, worker_status::stopped,
                   worker_status::error})
        if (to_string(s) == status) {
            w.status = s;
            known = true;
        }
    if (!known) corrupt(key, "s", status, "unknown worker status");
    w.last_heartbeat = redis_detail::from_ticks(parse_int(heartbeat, key, "hb"));
    const auto o = parse_object(key, "d", data);
    const json_reader d(key, "d.", o);
    w.tags = d.strings("tags");
    w.max_concurrent = static_cast<std::size_t>(d.integer("max_concurrent", 0));
    w.host = d.string("host");
    w.registered_at = redis_detail::from_ticks(d.integer("registered_at"));
    return w;
}

// --- transport entries ------------------------------------------------------

namespace {
// Tokens and sequence numbers are Lua numbers (doubles) in the scripts:
// exact up to 2^53.
constexpr std::uint64_t max_counter = std::uint64_t{1} << 53;
constexpr std::uint64_t max_u32 = std::numeric_limits<std::uint32_t>::max();
}  // namespace

transport_lease decode_leased(std::string_view key, std::span<const std::string, 3> f, std::string_view worker,
                              std::chrono::system_clock::time_point deadline) {
    if (f[0].empty()) corrupt(key, "id", f[0], "empty task id in a lease");
    transport_lease l;
    l.task_id = f[0];
    l.worker_id = worker;
    l.token = parse_uint(f[1], key, "t of " + f[0], max_counter);
    l.attempt = static_cast<std::uint32_t>(parse_uint(f[2], key, "a of " + f[0], max_u32));
    l.deadline = deadline;
    return l;
}

transport_lease decode_recovered(std::string_view key, std::span<const std::string, 7> f) {
    if (f[0].empty()) corrupt(key, "id", f[0], "empty task id in a recovered lease");
    transport_lease l;
    l.task_id = f[0];
    l.worker_id = f[1];
    l.attempt = static_cast<std::uint32_t>(parse_uint(f[2], key, "a of " + f[0], max_u32));
    l.token = parse_uint(f[3], key, "t of " + f[0], max_counter);
    l.deadline = detail::from_unix_ms(parse_int(f[4], key, "lease deadline of " + f[0], -max_unix_ms, max_unix_ms));
    l.expiries = static_cast<std::uint32_t>(parse_uint(f[5], key, "x of " + f[0], max_u32));
    l.dead_lettered = parse_uint(f[6], key, "dead-letter flag of " + f[0], 1) == 1;
    return l;
}

// --- queue state ------------------------------------------------------------

std::optional<double> decode_ewma(std::string_view key, std::string_view text) {
    if (text.empty()) return std::nullopt;
    return parse_double(text, key, "ewma", 0.0, std::numeric_limits<double>::max());
}

namespace {
std::uint64_t* counter_of(transport_stats& s, std::string_view f) {
    if (f == "accepted") return &s.accepted;
    if (f == "rej_full") return &s.rejected_by_reason[static_cast<std::size_t>(rejection_reason::queue_full)];
    if (f == "rej_invalid") return &s.rejected_by_reason[static_cast<std::size_t>(rejection_reason::invalid_request)];
    if (f == "evicted") return &s.evicted;
    if (f == "cancelled") return &s.cancelled;
    if (f == "granted") return &s.leases_granted;
    if (f == "acked") return &s.acked;
    if (f == "nacked") return &s.nacked;
    if (f == "recovered") return &s.recovered;
    if (f == "stale") return &s.stale_refusals;
    if (f == "dead") return &s.dead_lettered;
    return nullptr;
}
}  // namespace

queue_state decode_queue_state(std::string_view key, std::span<const std::string> flat) {
    queue_state q;
    for (std::size_t i = 0; i + 1 < flat.size(); i += 2) {
        const std::string& f = flat[i];
        const std::string& v = flat[i + 1];
        if (auto* c = counter_of(q.counters, f)) {
            *c = parse_uint(v, key, f, static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()));
        } else if (f == "policy") {
            if (v != "reject-new" && v != "drop-lru" && v != "priority") corrupt(key, f, v, "unknown queue policy");
            q.policy = v;
        } else if (f == "ewma") {
            q.ewma_ms = decode_ewma(key, v);
        } else if (f == "deq_last") {
            q.last_dequeue_ms = parse_int(v, key, f, -max_unix_ms, max_unix_ms);
        } else if (f == "seq") {
            q.seq = parse_uint(v, key, f, max_counter);
        } else if (f == "token") {
            q.token = parse_uint(v, key, f, max_counter);
        }
    }
    return q;
}

}  // namespace orchcore::redis_codec
