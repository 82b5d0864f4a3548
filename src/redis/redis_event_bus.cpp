#include <orchcore/redis/redis_event_bus.hpp>

#include <orchcore/codec.hpp>

#include "redis_util.hpp"

#include <boost/json.hpp>
#include <hiredis/hiredis.h>

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <limits>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>
#include <utility>

namespace orchcore {

using redis_detail::jittered;

namespace json = boost::json;

namespace {

// Set while a redis_event_subscriber delivers into a bus on this thread, so
// a publisher attached to the same bus does not send the event back.
thread_local int remote_delivery_depth = 0;

struct remote_delivery_guard {
    remote_delivery_guard() { ++remote_delivery_depth; }
    ~remote_delivery_guard() { --remote_delivery_depth; }
    remote_delivery_guard(const remote_delivery_guard&) = delete;
    remote_delivery_guard& operator=(const remote_delivery_guard&) = delete;
};

constexpr std::array all_kinds{
    event_kind::task_queued,    event_kind::task_started,   event_kind::task_progress,
    event_kind::task_completed, event_kind::task_failed,    event_kind::task_retried,
    event_kind::task_cancelled, event_kind::task_timed_out, event_kind::task_continued,
    event_kind::task_requeued,  event_kind::task_rejected,  event_kind::task_expired,
    event_kind::stale_token_refused, event_kind::workflow_submitted, event_kind::workflow_completed,
    event_kind::workflow_failed, event_kind::workflow_cancelled, event_kind::worker_started, event_kind::worker_stopped,
    event_kind::worker_dead,    event_kind::scaled,
};

std::optional<event_kind> parse_kind(std::string_view s) {
    for (auto k : all_kinds)
        if (to_string(k) == s) return k;
    return std::nullopt;
}

[[noreturn]] void bad(const std::string& why) { throw invalid_argument("event", "(message)", why); }

const json::value* find(const json::object& o, std::string_view k) {
    auto it = o.find(k);
    return it == o.end() ? nullptr : &it->value();
}

std::string get_string(const json::object& o, std::string_view k) {
    const auto* v = find(o, k);
    if (!v) return {};
    if (!v->is_string()) bad("field \"" + std::string(k) + "\" is not a string");
    return std::string(v->as_string());
}

std::int64_t get_int(const json::object& o, std::string_view k, std::int64_t lo, std::int64_t hi) {
    const auto* v = find(o, k);
    if (!v) return 0;
    std::int64_t x = 0;
    if (v->is_int64()) x = v->as_int64();
    else if (v->is_uint64() && v->as_uint64() <= static_cast<std::uint64_t>(hi)) x = static_cast<std::int64_t>(v->as_uint64());
    else bad("field \"" + std::string(k) + "\" is not an integer in range");
    if (x < lo || x > hi) bad("field \"" + std::string(k) + "\" is out of range");
    return x;
}

}  // namespace

std::string redis_event_channel(const redis_options& o, event_channel ch) {
    return o.prefix + (ch == event_channel::tasks ? ":tasks.events" : ":workers.events");
}

std::string encode_event_json(const event& e, std::string_view origin) {
    json::object o;
    o["v"] = 1;
    o["origin"] = origin;
    o["kind"] = to_string(e.kind);
    o["task_id"] = e.task_id;
    o["worker_id"] = e.worker_id;
    o["status"] = to_string(e.status);
    o["attempt"] = e.attempt;
    o["detail"] = e.detail;
    // JSON has no NaN: a NaN progress travels as null.
    o["progress"] = std::isnan(e.progress) ? json::value(nullptr) : json::value(e.progress);
    o["from"] = static_cast<std::uint64_t>(e.from);
    o["to"] = static_cast<std::uint64_t>(e.to);
    o["at"] = redis_detail::to_ticks(e.at);
    return detail::json_serialize_exact(o, "event");
}

event decode_event_json(std::string_view text, std::string* origin) {
    json::parse_options po;
    po.allow_invalid_utf8 = true;
    json::error_code ec;
    const json::value v = detail::json_parse_exact(text, ec, po);
    if (ec) bad("not valid JSON: " + ec.message());
    if (!v.is_object()) bad("not a JSON object");
    const auto& o = v.as_object();
    const auto* ver = find(o, "v");
    if (!ver || !ver->is_int64() || ver->as_int64() != 1) bad("missing or unknown version \"v\"");
    const auto* kind = find(o, "kind");
    if (!kind || !kind->is_string()) bad("missing field \"kind\"");
    const auto k = parse_kind(std::string_view(kind->as_string().data(), kind->as_string().size()));
    if (!k) bad("unknown kind \"" + std::string(kind->as_string()).substr(0, 40) + "\"");
    event e;
    e.kind = *k;
    e.task_id = get_string(o, "task_id");
    e.worker_id = get_string(o, "worker_id");
    if (find(o, "status")) {
        const auto s = get_string(o, "status");
        const auto st = try_parse_task_status(s);
        if (!st) bad("unknown status \"" + s.substr(0, 40) + "\"");
        e.status = *st;
    }
    e.attempt = static_cast<std::uint32_t>(get_int(o, "attempt", 0, std::numeric_limits<std::uint32_t>::max()));
    e.detail = get_string(o, "detail");
    if (const auto* p = find(o, "progress")) {
        if (p->is_null()) e.progress = std::numeric_limits<double>::quiet_NaN();
        else if (!p->is_number()) bad("field \"progress\" is not a number");
        else e.progress = p->to_number<double>();
    }
    e.from = static_cast<std::size_t>(get_int(o, "from", 0, std::numeric_limits<std::int64_t>::max()));
    e.to = static_cast<std::size_t>(get_int(o, "to", 0, std::numeric_limits<std::int64_t>::max()));
    if (find(o, "at"))
        e.at = redis_detail::from_ticks(
            get_int(o, "at", std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max()));
    if (origin) *origin = get_string(o, "origin");
    return e;
}

// ===========================================================================
// Publisher
// ===========================================================================

struct redis_event_publisher::state {
    std::shared_ptr<redis_client> client;
    redis_event_publisher_options options;
    std::string channels[2];

