// redis_async_connection: one hiredis redisAsyncContext driven by an Asio
// strand. hiredis's event hooks (addRead/delRead/addWrite/delWrite/cleanup)
// map onto async_wait on a posix::stream_descriptor that wraps (but does not
// own) the hiredis fd. Everything below runs on the strand, except the
// destructor (which runs when no strand handler can reach the object any
// more: they hold weak references only).
//
// Re-entrancy rule: hiredis callbacks (replies, connect, cleanup) only record
// state, post, and complete operations (user handlers are posted, internal
// continuations post themselves); they never call back into hiredis. Only
// strand handlers (timers, posted work, descriptor waits) call
// redisAsyncFree / redisAsyncCommandArgv / redisAsyncHandleRead/Write.
#include <orchcore/redis/redis_async.hpp>

#include "redis_util.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <optional>
#include <random>
#include <unordered_map>
#include <utility>

namespace orchcore {

using redis_detail::clamp_wait;
using redis_detail::convert;
using redis_detail::doubled;
using redis_detail::jittered;
using redis_detail::starts_with;

namespace asio = boost::asio;

namespace {

using clock = std::chrono::steady_clock;

std::string ms(std::chrono::milliseconds d) { return std::to_string(d.count()) + "ms"; }

struct failure_info {
    redis_failure failure;
    std::string text;
};

std::exception_ptr to_exception(const failure_info& f) {
    return std::make_exception_ptr(redis_error(f.failure, f.text));
}

// A user's completion handler, with outstanding work on its executor until
// it has been called.
struct user_completion {
    using handler_type = asio::any_completion_handler<void(std::exception_ptr, redis_reply)>;
    handler_type handler;
    asio::any_io_executor strand;
    asio::any_completion_executor work;

    user_completion(handler_type h, const asio::any_io_executor& s)
        : handler(std::move(h)),
          strand(s),
          work(asio::prefer(asio::get_associated_executor(handler, strand),
                            asio::execution::outstanding_work.tracked)) {}

    // Call at most once. Never runs the handler inline: the call is posted to
    // the strand (so it is outside any hiredis callback), and from there
    // dispatched to the handler's associated executor.
    void complete(std::exception_ptr ep, redis_reply r) {
        asio::post(strand, [h = std::move(handler), w = std::move(work), ep, r = std::move(r)]() mutable {
            auto ex = std::move(w);
            asio::dispatch(ex, [h = std::move(h), ep, r = std::move(r)]() mutable { std::move(h)(ep, std::move(r)); });
        });
    }
};

}  // namespace

// One command (user or internal).
struct async_op {
    enum class role { user, auth, select };
    std::vector<std::string> args;
    role kind = role::user;
    // Called once, on the strand, possibly inside a hiredis callback: must
    // not call into hiredis (user completions post; internal ones post).
    std::function<void(std::exception_ptr, redis_reply)> done;
    asio::steady_timer timer;
    bool completed = false;
    std::uint64_t generation = 0;  // context it was sent on; 0: not sent

    explicit async_op(const asio::any_io_executor& ex) : timer(ex) {}
    std::string name() const { return args.empty() ? std::string("command") : args[0]; }
};

struct redis_async_connection::impl {
    redis_async_connection& owner;
    std::weak_ptr<redis_async_connection> weak;
    asio::any_io_executor strand;
    std::string where;

    redisAsyncContext* ctx = nullptr;
    std::uint64_t generation = 0;  // of ctx; bumped per connect
    bool connected = false;        // TCP connect finished
    bool handshaken = false;       // SELECT answered OK
    bool closed = false;
    bool resolving = false;
    std::optional<asio::posix::stream_descriptor> sd;
    bool want_read = false, want_write = false, read_waiting = false, write_waiting = false;
    std::optional<failure_info> dropping;  // why we are freeing ctx (set just before redisAsyncFree)
    std::optional<failure_info> poison;    // handshake failure: every reply on ctx fails with it

