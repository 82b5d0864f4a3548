#include <orchcore/redis/redis_client.hpp>

#include "redis_util.hpp"

#include <hiredis/hiredis.h>

#include <sys/time.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <iostream>
#include <random>
#include <string_view>
#include <thread>
#include <utility>

namespace orchcore {

using redis_detail::clamp_wait;
using redis_detail::convert;
using redis_detail::deadline_after;
using redis_detail::doubled;
using redis_detail::jittered;
using redis_detail::starts_with;

struct redis_client::connection {
    redisContext* ctx = nullptr;
    std::uint64_t generation = 0;
    clock::time_point last_used = clock::now();
    bool reused = false;

    connection() = default;
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;
    ~connection() {
        if (ctx) redisFree(ctx);
    }
};

// A broken connection (internal; becomes redis_error).
struct redis_client::io_failure {
    bool timeout = false;
    std::string text;
};

namespace {

// hiredis refuses a connect timeout whose milliseconds overflow a long
// ("Invalid timeout specified"), so a long one is clamped (see max_wait).
timeval to_timeval(std::chrono::milliseconds d) {
    d = clamp_wait(d);
    timeval tv{};
    tv.tv_sec = static_cast<decltype(tv.tv_sec)>(d.count() / 1000);
    tv.tv_usec = static_cast<decltype(tv.tv_usec)>((d.count() % 1000) * 1000);
    return tv;
}

}  // namespace

// ---------------------------------------------------------------------------
// Raw execution on one connection (no locking: the caller owns it).
// ---------------------------------------------------------------------------
namespace {

template <class Strings>
void build_argv(const Strings& args, std::vector<const char*>& argv, std::vector<std::size_t>& lens) {
    argv.clear();
    lens.clear();
    for (const auto& a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
    }
}

}  // namespace

namespace {

// What broke, from a context whose last call failed: (timed out, text).
std::pair<bool, std::string> failure_of(const redisContext* ctx, int saved_errno) {
    const bool timeout = ctx->err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK);
    std::string text = ctx->err == REDIS_ERR_EOF ? std::string("server closed the connection") : std::string(ctx->errstr);
    return {timeout, std::move(text)};
}

}  // namespace

redis_client::redis_client(redis_options o) : options_(std::move(o)) { options_.validate(); }

redis_client::~redis_client() = default;

std::string redis_client::where() const { return options_.describe(); }

void redis_client::warn(std::string text) {
    {
        std::lock_guard lk(mutex_);
        warnings_.push_back(text);
    }
    if (options_.on_warning) options_.on_warning(text);
    else std::cerr << text << '\n';
}

std::vector<std::string> redis_client::warnings() const {
    std::lock_guard lk(mutex_);
    return warnings_;
}

redis_client_stats redis_client::stats() const {
    redis_client_stats s;
    {
        std::lock_guard lk(mutex_);
        s.open_connections = open_;
        s.idle_connections = idle_.size();
    }
    s.connects = connects_.load();
    s.connect_failures = connect_failures_.load();
    s.command_failures = command_failures_.load();
    s.script_loads = script_loads_.load();
    s.function_loads = function_loads_.load();
    return s;
}

