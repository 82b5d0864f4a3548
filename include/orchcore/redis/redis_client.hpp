// A thread-safe pool of blocking hiredis connections.
//
// * Connections are opened lazily, up to options.pool_size; a caller that
//   finds all of them busy waits up to options.retry_timeout.
// * Every connection AUTHs (password, or ACL user + password) and SELECTs
//   options.db before use; a wrong password fails at once with
//   redis_failure::auth (never retried).
// * Each command has a timeout (options.command_timeout, via
//   redisSetTimeout), so no call hangs on a dead server.
// * Reconnection is automatic: a broken connection is dropped (and with it
//   every idle one, which likely died together), and the next call
//   reconnects with exponential backoff and jitter (reconnect_backoff_base,
//   doubling up to reconnect_backoff_cap) for up to options.retry_timeout.
//   Commands marked `idempotent` are retried within that budget after a
//   connection failure; others fail with backend_unavailable, because they
//   may or may not have been applied. Idle connections (> 1 s) are pinged
//   before an at-most-once command, so a server restart between calls does
//   not fail the next call.
// * Lua scripts run with EVALSHA; on NOSCRIPT (first use, or a restarted
//   server) the script is loaded with SCRIPT LOAD and the call retried.
//   A script in two parts (a library and a body, see redis_script) runs as
//   a Redis function instead (FCALL; the library is loaded with FUNCTION
//   LOAD REPLACE on first use and after "Function not found"), so its
//   library code runs once per load, not on every call; on a server
//   without functions (before Redis 7.0, or a user not allowed FUNCTION)
//   it runs with EVALSHA like any script.
//
// Every failure throws redis_error (an orchcore::error with
// errc::backend_unavailable) whose message names the server and the cause.
// Calls block the calling thread for at most about retry_timeout +
// command_timeout. For event loops and coroutines that must not block a
// thread per connection, use the Boost.Asio-integrated
// redis_async_connection (<orchcore/redis/redis_async.hpp>).
#pragma once

#include <orchcore/error.hpp>
#include <orchcore/redis/redis_options.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace orchcore {

enum class redis_failure {
    connect,         ///< could not connect within retry_timeout
    auth,            ///< AUTH refused (wrong password or user), or NOAUTH
    timeout,         ///< a command got no reply within command_timeout
    io,              ///< the connection broke during a command
    pool_exhausted,  ///< no pooled connection became free within retry_timeout
    server,          ///< the server answered with an error
};

/// A Redis failure. code() is errc::backend_unavailable.
class redis_error : public error {
public:
    redis_error(redis_failure f, const std::string& what) : error(errc::backend_unavailable, what), failure_(f) {}
    redis_failure failure() const noexcept { return failure_; }

private:
    redis_failure failure_;
};

/// A reply, copied out of hiredis.
struct redis_reply {
    enum class kind { nil, integer, string, status, error, array };
    kind type = kind::nil;
    long long integer = 0;
    std::string str{};  ///< string, status, error
    std::vector<redis_reply> elements{};

    bool is_nil() const noexcept { return type == kind::nil; }
    bool is_error() const noexcept { return type == kind::error; }
};

/// A Lua script, loaded on first use by each server. Define it once (e.g.
/// as a static) and pass it to redis_client::eval.
class redis_script {
public:
    redis_script(std::string name, std::string source) : name_(std::move(name)), source_(std::move(source)) {}
    /// A script in two parts: `library` only defines (local constants and
    /// functions; it calls no Redis command), `body` runs per call and may
    /// use the library's locals and KEYS and ARGV. As a Redis function the
    /// library runs once per load; as a script (source(): library + body)
    /// on every call. The body must not have more than 60 upvalues (the
    /// library's locals it uses), Lua's limit for one function.
    redis_script(std::string name, std::string library, std::string body);
    const std::string& name() const noexcept { return name_; }
    const std::string& source() const noexcept { return source_; }
    /// The FUNCTION LOAD code ("" for a one-part script) and the function's
    /// name, which carries a hash of the source: processes running
    /// different versions of a script use different functions.
    const std::string& function_code() const noexcept { return function_code_; }
    const std::string& function_name() const noexcept { return function_name_; }

private:
    friend class redis_client;
    std::string name_;
    std::string source_;
    std::string function_code_;
    std::string function_name_;
    mutable std::mutex mutex_;
    mutable std::string sha_;
    mutable bool function_loaded_ = false;
};