    std::deque<std::shared_ptr<async_op>> waiting;  // issued while there was no context
    asio::steady_timer backoff_timer, connect_timer;
    bool backoff_pending = false;
    std::optional<clock::time_point> reconnect_at;
    std::chrono::milliseconds next_backoff;
    asio::ip::tcp::resolver resolver;
    std::unordered_map<std::string, std::string> shas;  // script source -> sha

    impl(redis_async_connection& o, asio::any_io_executor s)
        : owner(o),
          strand(s),
          where(o.options_.describe()),
          backoff_timer(s),
          connect_timer(s),
          next_backoff(o.options_.reconnect_backoff_base),
          resolver(s) {}

    const redis_options& opts() const { return owner.options_; }

    // --- completing ---------------------------------------------------------
    void complete(async_op& op, std::exception_ptr ep, redis_reply r) {
        if (op.completed) return;
        op.completed = true;
        op.timer.cancel();
        auto done = std::move(op.done);
        op.done = nullptr;
        if (done) done(ep, std::move(r));
    }

    void fail(async_op& op, const failure_info& f) {
        if (op.completed) return;
        if (f.failure == redis_failure::io || f.failure == redis_failure::timeout) ++owner.command_failures_;
        complete(op, to_exception(f), {});
    }

    void fail_waiting(const failure_info& f) {
        auto ops = std::move(waiting);
        waiting.clear();
        for (auto& op : ops) fail(*op, f);
    }

    failure_info closed_failure(const std::string& what) const {
        return {redis_failure::io, "orchcore: redis " + what + " at " + where + " failed: the connection was closed"};
    }

    // --- issuing ------------------------------------------------------------
    void submit(std::shared_ptr<async_op> op) {
        if (closed) return fail(*op, closed_failure(op->name()));
        op->timer.expires_after(clamp_wait(opts().command_timeout));
        op->timer.async_wait([w = weak, op](const boost::system::error_code& ec) {
            if (ec) return;
            if (auto self = w.lock()) self->impl_->on_timeout(op);
        });
        if (ctx) return send(op);
        waiting.push_back(std::move(op));
        ensure_connecting();
    }

    void send(const std::shared_ptr<async_op>& op) {
        std::vector<const char*> argv;
        std::vector<std::size_t> lens;
        argv.reserve(op->args.size());
        lens.reserve(op->args.size());
        for (const auto& a : op->args) {
            argv.push_back(a.data());
            lens.push_back(a.size());
        }
        op->generation = generation;
        auto* holder = new std::shared_ptr<async_op>(op);
        if (redisAsyncCommandArgv(ctx, &impl::on_reply_cb, holder, static_cast<int>(argv.size()), argv.data(),
                                  lens.data()) != REDIS_OK) {
            delete holder;
            fail(*op, {redis_failure::io, "orchcore: redis " + op->name() + " at " + where +
                                              " failed: the connection is closing"});
        }
    }

    std::shared_ptr<async_op> internal_op(std::vector<std::string> args, async_op::role kind) {
        auto op = std::make_shared<async_op>(strand);
        op->args = std::move(args);
        op->kind = kind;
        return op;
    }

    // --- connecting ---------------------------------------------------------
    void ensure_connecting() {
        if (ctx || resolving || backoff_pending || closed) return;
        if (reconnect_at && clock::now() < *reconnect_at) {
            backoff_pending = true;
            backoff_timer.expires_at(*reconnect_at);
            backoff_timer.async_wait([w = weak](const boost::system::error_code& ec) {
                auto self = w.lock();
                if (!self) return;
                auto& s = *self->impl_;
                s.backoff_pending = false;
                if (ec || s.closed) return;
                if (!s.waiting.empty()) s.begin_connect();
            });
            return;
        }
        begin_connect();
    }