    mutable std::mutex mutex;
    std::condition_variable cv;       // sender: work or stop
    std::condition_variable done_cv;  // flush: progress
    std::deque<event> queue;          // encoded by the sender thread
    std::uint64_t enqueued = 0;       // sequence numbers, for flush
    std::uint64_t finished = 0;
    bool stopping = false;
    std::thread sender;

    std::atomic<std::uint64_t> published{0}, failed{0}, dropped{0};
    std::string last_error;

    const std::string& channel_for(const event& e) const {
        return channels[channel_of(e.kind) == event_channel::tasks ? 0 : 1];
    }

    void post(const event& e) {
        {
            std::lock_guard lk(mutex);
            if (stopping || queue.size() >= options.max_pending) {
                dropped.fetch_add(1, std::memory_order_relaxed);
                return;
            }
            queue.push_back(e);
            ++enqueued;
        }
        cv.notify_one();
    }

    void run() {
        std::vector<std::vector<std::string>> cmds;
        std::vector<event> batch;
        for (;;) {
            cmds.clear();
            {
                std::unique_lock lk(mutex);
                cv.wait(lk, [&] { return stopping || !queue.empty(); });
                if (stopping) {
                    dropped.fetch_add(queue.size(), std::memory_order_relaxed);
                    finished += queue.size();
                    queue.clear();
                    done_cv.notify_all();
                    return;
                }
                while (!queue.empty() && batch.size() < options.max_batch) {
                    batch.push_back(std::move(queue.front()));
                    queue.pop_front();
                }
            }
            for (const auto& e : batch) cmds.push_back({"PUBLISH", channel_for(e), encode_event_json(e, options.origin)});
            batch.clear();
            try {
                // Notifications: a repeat after a reconnect is harmless.
                const auto replies = client->pipeline(cmds, redis_retry::idempotent);
                std::uint64_t ok = 0, bad_replies = 0;
                for (const auto& r : replies) (r.is_error() ? bad_replies : ok) += 1;
                published.fetch_add(ok, std::memory_order_relaxed);
                if (bad_replies) failed.fetch_add(bad_replies, std::memory_order_relaxed);
            } catch (const std::exception& e) {
                failed.fetch_add(cmds.size(), std::memory_order_relaxed);
                std::lock_guard lk(mutex);
                last_error = e.what();
            }
            {
                std::lock_guard lk(mutex);
                finished += cmds.size();
            }
            done_cv.notify_all();
        }
    }
};

redis_event_publisher::redis_event_publisher(std::shared_ptr<redis_client> client, redis_event_publisher_options o)
    : state_(std::make_shared<state>()) {
    if (!client) throw invalid_argument("client", "null", "a redis_event_publisher needs a redis_client");
    if (o.max_batch == 0) throw invalid_argument("max_batch", "0", "must be > 0");
    if (o.origin.empty()) o.origin = redis_detail::random_hex();
    state_->client = std::move(client);
    state_->options = std::move(o);
    state_->channels[0] = redis_event_channel(state_->client->options(), event_channel::tasks);
    state_->channels[1] = redis_event_channel(state_->client->options(), event_channel::workers);
    state_->sender = std::thread([s = state_.get()] { s->run(); });
}

redis_event_publisher::~redis_event_publisher() {
    {
        std::lock_guard lk(state_->mutex);
        state_->stopping = true;
    }
    state_->cv.notify_all();
    if (state_->sender.joinable()) state_->sender.join();
}

std::size_t redis_event_publisher::publish(const event& e) {
    const auto r = state_->client->command(
        {"PUBLISH", state_->channel_for(e), encode_event_json(e, state_->options.origin)}, redis_retry::idempotent);
    if (r.is_error()) {
        state_->failed.fetch_add(1, std::memory_order_relaxed);
        throw redis_error(redis_failure::server, "orchcore: redis PUBLISH failed at " +
                                                     state_->client->options().describe() + ": " + r.str);
    }
    state_->published.fetch_add(1, std::memory_order_relaxed);
    return static_cast<std::size_t>(std::max(0LL, r.integer));
}

void redis_event_publisher::post(const event& e) { state_->post(e); }

redis_event_publisher::attachment redis_event_publisher::attach(event_bus& bus) {
    std::weak_ptr<state> weak = state_;
    auto forward = [weak](const event& e) {
        if (remote_delivery_depth > 0) return;  // came from Redis: do not echo it back
        if (auto s = weak.lock()) s->post(e);
    };
    attachment a;
    a.tasks = bus.subscribe(event_channel::tasks, forward);
    a.workers = bus.subscribe(event_channel::workers, forward);
    return a;
}

bool redis_event_publisher::flush(std::chrono::milliseconds timeout) {
    std::unique_lock lk(state_->mutex);
    const auto target = state_->enqueued;
    return state_->done_cv.wait_for(lk, timeout, [&] { return state_->finished >= target; });
}

const std::string& redis_event_publisher::origin() const noexcept { return state_->options.origin; }

std::string redis_event_publisher::channel(event_channel ch) const {
    return state_->channels[ch == event_channel::tasks ? 0 : 1];
}

redis_event_publisher_stats redis_event_publisher::stats() const {
    redis_event_publisher_stats s;
    s.published = state_->published.load();
    s.failed = state_->failed.load();
    s.dropped = state_->dropped.load();
    std::lock_guard lk(state_->mutex);
    s.pending = state_->queue.size();
    s.last_error = state_->last_error;
    return s;
}

// ===========================================================================
// Subscriber
// ===========================================================================

namespace {

// Why the current connection ended (internal).
struct conn_lost {
    std::string why;
};
struct stop_requested {};

// A non-blocking hiredis connection whose every wait also watches `wake`
// (an eventfd written by stop()).
class nb_connection {
public:
    using clock = std::chrono::steady_clock;

