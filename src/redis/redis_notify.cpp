#include "redis_notify.hpp"

#include "redis_util.hpp"

#include <hiredis/hiredis.h>
#include <sys/socket.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace orchcore::redis_detail {

namespace {

timeval to_timeval(std::chrono::milliseconds d) {
    d = clamp_wait(d);
    timeval tv{};
    tv.tv_sec = static_cast<decltype(tv.tv_sec)>(d.count() / 1000);
    tv.tv_usec = static_cast<decltype(tv.tv_usec)>((d.count() % 1000) * 1000);
    return tv;
}

struct reply_ptr {
    redisReply* r = nullptr;
    ~reply_ptr() {
        if (r) freeReplyObject(r);
    }
};

bool is_error(const redisReply* r) { return r == nullptr || r->type == REDIS_REPLY_ERROR; }

// A blocking connection subscribed to one channel. Its reads block until a
// message arrives; the destructor shuts the socket down to end one.
class channel_watch final : public transport_watch {
public:
    channel_watch(redis_options o, std::string channel, std::function<void(const std::string&)> fn)
        : o_(std::move(o)), channel_(std::move(channel)), fn_(std::move(fn)), thread_([this] { run(); }) {}

    ~channel_watch() override {
        {
            std::lock_guard lk(m_);
            stop_ = true;
            if (ctx_) ::shutdown(ctx_->fd, SHUT_RDWR);
        }
        cv_.notify_all();
        thread_.join();
    }

private:
    void run() {
        auto backoff = o_.reconnect_backoff_base;
        for (;;) {
            if (session()) backoff = o_.reconnect_backoff_base;
            std::unique_lock lk(m_);
            if (cv_.wait_for(lk, jittered(backoff), [&] { return stop_; })) return;
            backoff = doubled(backoff, o_.reconnect_backoff_cap);
        }
    }

    // One connection's life. True if it got as far as subscribing.
    bool session() {
        redisContext* c = redisConnectWithTimeout(o_.host.c_str(), o_.port, to_timeval(o_.connect_timeout));
        if (!c) return false;
        std::unique_ptr<redisContext, decltype(&redisFree)> owned(c, redisFree);
        if (c->err) return false;
        {
            std::lock_guard lk(m_);
            if (stop_) return false;
            ctx_ = c;
        }
        struct detach {
            channel_watch& w;
            ~detach() {
                std::lock_guard lk(w.m_);
                w.ctx_ = nullptr;
            }
        } d{*this};
        redisSetTimeout(c, to_timeval(o_.command_timeout));
        redisEnableKeepAlive(c);
        if (!o_.password.empty()) {
            reply_ptr r{static_cast<redisReply*>(
                o_.user.empty() ? redisCommand(c, "AUTH %b", o_.password.data(), o_.password.size())
                                : redisCommand(c, "AUTH %b %b", o_.user.data(), o_.user.size(), o_.password.data(),
                                               o_.password.size()))};
            if (is_error(r.r)) return false;
        }
        reply_ptr sub{static_cast<redisReply*>(redisCommand(c, "SUBSCRIBE %b", channel_.data(), channel_.size()))};
        if (is_error(sub.r)) return false;
        redisSetTimeout(c, timeval{});  // block until a message (or the destructor's shutdown)
        deliver({});
        for (;;) {
            reply_ptr m;
            if (redisGetReply(c, reinterpret_cast<void**>(&m.r)) != REDIS_OK || !m.r) return true;
            if (m.r->type == REDIS_REPLY_ARRAY && m.r->elements == 3 && m.r->element[2]->type == REDIS_REPLY_STRING)
                deliver(std::string(m.r->element[2]->str, m.r->element[2]->len));
        }
    }

    void deliver(const std::string& id) {
        try {
            fn_(id);
        } catch (...) {
            // A waiter's wake-up cannot fail in a way the subscriber could handle.
        }
    }

    redis_options o_;
    std::string channel_;
    std::function<void(const std::string&)> fn_;
    std::mutex m_;
    std::condition_variable cv_;
    bool stop_ = false;
    redisContext* ctx_ = nullptr;  // m_; the live connection, for the destructor to shut down
    std::thread thread_;
};

}  // namespace

std::unique_ptr<transport_watch> watch_channel(redis_options o, std::string channel,
                                               std::function<void(const std::string&)> fn) {
    return std::make_unique<channel_watch>(std::move(o), std::move(channel), std::move(fn));
}

}  // namespace orchcore::redis_detail