    void begin_connect() {
        boost::system::error_code ec;
        const auto addr = asio::ip::make_address(opts().host, ec);
        if (!ec) return connect_to(addr.to_string());
        resolving = true;
        resolver.async_resolve(
            opts().host, std::to_string(opts().port),
            [w = weak](const boost::system::error_code& err, const asio::ip::tcp::resolver::results_type& results) {
                auto self = w.lock();
                if (!self) return;
                auto& s = *self->impl_;
                s.resolving = false;
                if (s.closed) return;
                if (err || results.empty())
                    return s.connect_failed("cannot resolve host '" + s.opts().host + "': " +
                                            (err ? err.message() : std::string("no address")));
                s.connect_to(results.begin()->endpoint().address().to_string());
            });
    }

    void note_failure() {
        if (!handshaken) ++owner.connect_failures_;
        reconnect_at = clock::now() + clamp_wait(jittered(next_backoff));
        next_backoff = doubled(next_backoff, opts().reconnect_backoff_cap);
    }

    void connect_failed(const std::string& why) {
        handshaken = false;
        note_failure();
        fail_waiting({redis_failure::connect, "orchcore: cannot connect to redis at " + where + ": " + why});
    }

    void connect_to(const std::string& ip) {
        redisAsyncContext* ac = redisAsyncConnect(ip.c_str(), opts().port);
        if (!ac) return connect_failed("out of memory");
        if (ac->err) {
            std::string why = ac->errstr;
            redisAsyncFree(ac);
            return connect_failed(why);
        }
        ctx = ac;
        ++generation;
        connected = handshaken = false;
        dropping.reset();
        poison.reset();
        want_read = want_write = read_waiting = write_waiting = false;
        ac->data = this;
        ac->ev.data = this;
        ac->ev.addRead = &impl::add_read_cb;
        ac->ev.delRead = &impl::del_read_cb;
        ac->ev.addWrite = &impl::add_write_cb;
        ac->ev.delWrite = &impl::del_write_cb;
        ac->ev.cleanup = &impl::cleanup_cb;
        redisAsyncSetConnectCallback(ac, &impl::on_connect_cb);
        boost::system::error_code ec;
        sd.emplace(strand);
        sd->assign(ac->c.fd, ec);
        if (ec) {
            dropping = failure_info{redis_failure::connect,
                                    "orchcore: cannot connect to redis at " + where + ": " + ec.message()};
            redisAsyncFree(ac);  // cleanup_cb resets ctx
            return fail_waiting(*dropping);
        }
        const auto g = generation;
        connect_timer.expires_after(clamp_wait(opts().connect_timeout));
        connect_timer.async_wait([w = weak, g](const boost::system::error_code& err) {
            if (err) return;
            auto self = w.lock();
            if (!self) return;
            auto& s = *self->impl_;
            if (s.ctx && s.generation == g && !s.connected)
                s.drop({redis_failure::connect, "orchcore: cannot connect to redis at " + s.where +
                                                    ": no answer within connect_timeout = " +
                                                    ms(s.opts().connect_timeout)});
        });
        // The handshake goes first, in the same pipeline.
        if (!opts().password.empty()) {
            std::vector<std::string> auth{"AUTH"};
            if (!opts().user.empty()) auth.push_back(opts().user);
            auth.push_back(opts().password);
            auto op = internal_op(std::move(auth), async_op::role::auth);
            send(op);
        }
        send(internal_op({"SELECT", std::to_string(opts().db)}, async_op::role::select));
        auto ops = std::move(waiting);
        waiting.clear();
        for (auto& op : ops)
            if (!op->completed) {
                if (ctx) send(op);
                else fail(*op, closed_failure(op->name()));
            }
        add_write();  // learn when the connect finishes
    }

    // Frees the context (never call from inside a hiredis callback): every
    // command outstanding on it completes with `f`.
    void drop(const failure_info& f) {
        if (!ctx) return;
        dropping = f;
        redisAsyncFree(ctx);  // runs the reply callbacks with NULL, then cleanup_cb
    }

    // --- hiredis callbacks ---------------------------------------------------
    static void on_connect_cb(const redisAsyncContext* ac, int status) {
        auto* s = static_cast<impl*>(ac->data);
        if (status == REDIS_OK) {
            s->connected = true;
            s->connect_timer.cancel();
        } else if (!s->dropping) {
            s->dropping = failure_info{redis_failure::connect, "orchcore: cannot connect to redis at " + s->where +
                                                                   ": " + std::string(ac->errstr)};
        }
    }