std::unique_ptr<redis_client::connection> redis_client::connect_once() {
    auto c = std::make_unique<connection>();
    c->ctx = redisConnectWithTimeout(options_.host.c_str(), options_.port, to_timeval(options_.connect_timeout));
    if (!c->ctx) throw redis_error(redis_failure::connect, "orchcore: cannot connect to redis at " + where() + ": out of memory");
    if (c->ctx->err) {
        std::string why = c->ctx->errstr;
        if (why.find("Resource temporarily unavailable") != std::string::npos ||
            why.find("timed out") != std::string::npos)
            why = "no answer within connect_timeout = " + std::to_string(options_.connect_timeout.count()) + "ms";
        throw redis_error(redis_failure::connect, "orchcore: cannot connect to redis at " + where() + ": " + why);
    }
    redisSetTimeout(c->ctx, to_timeval(options_.command_timeout));
    redisEnableKeepAlive(c->ctx);

    auto exec = [&](std::vector<std::string> args) {
        std::vector<const char*> argv;
        std::vector<std::size_t> lens;
        build_argv(args, argv, lens);
        auto* r = static_cast<redisReply*>(
            redisCommandArgv(c->ctx, static_cast<int>(argv.size()), argv.data(), lens.data()));
        const int saved = errno;
        if (!r) {
            const auto [timeout, text] = failure_of(c->ctx, saved);
            throw redis_error(redis_failure::connect,
                              "orchcore: redis at " + where() + " dropped the connection during the handshake (" +
                                  args[0] + "): " + (timeout ? "no reply within command_timeout" : text));
        }
        redis_reply out = convert(r);
        freeReplyObject(r);
        return out;
    };

    if (!options_.password.empty()) {
        auto r = options_.user.empty() ? exec({"AUTH", options_.password})
                                       : exec({"AUTH", options_.user, options_.password});
        if (r.is_error())
            throw redis_error(redis_failure::auth,
                              "orchcore: redis at " + where() + " refused authentication" +
                                  (options_.user.empty() ? std::string() : " for user '" + options_.user + "'") +
                                  " (wrong password or user?): " + r.str);
    }
    auto r = exec({"SELECT", std::to_string(options_.db)});
    if (r.is_error()) {
        if (starts_with(r.str, "NOAUTH"))
            throw redis_error(redis_failure::auth, "orchcore: redis at " + where() +
                                                       " requires authentication: set a password in redis_options "
                                                       "or the URL (" + r.str + ")");
        throw redis_error(redis_failure::server, "orchcore: redis at " + where() + ": SELECT " +
                                                     std::to_string(options_.db) + " failed: " + r.str);
    }
    ++connects_;
    return c;
}

std::unique_ptr<redis_client::connection> redis_client::connect_with_backoff(clock::time_point deadline) {
    auto backoff = options_.reconnect_backoff_base;
    int attempts = 0;
    const auto start = clock::now();
    for (;;) {
        ++attempts;
        std::string last;
        try {
            return connect_once();
        } catch (const redis_error& e) {
            ++connect_failures_;
            if (e.failure() != redis_failure::connect) throw;
            last = e.what();
        }
        const auto now = clock::now();
        const auto pause = clamp_wait(jittered(backoff));
        if (now + pause >= deadline) {
            const auto spent = std::chrono::duration_cast<std::chrono::milliseconds>(now - start);
            throw redis_error(redis_failure::connect,
                              last + " (gave up after " + std::to_string(attempts) + " attempt" +
                                  (attempts == 1 ? "" : "s") + " in " + std::to_string(spent.count()) +
                                  "ms; retry_timeout = " + std::to_string(options_.retry_timeout.count()) + "ms)");
        }
        std::this_thread::sleep_for(pause);
        backoff = doubled(backoff, options_.reconnect_backoff_cap);
    }
}

std::unique_ptr<redis_client::connection> redis_client::acquire(clock::time_point deadline) {
    std::unique_lock lk(mutex_);
    for (;;) {
        while (!idle_.empty()) {
            auto c = std::move(idle_.back());
            idle_.pop_back();
            if (c->generation == generation_) {
                c->reused = true;
                return c;
            }
            --open_;
        }
        if (open_ < options_.pool_size) {
            ++open_;
            lk.unlock();
            std::unique_ptr<connection> c;
            try {
                c = connect_with_backoff(deadline);
            } catch (...) {
                lk.lock();
                --open_;
                cv_.notify_one();
                throw;
            }
            bool check = false;
            lk.lock();
            c->generation = generation_;
            if (!settings_checked_) {
                settings_checked_ = true;
                check = true;
            }
            lk.unlock();
            if (check) check_server_settings(*c);
            return c;
        }
        if (cv_.wait_until(lk, deadline) == std::cv_status::timeout && idle_.empty() && open_ >= options_.pool_size)
            throw redis_error(redis_failure::pool_exhausted,
                              "orchcore: no redis connection to " + where() + " became free within retry_timeout = " +
                                  std::to_string(options_.retry_timeout.count()) + "ms (pool_size = " +
                                  std::to_string(options_.pool_size) + ", all busy)");
    }
}

