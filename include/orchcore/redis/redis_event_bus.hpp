// The event bus over Redis pub/sub: events of one process (its
// orchcore::event_bus) become visible to every process of the deployment.
//
//   process A                                    process B
//   event_bus --attach--> redis_event_publisher   redis_event_subscriber --> event_bus
//                             | PUBLISH                 ^ SUBSCRIBE
//                             +--> <prefix>:tasks.events -+
//                                  <prefix>:workers.events
//
// * Channels: `<prefix>:tasks.events` and `<prefix>:workers.events`
//   (redis_options::prefix); an event goes to the channel of its kind
//   (channel_of(kind)). Pub/sub is fire-and-forget in Redis: a subscriber
//   that is disconnected misses what is published meanwhile. Use the task
//   store for anything that must not be lost; events are notifications.
// * Wire format: one JSON object per message (encode_event_json), with the
//   publisher's origin id so a process can skip its own events.
// * redis_event_publisher::publish() sends at once on the calling thread
//   (through the pooled redis_client) and throws redis_error on failure.
//   attach(bus) forwards every event of a local bus through a bounded
//   buffer to a background sender thread that pipelines PUBLISHes, so the
//   thread that publishes into the bus (a coordinator) never waits for
//   Redis; events that do not fit in the buffer, or whose send fails, are
//   dropped and counted. Events that a redis_event_subscriber delivered
//   into a bus are not forwarded back to Redis (no loops).
// * redis_event_subscriber holds its own connection (a SUBSCRIBEd
//   connection cannot run other commands) on a background thread, decodes
//   each message and publishes it into a local event_bus or calls a
//   callback. All its I/O is non-blocking and waits in poll() together with
//   a wake-up descriptor, so stop() returns promptly even while it is
//   connecting or waiting. When Redis goes away it reconnects with
//   exponential backoff and jitter (redis_options::reconnect_backoff_base
//   / _cap) and subscribes again; a quiet connection is PINGed every
//   health_check_interval and dropped if the PING is not answered within
//   another interval. A message that cannot be decoded is counted
//   (stats().malformed), passed to on_malformed, and skipped.
#pragma once

#include <orchcore/event_bus.hpp>
#include <orchcore/redis/redis_client.hpp>
#include <orchcore/redis/redis_options.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace orchcore {

/// `<prefix>:tasks.events` or `<prefix>:workers.events`.
std::string redis_event_channel(const redis_options& o, event_channel ch);

/// The JSON form of an event on the Redis channels: {"v":1, "origin",
/// "kind" (to_string(kind)), "task_id", "worker_id", "status", "attempt",
/// "detail", "progress", "from", "to", "at" (system_clock ticks since the
/// epoch)}. "progress" reads back as the same double, bit for bit (null
/// for NaN).
std::string encode_event_json(const event& e, std::string_view origin = {});

/// Decodes encode_event_json's output. Throws orchcore::invalid_argument
/// (field "event") saying what is wrong. Fields other than "v" and "kind"
/// may be missing (they keep their defaults); present fields must have the
/// right type. `origin`, if given, receives the origin ("" if none).
event decode_event_json(std::string_view text, std::string* origin = nullptr);

// ---------------------------------------------------------------------------

struct redis_event_publisher_options {
    /// Identifies this publisher in every message; empty: a random id.
    std::string origin{};
    /// attach()/post(): events buffered for the sender thread; events
    /// beyond this are dropped (stats().dropped).
    std::size_t max_pending = 65'536;
    /// PUBLISHes per pipeline (one round trip) of the sender thread.
    std::size_t max_batch = 256;
};

struct redis_event_publisher_stats {
    std::uint64_t published = 0;  ///< PUBLISHes Redis accepted
    std::uint64_t failed = 0;     ///< lost because Redis could not be reached
    std::uint64_t dropped = 0;    ///< lost because the buffer was full (or at destruction)
    std::size_t pending = 0;      ///< buffered, not yet sent
    std::string last_error{};
};