    static void on_reply_cb(redisAsyncContext* ac, void* reply, void* privdata) {
        std::unique_ptr<std::shared_ptr<async_op>> holder(static_cast<std::shared_ptr<async_op>*>(privdata));
        static_cast<impl*>(ac->data)->on_reply(ac, **holder, static_cast<redisReply*>(reply));
    }

    void on_reply(redisAsyncContext* ac, async_op& op, redisReply* reply) {
        if (!reply) {  // the context is being freed
            if (op.completed) return;
            if (dropping) return fail(op, *dropping);
            if (poison) return fail(op, *poison);
            if (!connected)
                return fail(op, {redis_failure::connect,
                                 "orchcore: cannot connect to redis at " + where + ": " + std::string(ac->errstr)});
            const std::string why =
                ac->err == REDIS_ERR_EOF ? std::string("server closed the connection") : std::string(ac->errstr);
            return fail(op, {redis_failure::io, "orchcore: redis " + op.name() + " at " + where +
                                                    " failed: " + why +
                                                    " (it may or may not have been applied)"});
        }
        redis_reply r = convert(reply);
        switch (op.kind) {
            case async_op::role::auth:
                if (r.is_error())
                    set_poison({redis_failure::auth,
                                "orchcore: redis at " + where + " refused authentication" +
                                    (opts().user.empty() ? std::string() : " for user '" + opts().user + "'") +
                                    " (wrong password or user?): " + r.str});
                return complete(op, nullptr, {});
            case async_op::role::select:
                if (r.is_error()) {
                    if (starts_with(r.str, "NOAUTH"))
                        set_poison({redis_failure::auth, "orchcore: redis at " + where +
                                                             " requires authentication: set a password in "
                                                             "redis_options or the URL (" + r.str + ")"});
                    else
                        set_poison({redis_failure::server, "orchcore: redis at " + where + ": SELECT " +
                                                               std::to_string(opts().db) + " failed: " + r.str});
                } else if (!poison) {
                    handshaken = true;
                    next_backoff = opts().reconnect_backoff_base;
                    reconnect_at.reset();
                    ++owner.connects_;
                }
                return complete(op, nullptr, {});
            case async_op::role::user:
                if (poison) return fail(op, *poison);
                return complete(op, nullptr, std::move(r));
        }
    }

    // A handshake failed: the context is dropped (from a posted handler).
    void set_poison(failure_info f) {
        if (poison) return;
        poison = std::move(f);
        asio::post(strand, [w = weak, g = generation] {
            auto self = w.lock();
            if (!self) return;
            auto& s = *self->impl_;
            if (s.ctx && s.generation == g && s.poison) s.drop(*s.poison);
        });
    }

    static void add_read_cb(void* p) {
        auto* s = static_cast<impl*>(p);
        s->want_read = true;
        s->arm(true);
    }
    static void del_read_cb(void* p) { static_cast<impl*>(p)->want_read = false; }
    static void add_write_cb(void* p) { static_cast<impl*>(p)->add_write(); }
    static void del_write_cb(void* p) { static_cast<impl*>(p)->want_write = false; }
    static void cleanup_cb(void* p) { static_cast<impl*>(p)->detach(); }

    void add_write() {
        want_write = true;
        arm(false);
    }

    // Starts one async_wait for readability/writability, unless one is out.
    void arm(bool read) {
        bool& waiting_flag = read ? read_waiting : write_waiting;
        if (!sd || waiting_flag) return;
        waiting_flag = true;
        sd->async_wait(read ? asio::posix::stream_descriptor::wait_read : asio::posix::stream_descriptor::wait_write,
                       [w = weak, g = generation, read](const boost::system::error_code& ec) {
                           if (auto self = w.lock()) self->impl_->on_ready(g, read, ec);
                       });
    }

