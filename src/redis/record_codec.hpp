// Encoders and decoders of what the Redis backend stores and reads back:
// task records, worker records, transport entries (the per-task fields the
// transport scripts return) and the queue state hash. Pure functions, no
// I/O, so they can be fuzzed (tests/fuzz).
//
// Every decoder checks what it reads: integers with std::from_chars and a
// range, doubles finite (NaN and infinities refused), status names known,
// record fields within the ranges the library itself writes. Anything else
// throws orchcore::invalid_argument whose field names the key and the field
// ("{p:q}:state ewma") and whose value is the text found (quoted, cut to 64
// bytes). No other exception escapes a decoder (std::bad_alloc aside).
#pragma once

#include <orchcore/task.hpp>
#include <orchcore/transport.hpp>
#include <orchcore/worker_registry.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace orchcore::redis_codec {

/// Throws orchcore::invalid_argument for `field` of `key` holding `value`.
[[noreturn]] void corrupt(std::string_view key, std::string_view field, std::string_view value,
                          std::string_view reason);

/// The decimal integer `text` (no sign for unsigned, no spaces, nothing
/// after the digits), within [lo, hi].
std::int64_t parse_int(std::string_view text, std::string_view key, std::string_view field,
                       std::int64_t lo = std::numeric_limits<std::int64_t>::min(),
                       std::int64_t hi = std::numeric_limits<std::int64_t>::max());
std::uint64_t parse_uint(std::string_view text, std::string_view key, std::string_view field,
                         std::uint64_t hi = std::numeric_limits<std::uint64_t>::max());
/// A finite double within [lo, hi].
double parse_double(std::string_view text, std::string_view key, std::string_view field, double lo, double hi);

/// Unix milliseconds that a system_clock time_point can hold.
inline constexpr std::int64_t max_unix_ms = std::numeric_limits<std::int64_t>::max() / 1'000'000;

// --- task records: {p:q}:task:<id> = one HASH ------------------------------
//
// A record is a write-once part (set by create, never rewritten) and a
// state part (the only fields update writes). Every field is a short name;
// an empty or default value is not stored (absent = default). Integers are
// decimal; timestamps are nanoseconds since the Unix epoch, so a record
// round-trips exactly.
namespace task_field {
// Write-once part.
inline constexpr std::string_view type = "t";
inline constexpr std::string_view payload = "p";
inline constexpr std::string_view owner = "u";
inline constexpr std::string_view tags = "k";        ///< JSON array of strings
inline constexpr std::string_view created_at = "c";  ///< always stored
/// The resource request: JSON object {cpu_millis, memory_mb, gpu: {count,
/// type, memory_mb}, labels}; absent = asks for nothing.
inline constexpr std::string_view resources = "x";
inline constexpr std::string_view session = "z";
/// priority,timeout_ms,turn_timeout_ms,max_retries,backoff base_ms,cap_ms,
/// jitter (0/1): decimal, comma-separated; absent = task_record defaults.
inline constexpr std::string_view options = "o";
// State part.
inline constexpr std::string_view status = "s";  ///< to_string(task_status); always stored
inline constexpr std::string_view attempts = "a";
inline constexpr std::string_view retries = "y";
inline constexpr std::string_view turns = "n";
inline constexpr std::string_view worker_losses = "l";
inline constexpr std::string_view worker_id = "w";
inline constexpr std::string_view started_at = "b";
inline constexpr std::string_view finished_at = "f";
inline constexpr std::string_view progress = "g";  ///< shortest round-trip decimal in [0, 1]
inline constexpr std::string_view progress_message = "h";
inline constexpr std::string_view result = "r";
inline constexpr std::string_view error = "e";
/// JSON object of strings. State, not write-once: the coordinator keeps its
/// cross-node cancellation marker there.
inline constexpr std::string_view metadata = "m";
}  // namespace task_field

/// The state fields in the order encode_task_state() returns their values
/// (a script writing state takes them in this order: "" = HDEL).
inline constexpr std::array<std::string_view, 13> task_state_fields{
    task_field::status,      task_field::attempts,    task_field::retries,          task_field::turns,
    task_field::worker_losses, task_field::worker_id, task_field::started_at,       task_field::finished_at,
    task_field::progress,    task_field::progress_message, task_field::result,      task_field::error,
    task_field::metadata};

/// A stored timestamp: nanoseconds since the Unix epoch.
std::int64_t to_unix_ns(std::chrono::system_clock::time_point t);
std::chrono::system_clock::time_point from_unix_ns(std::int64_t ns);

/// The state field names as a Lua table literal ({'s','a',...}), for scripts.
std::string lua_task_state_fields();

/// Throws orchcore::invalid_argument naming the field if `r` holds a value
/// that decode_task_record() would refuse (priority outside [0, 20], a
/// negative duration, backoff cap below its base, progress not in [0, 1]):
/// such a record is refused when written rather than dead-lettered when read.
void check_task_record(const task_record& r);
/// check_task_record() for the state part only (progress).
void check_task_state(const task_record& r);
/// Every stored field of `r` (both parts; id aside) as field, value pairs:
/// the HSET of a create.
std::vector<std::pair<std::string_view, std::string>> encode_task_fields(const task_record& r);
/// The state part: values in task_state_fields order, "" for absent.
std::array<std::string, task_state_fields.size()> encode_task_state(const task_record& r);
/// `flat`: the HGETALL reply (field, value, field, value...), not empty.
/// An unknown field, a missing status or creation time, or a bad value
/// throws, naming the key and the field ("o.priority", "m.<name>").
task_record decode_task_record(std::string_view key, std::string id, std::span<const std::string> flat);

// --- worker records: {p:q}:worker:<id> = HASH s (status), hb (ticks), d ---

std::string encode_worker_data(const worker_record& w);
worker_record decode_worker_record(std::string_view key, std::string id, std::string_view status,
                                   std::string_view heartbeat, std::string_view data);

// --- transport entries (replies of the transport scripts) ---

/// One task of a transport.lease reply: id, token, attempt. `worker` and
/// `deadline` are the caller's.
transport_lease decode_leased(std::string_view key, std::span<const std::string, 3> fields, std::string_view worker,
                              std::chrono::system_clock::time_point deadline);
/// One task of a transport.recover reply: id, worker, attempt, token,
/// deadline (unix ms), expiries, dead-lettered (0 or 1).
transport_lease decode_recovered(std::string_view key, std::span<const std::string, 7> fields);

// --- queue state: {p:q}:state = HASH ---

struct queue_state {
    std::string policy;              ///< empty until the first admission
    std::optional<double> ewma_ms;   ///< smoothed interval between dequeues
    std::optional<std::int64_t> last_dequeue_ms;
    std::uint64_t seq = 0;           ///< last admission sequence number
    std::uint64_t token = 0;         ///< last fencing token granted
    transport_stats counters;        ///< the counters only (no sizes)
};

/// The dequeue-interval estimate as stored ("" = none yet).
std::optional<double> decode_ewma(std::string_view key, std::string_view text);
/// `flat`: the HGETALL reply (field, value, field, value...). Unknown
/// fields are ignored; a known field with a bad value throws.
queue_state decode_queue_state(std::string_view key, std::span<const std::string> flat);

}  // namespace orchcore::redis_codec