/// One call of a script in redis_client::eval_pipeline.
struct redis_script_call {
    std::vector<std::string> keys;
    std::vector<std::string> args;
};

enum class redis_retry {
    idempotent,    ///< safe to repeat: retried after a connection failure
    at_most_once,  ///< not repeated once sent
};

struct redis_client_stats {
    std::size_t open_connections = 0;
    std::size_t idle_connections = 0;
    std::uint64_t connects = 0;          ///< successful connects (first ones included)
    std::uint64_t connect_failures = 0;
    std::uint64_t command_failures = 0;  ///< I/O failures and timeouts
    std::uint64_t script_loads = 0;    ///< SCRIPT LOAD calls
    std::uint64_t function_loads = 0;  ///< FUNCTION LOAD calls
};

class redis_client {
public:
    /// Validates the options; connects lazily (call ping() to connect now).
    explicit redis_client(redis_options o);
    ~redis_client();
    redis_client(const redis_client&) = delete;
    redis_client& operator=(const redis_client&) = delete;

    /// Runs one command; error replies are returned (kind::error), not thrown.
    redis_reply command(std::span<const std::string> args, redis_retry retry = redis_retry::idempotent);
    redis_reply command(std::initializer_list<std::string_view> args, redis_retry retry = redis_retry::idempotent);
    /// Runs commands in one pipeline (one round trip, not atomic).
    std::vector<redis_reply> pipeline(const std::vector<std::vector<std::string>>& commands,
                                      redis_retry retry = redis_retry::idempotent);
    /// EVALSHA with SCRIPT LOAD on NOSCRIPT. An error reply throws
    /// redis_error(redis_failure::server) naming the script.
    redis_reply eval(const redis_script& s, std::span<const std::string> keys, std::span<const std::string> args,
                     redis_retry retry = redis_retry::at_most_once);

    /// Runs many calls of one script in one pipeline (one round trip; each
    /// call is atomic, the whole is not). Error replies are returned, not
    /// thrown; NOSCRIPT is handled (the script is loaded and the calls that
    /// were not run are sent again).
    std::vector<redis_reply> eval_pipeline(const redis_script& s, const std::vector<redis_script_call>& calls,
                                           redis_retry retry = redis_retry::at_most_once);

    /// PING; throws redis_error if the server cannot be reached.
    void ping();

    const redis_options& options() const noexcept { return options_; }
    redis_client_stats stats() const;
    /// Warnings found when connecting (also passed to options.on_warning).
    std::vector<std::string> warnings() const;

private:
    struct connection;
    struct io_failure;
    using clock = std::chrono::steady_clock;

    std::unique_ptr<connection> acquire(clock::time_point deadline);
    void release(std::unique_ptr<connection> c, bool healthy);
    std::unique_ptr<connection> connect_with_backoff(clock::time_point deadline);
    std::unique_ptr<connection> connect_once();
    void check_server_settings(connection& c);
    void warn(std::string text);
    template <class Fn>
    auto run(Fn&& fn, redis_retry retry, std::string_view what) -> decltype(fn(std::declval<connection&>()));
    std::string load_script(const redis_script& s);
    bool uses_functions(const redis_script& s) const noexcept;
    bool load_function(const redis_script& s);
    std::vector<std::string> script_call(const redis_script& s, bool as_function, std::span<const std::string> keys,
                                         std::span<const std::string> args);
    redis_reply eval_once(const redis_script& s, bool& as_function, std::span<const std::string> keys,
                          std::span<const std::string> args, redis_retry retry);
    std::string where() const;

    redis_options options_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::unique_ptr<connection>> idle_;
    std::size_t open_ = 0;
    std::uint64_t generation_ = 0;
    bool settings_checked_ = false;
    std::vector<std::string> warnings_;
    std::atomic<std::uint64_t> connects_{0}, connect_failures_{0}, command_failures_{0}, script_loads_{0};
    std::atomic<std::uint64_t> function_loads_{0};
    std::atomic<bool> no_functions_{false};  // the server refused FUNCTION: EVALSHA only
};

}  // namespace orchcore