    void on_ready(std::uint64_t g, bool read, const boost::system::error_code& ec) {
        if (g != generation || !ctx) return;  // a stale wait of a freed context
        (read ? read_waiting : write_waiting) = false;
        if (ec) return;
        if (read ? want_read : want_write) {
            if (read) redisAsyncHandleRead(ctx);
            else redisAsyncHandleWrite(ctx);
        }
        // hiredis may have freed the context (EOF, error) meanwhile.
        if (ctx && g == generation && (read ? want_read : want_write)) arm(read);
    }

    // The context is being freed (by us or by hiredis).
    void detach() {
        connect_timer.cancel();
        if (sd) {
            boost::system::error_code ignored;
            sd->cancel(ignored);  // pending waits complete with operation_aborted
            sd->release();  // hiredis owns (and closes) the fd
            sd.reset();
        }
        want_read = want_write = read_waiting = write_waiting = false;
        ctx = nullptr;
        if (!closed) note_failure();
        handshaken = connected = false;
    }

    // --- timeouts -------------------------------------------------------------
    void on_timeout(const std::shared_ptr<async_op>& op) {
        if (op->completed) return;
        ++owner.timeouts_;
        const std::string text = "orchcore: redis " + op->name() + " at " + where +
                                 " got no reply within command_timeout = " + ms(opts().command_timeout);
        if (op->generation == 0) {  // never sent (waiting for a backoff or a resolve)
            waiting.erase(std::remove(waiting.begin(), waiting.end(), op), waiting.end());
            return fail(*op, {redis_failure::timeout, text + " (not sent: no connection yet)"});
        }
        fail(*op, {redis_failure::timeout, text + " (it may or may not have been applied)"});
        if (ctx && op->generation == generation)
            drop({redis_failure::io, "orchcore: redis at " + where + ": connection dropped because a command (" +
                                         op->name() + ") got no reply within command_timeout = " +
                                         ms(opts().command_timeout) +
                                         "; the commands outstanding on it may or may not have been applied"});
    }

    // --- closing -------------------------------------------------------------
    void close() {
        if (closed) return;
        closed = true;
        backoff_timer.cancel();
        connect_timer.cancel();
        resolver.cancel();
        fail_waiting(closed_failure("command"));
        drop({redis_failure::io, "orchcore: redis command at " + where +
                                     " failed: the connection was closed with the command outstanding "
                                     "(it may or may not have been applied)"});
    }

    // --- scripts --------------------------------------------------------------
    struct eval_state {
        std::string name, source;
        std::vector<std::string> keys, args;
        std::shared_ptr<user_completion> user;
        bool reloaded = false;
    };

    static void finish(const std::shared_ptr<eval_state>& st, std::exception_ptr ep, redis_reply r) {
        if (st->user) {
            auto u = std::move(st->user);
            u->complete(ep, std::move(r));
        }
    }

    // Runs `fn(impl&)` on the strand, or fails the eval if the connection is gone.
    template <class Fn>
    void later(const std::shared_ptr<eval_state>& st, Fn fn) {
        asio::post(strand, [w = weak, st, fn = std::move(fn), where_ = where]() mutable {
            if (auto self = w.lock()) return fn(*self->impl_);
            finish(st, to_exception({redis_failure::io, "orchcore: redis script " + st->name + " at " + where_ +
                                                           " failed: the connection was closed"}),
                   {});
        });
    }

    void eval(const std::shared_ptr<eval_state>& st) {
        const auto it = shas.find(st->source);
        if (it == shas.end()) return load_script(st);
        evalsha(st, it->second);
    }

    void load_script(const std::shared_ptr<eval_state>& st) {
        auto op = internal_op({"SCRIPT", "LOAD", st->source}, async_op::role::user);
        op->done = [st, this_ = this](std::exception_ptr ep, redis_reply r) {
            if (ep) return finish(st, ep, {});
            this_->later(st, [st, r = std::move(r)](impl& s) {
                if (r.type != redis_reply::kind::string)
                    return finish(st,
                                  to_exception({redis_failure::server, "orchcore: redis at " + s.where +
                                                                           " could not load script " + st->name +
                                                                           ": " + r.str}),
                                  {});
                ++s.owner.script_loads_;
                s.shas[st->source] = r.str;
                s.evalsha(st, r.str);
            });
        };
        submit(std::move(op));
    }

