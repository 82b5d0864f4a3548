#include "record_codec.hpp"

#include "redis_util.hpp"

#include <orchcore/codec.hpp>

#include <boost/json.hpp>

#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

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

// --- JSON fields ------------------------------------------------------------

namespace {

// Fields of one JSON object, read with range checks; errors name the key
// and the field ("d.host").
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
    std::string string(std::string_view name) const {
        const auto& v = at(name);
        if (!v.is_string()) bad(name, v, "not a string");
        return std::string(v.as_string());
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

    std::uint64_t unsigned_integer(std::string_view name) const {
        const auto& v = at(name);
        if (v.is_uint64()) return v.as_uint64();
        if (v.is_int64() && v.as_int64() >= 0) return static_cast<std::uint64_t>(v.as_int64());
        bad(name, v, "not an unsigned integer");
    }
    const json::object& object(std::string_view name) const {
        const auto& v = at(name);
        if (!v.is_object()) bad(name, v, "not an object");
        return v.as_object();
    }
    const json::array& array(std::string_view name) const {
        const auto& v = at(name);
        if (!v.is_array()) bad(name, v, "not an array");
        return v.as_array();
    }
    bool has(std::string_view name) const { return o_.find(name) != o_.end(); }
    const std::string& prefix() const noexcept { return prefix_; }
    std::string_view key() const noexcept { return key_; }

private:
    std::string_view key_;
    std::string prefix_;
    const json::object& o_;
};

json::array strings_json(const std::vector<std::string>& v) {
    json::array a;
    for (const auto& s : v) a.emplace_back(s);
    return a;
}

json::object request_json(const resource_request& r) {
    json::object gpu;
    gpu["count"] = r.gpu.count;
    gpu["type"] = r.gpu.type;
    gpu["memory_mb"] = r.gpu.memory_mb;
    json::object o;
    o["cpu_millis"] = r.cpu_millis;
    o["memory_mb"] = r.memory_mb;
    o["gpu"] = std::move(gpu);
    o["labels"] = strings_json(r.labels);
    return o;
}

resource_request request_from(const json_reader& d) {
    resource_request r;
    r.cpu_millis = d.unsigned_integer("cpu_millis");
    r.memory_mb = d.unsigned_integer("memory_mb");
    const json_reader g(d.key(), d.prefix() + "gpu.", d.object("gpu"));
    r.gpu.count = static_cast<std::uint32_t>(g.integer("count", 0, std::numeric_limits<std::uint32_t>::max()));
    r.gpu.type = g.string("type");
    r.gpu.memory_mb = g.unsigned_integer("memory_mb");
    r.labels = d.strings("labels");
    return r;
}

json::object inventory_json(const resource_inventory& inv) {
    json::array gpus;
    for (const auto& g : inv.gpus) {
        json::object o;
        o["type"] = g.type;
        o["memory_mb"] = g.memory_mb;
        gpus.emplace_back(std::move(o));
    }
    json::object o;
    o["cpu_millis"] = inv.cpu_millis;
    o["memory_mb"] = inv.memory_mb;
    o["gpus"] = std::move(gpus);
    o["labels"] = strings_json(inv.labels);
    return o;
}

resource_inventory inventory_from(const json_reader& d) {
    resource_inventory inv;
    inv.cpu_millis = d.unsigned_integer("cpu_millis");
    inv.memory_mb = d.unsigned_integer("memory_mb");
    for (const auto& g : d.array("gpus")) {
        if (!g.is_object()) d.bad("gpus", g, "an element is not an object");
        const json_reader gr(d.key(), d.prefix() + "gpus.", g.as_object());
        inv.gpus.push_back(gpu_device{gr.string("type"), gr.unsigned_integer("memory_mb")});
    }
    inv.labels = d.strings("labels");
    return inv;
}

json::value parse_json(std::string_view key, std::string_view field, std::string_view text) {
    json::parse_options po;
    po.allow_invalid_utf8 = true;
    json::error_code ec;
    json::value v = detail::json_parse_exact(text, ec, po);
    if (ec) corrupt(key, field, text, "not valid JSON (" + ec.message() + ")");
    return v;
}

json::object parse_object(std::string_view key, std::string_view field, std::string_view text) {
    json::value v = parse_json(key, field, text);
    if (!v.is_object()) corrupt(key, field, text, "not a JSON object");
    return std::move(v.as_object());
}

// --- task records: encoding helpers ----------------------------------------

namespace tf = task_field;

std::string time_text(const std::optional<std::chrono::system_clock::time_point>& t) {
    return t ? std::to_string(to_unix_ns(*t)) : std::string();
}

std::string count_text(std::uint32_t n) { return n == 0 ? std::string() : std::to_string(n); }

std::string progress_text(double p) {
    if (p == 0.0) return {};
    char buf[32];
    const auto res = std::to_chars(buf, buf + sizeof buf, p);
    return std::string(buf, res.ptr);
}

std::string metadata_text(const std::map<std::string, std::string>& md) {
    if (md.empty()) return {};
    json::object o;
    for (const auto& [k, v] : md) o[k] = v;
    return json::serialize(o);
}

std::string tags_text(const std::vector<std::string>& tags) {
    if (tags.empty()) return {};
    json::array a;
    for (const auto& t : tags) a.emplace_back(t);
    return json::serialize(a);
}

std::string options_text(const task_record& r) {
    const task_record d{};
    if (r.priority == d.priority && r.timeout == d.timeout && r.turn_timeout == d.turn_timeout &&
        r.max_retries == d.max_retries && r.backoff.base == d.backoff.base && r.backoff.cap == d.backoff.cap &&
        r.backoff.jitter == d.backoff.jitter)
        return {};
    std::string s;
    for (const std::int64_t v :
         {std::int64_t{r.priority}, std::int64_t{r.timeout.count()}, std::int64_t{r.turn_timeout.count()},
          std::int64_t{r.max_retries}, std::int64_t{r.backoff.base.count()}, std::int64_t{r.backoff.cap.count()}})
        s.append(std::to_string(v)).append(",");
    s.append(r.backoff.jitter ? "1" : "0");
    return s;
}

// --- task records: decoding helpers ----------------------------------------

std::optional<std::chrono::system_clock::time_point> decode_time(std::string_view key, std::string_view field,
                                                                 std::string_view v) {
    return from_unix_ns(parse_int(v, key, field));
}

std::uint32_t decode_count(std::string_view key, std::string_view field, std::string_view v) {
    return static_cast<std::uint32_t>(parse_uint(v, key, field, std::numeric_limits<std::uint32_t>::max()));
}

void decode_options(std::string_view key, std::string_view text, task_record& r) {
    static constexpr std::array<std::string_view, 7> names{"o.priority", "o.timeout_ms",  "o.turn_timeout_ms",
                                                           "o.max_retries", "o.backoff.base_ms", "o.backoff.cap_ms",
                                                           "o.backoff.jitter"};
    std::array<std::string_view, 7> part{};
    std::size_t n = 0, from = 0;
    for (; n < part.size(); ++n) {
        const auto comma = text.find(',', from);
        part[n] = text.substr(from, comma == std::string_view::npos ? std::string_view::npos : comma - from);
        if (comma == std::string_view::npos) break;
        from = comma + 1;
    }
    if (n != part.size() - 1) corrupt(key, tf::options, text, "not 7 comma-separated fields");
    constexpr auto max = std::numeric_limits<std::int64_t>::max();
    r.priority = static_cast<int>(parse_int(part[0], key, names[0], priority::min, priority::max));
    r.timeout = std::chrono::milliseconds{parse_int(part[1], key, names[1], 0, max)};
    r.turn_timeout = std::chrono::milliseconds{parse_int(part[2], key, names[2], 0, max)};
    r.max_retries = decode_count(key, names[3], part[3]);
    r.backoff.base = std::chrono::milliseconds{parse_int(part[4], key, names[4], 0, max)};
    r.backoff.cap = std::chrono::milliseconds{parse_int(part[5], key, names[5], r.backoff.base.count(), max)};
    r.backoff.jitter = parse_uint(part[6], key, names[6], 1) == 1;
}

void decode_metadata(std::string_view key, std::string_view text, task_record& r) {
    const auto v = parse_json(key, tf::metadata, text);
    if (!v.is_object()) corrupt(key, tf::metadata, text, "not a JSON object");
    for (const auto& kv : v.as_object()) {
        if (!kv.value().is_string())
            corrupt(key, "m." + std::string(kv.key()), json::serialize(kv.value()), "not a string");
        r.metadata.emplace(std::string(kv.key()), std::string(kv.value().as_string()));
    }
}

std::string request_text(const resource_request& r) {
    return r == resource_request{} ? std::string{} : json::serialize(request_json(r));
}

void decode_resources(std::string_view key, std::string_view text, task_record& r) {
    const auto v = parse_json(key, tf::resources, text);
    if (!v.is_object()) corrupt(key, tf::resources, text, "not a JSON object");
    r.resources = request_from(json_reader(key, std::string(tf::resources) + ".", v.as_object()));
}

void decode_tags(std::string_view key, std::string_view text, task_record& r) {
    const auto v = parse_json(key, tf::tags, text);
    if (!v.is_array()) corrupt(key, tf::tags, text, "not a JSON array");
    for (const auto& t : v.as_array()) {
        if (!t.is_string()) corrupt(key, tf::tags, json::serialize(t), "an element is not a string");
        r.tags.emplace_back(t.as_string());
    }
}

// The string fields: where each one goes in a record.
std::string* string_field(task_record& r, std::string_view f) {
    if (f == tf::type) return &r.type;
    if (f == tf::payload) return &r.payload;
    if (f == tf::owner) return &r.owner;
    if (f == tf::worker_id) return &r.worker_id;
    if (f == tf::progress_message) return &r.progress_message;
    if (f == tf::result) return &r.result;
    if (f == tf::error) return &r.error;
    if (f == tf::session) return &r.session;
    return nullptr;
}

std::uint32_t* count_field(task_record& r, std::string_view f) {
    if (f == tf::attempts) return &r.attempts;
    if (f == tf::retries) return &r.retries;
    if (f == tf::turns) return &r.turns;
    if (f == tf::worker_losses) return &r.worker_losses;
    return nullptr;
}

// One stored field into `r`; false if the name is unknown.
bool decode_field(std::string_view key, std::string_view f, const std::string& v, task_record& r) {
    if (auto* s = string_field(r, f)) *s = v;
    else if (auto* n = count_field(r, f)) *n = decode_count(key, f, v);
    else if (f == tf::status) {
        const auto st = try_parse_task_status(v);
        if (!st) corrupt(key, f, v, "unknown status");
        r.status = *st;
    } else if (f == tf::created_at) r.created_at = *decode_time(key, f, v);
    else if (f == tf::started_at) r.started_at = decode_time(key, f, v);
    else if (f == tf::finished_at) r.finished_at = decode_time(key, f, v);
    else if (f == tf::progress) r.progress = parse_double(v, key, f, 0.0, 1.0);
    else if (f == tf::options) decode_options(key, v, r);
    else if (f == tf::metadata) decode_metadata(key, v, r);
    else if (f == tf::tags) decode_tags(key, v, r);
    else if (f == tf::resources) decode_resources(key, v, r);
    else return false;
    return true;
}

}  // namespace