    nb_connection(int wake, const std::atomic<bool>& stop) : wake_(wake), stop_(stop) {}
    ~nb_connection() {
        if (ctx_) redisFree(ctx_);
    }
    nb_connection(const nb_connection&) = delete;
    nb_connection& operator=(const nb_connection&) = delete;

    void connect(const std::string& host, int port, std::chrono::milliseconds timeout) {
        ctx_ = redisConnectNonBlock(host.c_str(), port);
        if (!ctx_) throw conn_lost{"out of memory"};
        if (ctx_->err) throw conn_lost{ctx_->errstr};
        const auto deadline = redis_detail::deadline_after(timeout);
        if (!wait_for(POLLOUT, deadline))
            throw conn_lost{"no answer within connect_timeout = " + std::to_string(timeout.count()) + "ms"};
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(ctx_->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        if (err != 0) throw conn_lost{std::strerror(err)};
    }

    void send(const std::vector<std::string>& args, clock::time_point deadline) {
        std::vector<const char*> argv;
        std::vector<std::size_t> lens;
        for (const auto& a : args) {
            argv.push_back(a.data());
            lens.push_back(a.size());
        }
        if (redisAppendCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data()) != REDIS_OK)
            throw conn_lost{"cannot build a command"};
        int done = 0;
        for (;;) {
            if (redisBufferWrite(ctx_, &done) != REDIS_OK) throw conn_lost{ctx_->errstr};
            if (done) return;
            if (!wait_for(POLLOUT, deadline)) throw conn_lost{"write timed out"};
        }
    }