    void evalsha(const std::shared_ptr<eval_state>& st, const std::string& sha) {
        std::vector<std::string> cmd;
        cmd.reserve(3 + st->keys.size() + st->args.size());
        cmd.emplace_back("EVALSHA");
        cmd.push_back(sha);
        cmd.push_back(std::to_string(st->keys.size()));
        cmd.insert(cmd.end(), st->keys.begin(), st->keys.end());
        cmd.insert(cmd.end(), st->args.begin(), st->args.end());
        auto op = internal_op(std::move(cmd), async_op::role::user);
        op->done = [st, this_ = this](std::exception_ptr ep, redis_reply r) {
            if (ep) return finish(st, ep, {});
            if (r.is_error() && starts_with(r.str, "NOSCRIPT") && !st->reloaded) {
                st->reloaded = true;
                return this_->later(st, [st](impl& s) {
                    s.shas.erase(st->source);
                    s.load_script(st);
                });
            }
            if (r.is_error())
                return finish(st,
                              to_exception({redis_failure::server, "orchcore: redis script " + st->name +
                                                                       " failed at " + this_->where + ": " + r.str}),
                              {});
            finish(st, nullptr, std::move(r));
        };
        submit(std::move(op));
    }
};

// ---------------------------------------------------------------------------

redis_async_connection::redis_async_connection(asio::any_io_executor ex, redis_options o)
    : options_(std::move(o)), strand_(asio::make_strand(std::move(ex))) {
    options_.validate();
}

std::shared_ptr<redis_async_connection> redis_async_connection::create(asio::any_io_executor ex, redis_options o) {
    std::shared_ptr<redis_async_connection> c(new redis_async_connection(std::move(ex), std::move(o)));
    c->impl_ = std::make_unique<impl>(*c, asio::any_io_executor(c->strand_));
    c->impl_->weak = c;
    return c;
}

redis_async_connection::~redis_async_connection() {
    // No strand handler can reach us any more (they hold weak references), so
    // this is the only code touching impl_ now.
    if (impl_) impl_->close();
}

void redis_async_connection::start_command(std::vector<std::string> args, handler_type h) {
    auto user = std::make_shared<user_completion>(std::move(h), asio::any_io_executor(strand_));
    if (args.empty()) {
        user->complete(std::make_exception_ptr(invalid_argument("args", "[]", "a command needs a name")), {});
        return;
    }
    auto op = std::make_shared<async_op>(asio::any_io_executor(strand_));
    op->args = std::move(args);
    op->done = [user](std::exception_ptr ep, redis_reply r) { user->complete(ep, std::move(r)); };
    asio::post(strand_, [self = shared_from_this(), op = std::move(op)]() mutable { self->impl_->submit(std::move(op)); });
}

void redis_async_connection::start_eval(std::string name, std::string source, std::vector<std::string> keys,
                                        std::vector<std::string> args, handler_type h) {
    auto st = std::make_shared<impl::eval_state>();
    st->name = std::move(name);
    st->source = std::move(source);
    st->keys = std::move(keys);
    st->args = std::move(args);
    st->user = std::make_shared<user_completion>(std::move(h), asio::any_io_executor(strand_));
    asio::post(strand_, [self = shared_from_this(), st = std::move(st)] { self->impl_->eval(st); });
}

void redis_async_connection::close() {
    asio::post(strand_, [self = shared_from_this()] { self->impl_->close(); });
}

redis_async_stats redis_async_connection::stats() const noexcept {
    redis_async_stats s;
    s.connects = connects_.load();
    s.connect_failures = connect_failures_.load();
    s.command_failures = command_failures_.load();
    s.timeouts = timeouts_.load();
    s.script_loads = script_loads_.load();
    return s;
}

}  // namespace orchcore
