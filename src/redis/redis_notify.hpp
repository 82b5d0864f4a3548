// Pub/sub on one channel for the transport's finish notifications
// (internal to the Redis component).
#pragma once

#include <orchcore/redis/redis_options.hpp>
#include <orchcore/transport.hpp>

#include <functional>
#include <memory>
#include <string>

namespace orchcore::redis_detail {

/// Subscribes to `channel` on a connection and a thread of its own and
/// calls fn(message) for every message; fn("") after every (re)subscription
/// (messages sent while unsubscribed are lost). Reconnects with the
/// options' backoff. Destroying the watch closes the connection at once
/// and joins the thread (a call of fn in progress ends first).
std::unique_ptr<transport_watch> watch_channel(redis_options o, std::string channel,
                                               std::function<void(const std::string&)> fn);

}  // namespace orchcore::redis_detail