    /// The next reply, or nullptr if none arrived before `deadline`.
    redisReply* read(clock::time_point deadline) {
        for (;;) {
            void* raw = nullptr;
            if (redisGetReplyFromReader(ctx_, &raw) != REDIS_OK) throw conn_lost{"protocol error"};
            if (raw) return static_cast<redisReply*>(raw);
            if (!wait_for(POLLIN, deadline)) return nullptr;
            if (redisBufferRead(ctx_) != REDIS_OK)
                throw conn_lost{ctx_->err == REDIS_ERR_EOF ? std::string("server closed the connection")
                                                           : std::string(ctx_->errstr)};
        }
    }

    /// Sleeps until `deadline` unless stopped.
    static void sleep_until(int wake, const std::atomic<bool>& stop, clock::time_point deadline) {
        while (!stop.load()) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
            if (left.count() <= 0) return;
            pollfd p{wake, POLLIN, 0};
            ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
        }
        throw stop_requested{};
    }

private:
    // True if ready; false on timeout; throws stop_requested / conn_lost.
    bool wait_for(short what, clock::time_point deadline) {
        for (;;) {
            if (stop_.load()) throw stop_requested{};
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
            if (left.count() <= 0) return false;
            pollfd p[2] = {{ctx_->fd, what, 0}, {wake_, POLLIN, 0}};
            const int n = ::poll(p, 2, static_cast<int>(std::min<long long>(left.count() + 1, 1000)));
            if (n < 0) {
                if (errno == EINTR) continue;
                throw conn_lost{std::string("poll: ") + std::strerror(errno)};
            }
            if (p[1].revents) throw stop_requested{};
            if (p[0].revents & (what | POLLERR | POLLHUP)) return true;
        }
    }

    redisContext* ctx_ = nullptr;
    int wake_;
    const std::atomic<bool>& stop_;
};

std::string reply_text(const redisReply* r) {
    if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR))
        return std::string(r->str, r->len);
    return {};
}

struct reply_ptr {
    redisReply* r = nullptr;
    explicit reply_ptr(redisReply* x) : r(x) {}
    ~reply_ptr() {
        if (r) freeReplyObject(r);
    }
    reply_ptr(const reply_ptr&) = delete;
    reply_ptr& operator=(const reply_ptr&) = delete;
};

}  // namespace

struct redis_event_subscriber::state {
    using clock = std::chrono::steady_clock;

    redis_options conn;
    redis_event_subscriber_options options;
    handler fn;
    event_bus* bus = nullptr;
    std::vector<std::string> channels;

    int wake_fd = -1;
    std::atomic<bool> stop{false};
    std::thread thread;