void redis_client::release(std::unique_ptr<connection> c, bool healthy) {
    std::vector<std::unique_ptr<connection>> dropped;
    {
        std::lock_guard lk(mutex_);
        if (healthy && c->generation == generation_) {
            c->last_used = clock::now();
            idle_.push_back(std::move(c));
        } else {
            --open_;
            dropped.push_back(std::move(c));
            if (!healthy) {
                // The server probably went away: idle connections are dead too.
                ++generation_;
                open_ -= idle_.size();
                for (auto& i : idle_) dropped.push_back(std::move(i));
                idle_.clear();
            }
        }
    }
    cv_.notify_all();
}

void redis_client::check_server_settings(connection& c) {
    auto* r = static_cast<redisReply*>(redisCommand(c.ctx, "CONFIG GET maxmemory-policy"));
    if (!r) return;  // the next command will notice a broken connection
    redis_reply v = convert(r);
    freeReplyObject(r);
    if (v.type != redis_reply::kind::array || v.elements.size() < 2) return;  // CONFIG not allowed: skip
    const std::string& policy = v.elements[1].str;
    if (starts_with(policy, "allkeys-"))
        warn("orchcore: redis at " + where() + " has maxmemory-policy " + policy +
             ": under memory pressure Redis may evict queue keys and lose tasks; use noeviction");
    else if (starts_with(policy, "volatile-"))
        warn("orchcore: redis at " + where() + " has maxmemory-policy " + policy +
             ": finished task records (which have a TTL) may be evicted before their TTL; noeviction is safest");
}

template <class Fn>
auto redis_client::run(Fn&& fn, redis_retry retry, std::string_view what)
    -> decltype(fn(std::declval<connection&>())) {
    const auto deadline = deadline_after(options_.retry_timeout);
    auto backoff = options_.reconnect_backoff_base;
    for (;;) {
        auto c = acquire(deadline);
        if (retry == redis_retry::at_most_once && c->reused && clock::now() - c->last_used > std::chrono::seconds(1)) {
            // An idle connection may have died with a restarted server; find
            // out before sending something that must not be repeated.
            auto* r = static_cast<redisReply*>(redisCommand(c->ctx, "PING"));
            if (!r) {
                release(std::move(c), false);
                continue;
            }
            freeReplyObject(r);
        }
        try {
            auto out = fn(*c);
            release(std::move(c), true);
            return out;
        } catch (const io_failure& f) {
            ++command_failures_;
            release(std::move(c), false);
            const auto pause = clamp_wait(jittered(backoff));
            if (!f.timeout && retry == redis_retry::idempotent && clock::now() + pause < deadline) {
                std::this_thread::sleep_for(pause);
                backoff = doubled(backoff, options_.reconnect_backoff_cap);
                continue;
            }
            std::string msg = "orchcore: redis " + std::string(what) + " at " + where();
            if (f.timeout)
                msg += " got no reply within command_timeout = " + std::to_string(options_.command_timeout.count()) + "ms";
            else
                msg += " failed: " + f.text;
            if (retry == redis_retry::at_most_once) msg += " (it may or may not have been applied)";
            throw redis_error(f.timeout ? redis_failure::timeout : redis_failure::io, msg);
        }
    }
}

redis_reply redis_client::command(std::span<const std::string> args, redis_retry retry) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    build_argv(args, argv, lens);
    return run(
        [&](connection& c) {
            auto* r = static_cast<redisReply*>(
                redisCommandArgv(c.ctx, static_cast<int>(argv.size()), argv.data(), lens.data()));
            const int saved = errno;
            if (!r) {
                auto [timeout, text] = failure_of(c.ctx, saved);
                throw io_failure{timeout, std::move(text)};
            }
            redis_reply out = convert(r);
            freeReplyObject(r);
            return out;
        },
        retry, args.empty() ? std::string_view("command") : std::string_view(args[0]));
}