class redis_event_publisher {
public:
    /// Both channels' subscriptions on one local bus; unsubscribes when
    /// destroyed or reset().
    struct attachment {
        event_bus::subscription tasks;
        event_bus::subscription workers;
        void reset() {
            tasks.reset();
            workers.reset();
        }
    };

    explicit redis_event_publisher(std::shared_ptr<redis_client> client, redis_event_publisher_options o = {});
    /// Stops the sender thread after the batch in flight; events still
    /// buffered are dropped (call flush() first to wait for them).
    ~redis_event_publisher();
    redis_event_publisher(const redis_event_publisher&) = delete;
    redis_event_publisher& operator=(const redis_event_publisher&) = delete;

    /// PUBLISHes `e` now, on the calling thread. Returns how many
    /// subscribers received it; throws redis_error if Redis cannot answer.
    std::size_t publish(const event& e);
    /// Buffers `e` for the sender thread. Never blocks, never throws.
    void post(const event& e);
    /// post()s every event published into `bus` (both channels), except
    /// those a redis_event_subscriber delivered there. The bus must outlive
    /// the attachment; the publisher need not (later events are ignored).
    [[nodiscard]] attachment attach(event_bus& bus);
    /// Waits until every event post()ed before the call was sent (or
    /// failed). False on timeout.
    bool flush(std::chrono::milliseconds timeout);

    const std::string& origin() const noexcept;
    std::string channel(event_channel ch) const;
    redis_event_publisher_stats stats() const;

private:
    struct state;
    std::shared_ptr<state> state_;
};

// ---------------------------------------------------------------------------

struct redis_event_subscriber_options {
    std::vector<event_channel> channels{event_channel::tasks, event_channel::workers};
    /// Messages whose origin equals this are skipped (set it to the local
    /// publisher's origin() to avoid receiving your own events twice).
    std::string ignore_origin{};
    /// A connection with no traffic for this long is PINGed; if nothing
    /// arrives within another interval it is dropped and reopened.
    std::chrono::milliseconds health_check_interval{5'000};
    /// Called (on the subscriber thread) with the channel, the raw message
    /// and the reason for every message that cannot be decoded.
    std::function<void(std::string_view channel, std::string_view message, std::string_view why)> on_malformed{};
};

struct redis_event_subscriber_stats {
    std::uint64_t received = 0;        ///< messages read from Redis
    std::uint64_t delivered = 0;       ///< decoded and handed to the bus / callback
    std::uint64_t malformed = 0;       ///< could not be decoded: counted and skipped
    std::uint64_t skipped_own = 0;     ///< origin == ignore_origin
    std::uint64_t handler_errors = 0;  ///< the callback threw
    std::uint64_t connects = 0;        ///< successful (re)subscriptions
    std::uint64_t connection_failures = 0;
    bool subscribed = false;
    std::string last_error{};
};

class redis_event_subscriber {
public:
    using handler = std::function<void(const event&)>;

    /// Starts the background thread at once (it connects in the
    /// background; see wait_subscribed()). Connection settings, AUTH,
    /// prefix and backoff come from `connection`; it has its own
    /// connection, not one from a pool.
    redis_event_subscriber(redis_options connection, handler fn, redis_event_subscriber_options o = {});
    /// Republishes every received event into `bus` (which must outlive the
    /// subscriber).
    redis_event_subscriber(redis_options connection, event_bus& bus, redis_event_subscriber_options o = {});
    ~redis_event_subscriber();
    redis_event_subscriber(const redis_event_subscriber&) = delete;
    redis_event_subscriber& operator=(const redis_event_subscriber&) = delete;

    /// Stops and joins the background thread (idempotent). Returns promptly:
    /// all waits are interruptible.
    void stop();
    /// Waits until the subscription to every channel is confirmed (messages
    /// published before that are not received). False on timeout.
    bool wait_subscribed(std::chrono::milliseconds timeout);
    redis_event_subscriber_stats stats() const;

private:
    struct state;
    std::shared_ptr<state> state_;
};

}  // namespace orchcore