    mutable std::mutex mutex;
    std::condition_variable subscribed_cv;
    bool subscribed = false;
    std::string last_error;
    std::atomic<std::uint64_t> received{0}, delivered{0}, malformed{0}, skipped_own{0}, handler_errors{0},
        connects{0}, connection_failures{0};

    state() = default;
    state(const state&) = delete;
    state& operator=(const state&) = delete;
    ~state() {
        if (wake_fd >= 0) ::close(wake_fd);
    }

    void set_subscribed(bool v) {
        {
            std::lock_guard lk(mutex);
            subscribed = v;
        }
        subscribed_cv.notify_all();
    }

    void fail(std::string why) {
        connection_failures.fetch_add(1, std::memory_order_relaxed);
        std::lock_guard lk(mutex);
        last_error = std::move(why);
    }

    void deliver(std::string_view channel, std::string_view payload) {
        received.fetch_add(1, std::memory_order_relaxed);
        event e;
        std::string origin;
        try {
            e = decode_event_json(payload, &origin);
        } catch (const std::exception& ex) {
            malformed.fetch_add(1, std::memory_order_relaxed);
            if (options.on_malformed) {
                try {
                    options.on_malformed(channel, payload, ex.what());
                } catch (...) {
                    handler_errors.fetch_add(1, std::memory_order_relaxed);
                }
            }
            return;
        }
        if (!options.ignore_origin.empty() && origin == options.ignore_origin) {
            skipped_own.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        remote_delivery_guard guard;
        delivered.fetch_add(1, std::memory_order_relaxed);
        if (bus) {
            bus->publish(e);  // the bus catches and counts its subscribers' exceptions
            return;
        }
        try {
            fn(e);
        } catch (...) {
            handler_errors.fetch_add(1, std::memory_order_relaxed);
        }
    }

    // One connection's life: connect, AUTH, SUBSCRIBE, read until it breaks.
    void session() {
        nb_connection c(wake_fd, stop);
        c.connect(conn.host, conn.port, conn.connect_timeout);
        const auto cmd_deadline = [&] { return redis_detail::deadline_after(conn.command_timeout); };
        if (!conn.password.empty()) {
            c.send(conn.user.empty() ? std::vector<std::string>{"AUTH", conn.password}
                                     : std::vector<std::string>{"AUTH", conn.user, conn.password},
                   cmd_deadline());
            reply_ptr r(c.read(cmd_deadline()));
            if (!r.r) throw conn_lost{"AUTH: no reply within command_timeout"};
            if (r.r->type == REDIS_REPLY_ERROR) throw conn_lost{"authentication refused: " + reply_text(r.r)};
        }
        std::vector<std::string> sub{"SUBSCRIBE"};
        sub.insert(sub.end(), channels.begin(), channels.end());
        c.send(sub, cmd_deadline());
        std::size_t confirmed = 0;
        auto last_traffic = clock::now();
        bool ping_sent = false;
        const auto interval = redis_detail::clamp_wait(options.health_check_interval);
        for (;;) {
            reply_ptr r(c.read(last_traffic + interval));
            if (!r.r) {
                if (ping_sent) throw conn_lost{"no answer to PING within health_check_interval"};
                c.send({"PING"}, cmd_deadline());
                ping_sent = true;
                last_traffic = clock::now();
                continue;
            }
            last_traffic = clock::now();
            ping_sent = false;
            const redisReply* m = r.r;
            if (m->type == REDIS_REPLY_ERROR) throw conn_lost{"SUBSCRIBE refused: " + reply_text(m)};
            if (m->type != REDIS_REPLY_ARRAY || m->elements < 2) continue;
            const std::string kind = reply_text(m->element[0]);
            if (kind == "message" && m->elements >= 3) {
                const auto* ch = m->element[1];
                const auto* body = m->element[2];
                deliver(ch->type == REDIS_REPLY_STRING ? std::string_view(ch->str, ch->len) : std::string_view{},
                        body->type == REDIS_REPLY_STRING ? std::string_view(body->str, body->len)
                                                         : std::string_view{});
            } else if (kind == "subscribe") {
                if (++confirmed == channels.size()) {
                    connects.fetch_add(1, std::memory_order_relaxed);
                    set_subscribed(true);
                }
            }
            // "pong" and anything else: traffic, nothing to do.
        }
    }

    void run() {
        auto backoff = conn.reconnect_backoff_base;
        while (!stop.load()) {
            const auto started = clock::now();
            try {
                session();
            } catch (const stop_requested&) {
                break;
            } catch (const conn_lost& l) {
                fail(l.why);
            } catch (const std::exception& e) {
                fail(e.what());
            }
            set_subscribed(false);
            // A connection that lived a while resets the backoff.
            if (clock::now() - started > redis_detail::clamp_wait(conn.reconnect_backoff_cap))
                backoff = conn.reconnect_backoff_base;
            try {
                nb_connection::sleep_until(wake_fd, stop, redis_detail::deadline_after(jittered(backoff)));
            } catch (const stop_requested&) {
                break;
            }
            backoff = redis_detail::doubled(backoff, conn.reconnect_backoff_cap);
        }
        set_subscribed(false);
    }
};

namespace {

// (A template so it can name the private state type through deduction.)
template <class State>
std::shared_ptr<State> make_subscriber_state(redis_options conn, redis_event_subscriber_options o) {
    conn.validate();
    if (o.channels.empty()) throw invalid_argument("channels", "[]", "subscribe to at least one channel");
    if (o.health_check_interval.count() <= 0)
        throw invalid_argument("health_check_interval", std::to_string(o.health_check_interval.count()) + "ms",
                               "must be > 0");
    auto s = std::make_shared<State>();
    for (auto ch : o.channels) {
        auto name = redis_event_channel(conn, ch);
        if (std::find(s->channels.begin(), s->channels.end(), name) == s->channels.end())
            s->channels.push_back(std::move(name));
    }
    s->conn = std::move(conn);
    s->options = std::move(o);
    s->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->wake_fd < 0) throw std::runtime_error("orchcore: eventfd() failed");
    return s;
}

}  // namespace