redis_reply redis_client::command(std::initializer_list<std::string_view> args, redis_retry retry) {
    std::vector<std::string> v(args.begin(), args.end());
    return command(std::span<const std::string>(v), retry);
}

std::vector<redis_reply> redis_client::pipeline(const std::vector<std::vector<std::string>>& commands,
                                                redis_retry retry) {
    if (commands.empty()) return {};
    return run(
        [&](connection& c) {
            std::vector<const char*> argv;
            std::vector<std::size_t> lens;
            for (const auto& cmd : commands) {
                build_argv(cmd, argv, lens);
                if (redisAppendCommandArgv(c.ctx, static_cast<int>(argv.size()), argv.data(), lens.data()) != REDIS_OK)
                    throw io_failure{false, "out of memory building a pipeline"};
            }
            std::vector<redis_reply> out;
            out.reserve(commands.size());
            for (std::size_t i = 0; i < commands.size(); ++i) {
                void* raw = nullptr;
                const int rc = redisGetReply(c.ctx, &raw);
                const int saved = errno;
                if (rc != REDIS_OK || !raw) {
                auto [timeout, text] = failure_of(c.ctx, saved);
                throw io_failure{timeout, std::move(text)};
            }
                auto* r = static_cast<redisReply*>(raw);
                out.push_back(convert(r));
                freeReplyObject(r);
            }
            return out;
        },
        retry, "pipeline");
}

namespace {

// FNV-1a, 64 bits: a name for a script's source that is the same in every
// process and build.
std::string source_hash(std::string_view text) {
    std::uint64_t h = 14695981039346656037ull;
    for (const unsigned char c : text) {
        h ^= c;
        h *= 1099511628211ull;
    }
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
}

bool function_missing(const redis_reply& r) { return r.is_error() && starts_with(r.str, "ERR Function not found"); }

// A server that cannot run functions: no FUNCTION/FCALL command (before
// Redis 7.0) or a user not allowed to use them.
bool functions_refused(const redis_reply& r) {
    return r.is_error() && (r.str.find("unknown command") != std::string::npos ||
                            r.str.find("unknown subcommand") != std::string::npos || starts_with(r.str, "NOPERM"));
}

}  // namespace

redis_script::redis_script(std::string name, std::string library, std::string body)
    : name_(std::move(name)), source_(library + body) {
    std::string id;
    for (const char c : name_) id += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    function_name_ = "orchcore_" + id + "_" + source_hash(source_);
    // KEYS and ARGV are the library's locals, set by each call.
    function_code_ = "#!lua name=" + function_name_ + "\nlocal KEYS, ARGV\n" + library + "\nlocal function main()\n" +
                     body + "\nend\nredis.register_function('" + function_name_ +
                     "', function(keys, args) KEYS, ARGV = keys, args; return main() end)\n";
}

std::string redis_client::load_script(const redis_script& s) {
    auto r = command({"SCRIPT", "LOAD", s.source()}, redis_retry::idempotent);
    if (r.type != redis_reply::kind::string)
        throw redis_error(redis_failure::server,
                          "orchcore: redis at " + where() + " could not load script " + s.name() + ": " + r.str);
    ++script_loads_;
    std::lock_guard lk(s.mutex_);
    s.sha_ = r.str;
    return r.str;
}

bool redis_client::uses_functions(const redis_script& s) const noexcept {
    return !s.function_code().empty() && !no_functions_.load(std::memory_order_relaxed);
}

// FUNCTION LOAD REPLACE of the script's library. False if the server
// cannot run functions (the client then runs every script with EVALSHA).
bool redis_client::load_function(const redis_script& s) {
    auto r = command({"FUNCTION", "LOAD", "REPLACE", s.function_code()}, redis_retry::idempotent);
    if (functions_refused(r)) {
        no_functions_.store(true, std::memory_order_relaxed);
        return false;
    }
    if (r.is_error())
        throw redis_error(redis_failure::server,
                          "orchcore: redis at " + where() + " could not load function " + s.name() + ": " + r.str);
    ++function_loads_;
    std::lock_guard lk(s.mutex_);
    s.function_loaded_ = true;
    return true;
}

