// An asynchronous Redis connection integrated with Boost.Asio.
//
// What it is for: event loops and coroutines that must not block a thread
// per connection. One redis_async_connection is one non-blocking hiredis
// connection (redisAsyncContext) whose socket is watched by an Asio
// executor (a posix::stream_descriptor on the hiredis fd); it has no thread
// of its own and makes no blocking call (an IP address is connected to
// directly; a host name is resolved with Asio's async_resolve, which runs
// getaddrinfo on Asio's shared internal resolver thread). Many commands may
// be outstanding at once: they are pipelined on the one connection and
// complete in the order they were issued. The blocking, thread-safe pool `redis_client` (redis_client.hpp)
// stays what the transport, task store, worker registry and event bus use.
//
//     auto c = orchcore::redis_async_connection::create(io.get_executor(), opts);
//     std::vector<std::string> get{"GET", "k"};  // (g++ 12: no braced list inside co_await)
//     redis_reply r = co_await c->async_command(std::move(get), boost::asio::use_awaitable);
//
// Completion signature: void(std::exception_ptr, redis_reply). Works with any
// Asio completion token (use_awaitable, use_future, callbacks, ...). Every
// handler is called exactly once, through its associated executor (the
// connection's strand if it has none), never from inside hiredis.
//
// Error model. A Redis error *reply* (such as WRONGTYPE) is returned as a
// redis_reply of kind::error, not thrown, like redis_client::command. Every
// failure is a redis_error (an orchcore::error with
// errc::backend_unavailable) whose message names the server
// (options.describe()) and the cause; redis_error::failure() says which:
//   * connect — the connection could not be opened within
//     options.connect_timeout (refused, unreachable, name not resolved);
//   * auth    — AUTH refused (wrong password or ACL user) or the server
//     requires a password that was not given; the password is never echoed;
//   * server  — SELECT options.db failed, or (async_eval) the script failed;
//   * timeout — this command got no reply within options.command_timeout;
//   * io      — the connection broke (or was dropped, or close()d) while the
//     command was outstanding: it may or may not have been applied.
//
// Timeouts. Every command has a deadline of options.command_timeout from the
// moment it is issued. A command that misses it completes with `timeout` and
// the connection is dropped (the server is wedged, or the connection is):
// every other outstanding command on it completes with `io`. Nothing is
// retried automatically, because a sent command may have been applied.
//
// Reconnection. The connection is opened lazily by the first command (AUTH
// with options.password, or options.user + password, and SELECT options.db
// are pipelined in front of it). After a failure, the next command
// reconnects after an exponential backoff with jitter
// (reconnect_backoff_base, doubling up to reconnect_backoff_cap, measured
// from the failure; reset by a successful handshake). The backoff is an Asio
// timer: commands issued meanwhile wait for it (their timeout still runs).
//
// Threading. Every public member function may be called from any thread: the
// work is posted onto an internal strand of the given executor. async_eval's
// script is only read during the call (its name and source are copied).
// The object is held by std::shared_ptr (create()); pending internal work
// keeps only weak references, so dropping the last reference closes it.
#pragma once

#include <orchcore/redis/redis_client.hpp>
#include <orchcore/redis/redis_options.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <vector>

namespace orchcore {

struct redis_async_stats {
    std::uint64_t connects = 0;          ///< successful handshakes
    std::uint64_t connect_failures = 0;  ///< refused, timed out, auth/SELECT failed
    std::uint64_t command_failures = 0;  ///< commands completed with timeout or io
    std::uint64_t timeouts = 0;          ///< commands that missed command_timeout
    std::uint64_t script_loads = 0;
};

class redis_async_connection : public std::enable_shared_from_this<redis_async_connection> {
public:
    using executor_type = boost::asio::strand<boost::asio::any_io_executor>;
    using completion_signature = void(std::exception_ptr, redis_reply);

    /// Validates the options (throws orchcore::invalid_argument); does not
    /// connect (the first command does).
    static std::shared_ptr<redis_async_connection> create(boost::asio::any_io_executor ex, redis_options o);

    /// Fails outstanding commands with redis_failure::io ("closed") and frees
    /// the hiredis context.
    ~redis_async_connection();
    redis_async_connection(const redis_async_connection&) = delete;
    redis_async_connection& operator=(const redis_async_connection&) = delete;

    /// Sends one command (binary-safe arguments). Completes with the reply
    /// (error replies included), or a redis_error.
    template <class CompletionToken>
    auto async_command(std::vector<std::string> args, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, completion_signature>(
            [self = shared_from_this()](auto handler, std::vector<std::string> a) {
                self->start_command(std::move(a), handler_type(std::move(handler)));
            },
            token, std::move(args));
    }

    /// EVALSHA of the script (SCRIPT LOAD first if this connection has not
    /// loaded it; loaded again and retried once on NOSCRIPT, e.g. after a
    /// server restart or SCRIPT FLUSH). An error reply completes with
    /// redis_error(redis_failure::server) naming the script.
    template <class CompletionToken>
    auto async_eval(const redis_script& s, std::vector<std::string> keys, std::vector<std::string> args,
                    CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, completion_signature>(
            [self = shared_from_this()](auto handler, std::string name, std::string source,
                                        std::vector<std::string> k, std::vector<std::string> a) {
                self->start_eval(std::move(name), std::move(source), std::move(k), std::move(a),
                                 handler_type(std::move(handler)));
            },
            token, s.name(), s.source(), std::move(keys), std::move(args));
    }

    /// Closes the connection: outstanding and later commands complete with
    /// redis_error(redis_failure::io) saying "closed". Asynchronous (returns
    /// at once) and idempotent.
    void close();

    /// The internal strand (default executor of completion handlers).
    executor_type get_executor() const noexcept { return strand_; }
    const redis_options& options() const noexcept { return options_; }
    redis_async_stats stats() const noexcept;

private:
    struct impl;
    using handler_type = boost::asio::any_completion_handler<completion_signature>;

    redis_async_connection(boost::asio::any_io_executor ex, redis_options o);
    void start_command(std::vector<std::string> args, handler_type h);
    void start_eval(std::string name, std::string source, std::vector<std::string> keys,
                    std::vector<std::string> args, handler_type h);

    redis_options options_;
    executor_type strand_;
    std::unique_ptr<impl> impl_;  // touched only on strand_ (and by the destructor)
    std::atomic<std::uint64_t> connects_{0}, connect_failures_{0}, command_failures_{0}, timeouts_{0},
        script_loads_{0};
};

}  // namespace orchcore