redis_event_subscriber::redis_event_subscriber(redis_options connection, handler fn, redis_event_subscriber_options o)
    : state_(make_subscriber_state<state>(std::move(connection), std::move(o))) {
    if (!fn) throw invalid_argument("handler", "empty", "a redis_event_subscriber needs a callback");
    state_->fn = std::move(fn);
    state_->thread = std::thread([s = state_] { s->run(); });
}

redis_event_subscriber::redis_event_subscriber(redis_options connection, event_bus& bus,
                                               redis_event_subscriber_options o)
    : state_(make_subscriber_state<state>(std::move(connection), std::move(o))) {
    state_->bus = &bus;
    state_->thread = std::thread([s = state_] { s->run(); });
}

redis_event_subscriber::~redis_event_subscriber() { stop(); }

void redis_event_subscriber::stop() {
    if (!state_->stop.exchange(true)) {
        const std::uint64_t one = 1;
        [[maybe_unused]] const auto n = ::write(state_->wake_fd, &one, sizeof one);
    }
    if (!state_->thread.joinable()) return;
    // From the subscriber's own thread (a callback): it ends after the
    // callback returns; it holds the state alive meanwhile.
    if (state_->thread.get_id() == std::this_thread::get_id()) state_->thread.detach();
    else state_->thread.join();
}

bool redis_event_subscriber::wait_subscribed(std::chrono::milliseconds timeout) {
    std::unique_lock lk(state_->mutex);
    return state_->subscribed_cv.wait_for(lk, timeout, [&] { return state_->subscribed; });
}

redis_event_subscriber_stats redis_event_subscriber::stats() const {
    redis_event_subscriber_stats s;
    s.received = state_->received.load();
    s.delivered = state_->delivered.load();
    s.malformed = state_->malformed.load();
    s.skipped_own = state_->skipped_own.load();
    s.handler_errors = state_->handler_errors.load();
    s.connects = state_->connects.load();
    s.connection_failures = state_->connection_failures.load();
    std::lock_guard lk(state_->mutex);
    s.subscribed = state_->subscribed;
    s.last_error = state_->last_error;
    return s;
}

}  // namespace orchcore