// --- task records -----------------------------------------------------------

std::int64_t to_unix_ns(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

std::chrono::system_clock::time_point from_unix_ns(std::int64_t ns) {
    return std::chrono::system_clock::time_point{
        std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds{ns})};
}

std::string lua_task_state_fields() {
    std::string s = "{";
    for (const auto f : task_state_fields) s.append(s.size() > 1 ? ",'" : "'").append(f).append("'");
    return s + "}";
}

void check_task_state(const task_record& r) {
    if (!(r.progress >= 0.0 && r.progress <= 1.0))
        throw invalid_argument("progress", std::to_string(r.progress), "must be a number within [0, 1]");
}

void check_task_record(const task_record& r) {
    auto ms = [](std::chrono::milliseconds d) { return std::to_string(d.count()) + "ms"; };
    if (!priority::is_valid(r.priority))
        throw invalid_argument("priority", std::to_string(r.priority), "must be within [0, 20]");
    if (r.timeout.count() < 0) throw invalid_argument("timeout", ms(r.timeout), "must be >= 0");
    if (r.turn_timeout.count() < 0) throw invalid_argument("turn_timeout", ms(r.turn_timeout), "must be >= 0");
    r.backoff.validate();
    check_task_state(r);
}

std::array<std::string, task_state_fields.size()> encode_task_state(const task_record& r) {
    return {std::string(to_string(r.status)),
            count_text(r.attempts),
            count_text(r.retries),
            count_text(r.turns),
            count_text(r.worker_losses),
            r.worker_id,
            time_text(r.started_at),
            time_text(r.finished_at),
            progress_text(r.progress),
            r.progress_message,
            r.result,
            r.error,
            metadata_text(r.metadata)};
}