// FCALL name or EVALSHA sha, then the keys and arguments. Loads what the
// server needs first (the function or the script) if this process has not.
std::vector<std::string> redis_client::script_call(const redis_script& s, bool as_function,
                                                   std::span<const std::string> keys,
                                                   std::span<const std::string> args) {
    std::string target;
    bool loaded = false;
    {
        std::lock_guard lk(s.mutex_);
        target = as_function ? s.function_name_ : s.sha_;
        loaded = as_function ? s.function_loaded_ : !s.sha_.empty();
    }
    if (!loaded && as_function && !load_function(s)) return script_call(s, false, keys, args);
    if (!loaded && !as_function) target = load_script(s);
    std::vector<std::string> cmd;
    cmd.reserve(3 + keys.size() + args.size());
    cmd.emplace_back(as_function ? "FCALL" : "EVALSHA");
    cmd.push_back(std::move(target));
    cmd.push_back(std::to_string(keys.size()));
    cmd.insert(cmd.end(), keys.begin(), keys.end());
    cmd.insert(cmd.end(), args.begin(), args.end());
    return cmd;
}

// One call; the function or script is loaded again once if the server lost
// it (restarted, flushed). `as_function` is cleared if the server turned
// out not to run functions.
redis_reply redis_client::eval_once(const redis_script& s, bool& as_function, std::span<const std::string> keys,
                                    std::span<const std::string> args, redis_retry retry) {
    auto cmd = script_call(s, as_function, keys, args);
    as_function = cmd[0] == "FCALL";
    auto r = command(std::span<const std::string>(cmd), retry);
    if (as_function && (function_missing(r) || functions_refused(r))) {
        if (functions_refused(r) || !load_function(s)) {
            no_functions_.store(true, std::memory_order_relaxed);
            as_function = false;
            return eval_once(s, as_function, keys, args, retry);
        }
        r = command(std::span<const std::string>(cmd), retry);
    } else if (!as_function && r.is_error() && starts_with(r.str, "NOSCRIPT")) {
        cmd[1] = load_script(s);
        r = command(std::span<const std::string>(cmd), retry);
    }
    return r;
}

redis_reply redis_client::eval(const redis_script& s, std::span<const std::string> keys,
                               std::span<const std::string> args, redis_retry retry) {
    bool as_function = uses_functions(s);
    auto r = eval_once(s, as_function, keys, args, retry);
    if (r.is_error())
        throw redis_error(redis_failure::server,
                          "orchcore: redis script " + s.name() + " failed at " + where() + ": " + r.str);
    return r;
}

std::vector<redis_reply> redis_client::eval_pipeline(const redis_script& s,
                                                     const std::vector<redis_script_call>& calls, redis_retry retry) {
    if (calls.empty()) return {};
    const bool as_function = uses_functions(s);
    std::vector<std::vector<std::string>> cmds;
    cmds.reserve(calls.size());
    for (const auto& c : calls) cmds.push_back(script_call(s, as_function, c.keys, c.args));
    auto out = pipeline(cmds, retry);
    std::vector<std::size_t> again;  // not run: safe to send again
    for (std::size_t i = 0; i < out.size(); ++i)
        if (out[i].is_error() && (starts_with(out[i].str, "NOSCRIPT") || function_missing(out[i]) ||
                                  (cmds[i][0] == "FCALL" && functions_refused(out[i]))))
            again.push_back(i);
    for (const auto i : again) {  // loaded again by the call
        bool as_fn = uses_functions(s);
        out[i] = eval_once(s, as_fn, calls[i].keys, calls[i].args, retry);
    }
    return out;
}

void redis_client::ping() {
    auto r = command({"PING"}, redis_retry::idempotent);
    if (r.is_error())
        throw redis_error(redis_failure::server, "orchcore: redis at " + where() + " answered PING with " + r.str);
}

}  // namespace orchcore