std::vector<std::pair<std::string_view, std::string>> encode_task_fields(const task_record& r) {
    std::vector<std::pair<std::string_view, std::string>> out;
    out.reserve(task_state_fields.size() + 8);
    auto put = [&](std::string_view f, std::string v) {
        if (!v.empty()) out.emplace_back(f, std::move(v));
    };
    put(tf::type, r.type);
    put(tf::payload, r.payload);
    put(tf::owner, r.owner);
    put(tf::tags, tags_text(r.tags));
    put(tf::resources, request_text(r.resources));
    put(tf::session, r.session);
    put(tf::options, options_text(r));
    put(tf::created_at, std::to_string(to_unix_ns(r.created_at)));
    auto state = encode_task_state(r);
    for (std::size_t i = 0; i < state.size(); ++i) put(task_state_fields[i], std::move(state[i]));
    return out;
}

task_record decode_task_record(std::string_view key, std::string id, std::span<const std::string> flat) {
    if (flat.size() % 2 != 0) corrupt(key, "(fields)", std::to_string(flat.size()), "an odd field list");
    task_record r;
    r.id = std::move(id);
    bool status = false, created = false;
    for (std::size_t i = 0; i < flat.size(); i += 2) {
        const std::string_view f = flat[i];
        if (!decode_field(key, f, flat[i + 1], r)) corrupt(key, f, flat[i + 1], "unknown field");
        status = status || f == tf::status;
        created = created || f == tf::created_at;
    }
    if (!status) corrupt(key, tf::status, "", "missing status");
    if (!created) corrupt(key, tf::created_at, "", "missing creation time");
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
    if (w.resources != resource_inventory{} || w.free != resource_inventory{}) {
        o["resources"] = inventory_json(w.resources);
        o["free"] = inventory_json(w.free);
    }
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
    if (d.has("resources") || d.has("free")) {
        w.resources = inventory_from(json_reader(key, "d.resources.", d.object("resources")));
        w.free = inventory_from(json_reader(key, "d.free.", d.object("free")));
    }
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
