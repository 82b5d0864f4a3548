// The Lua prelude of the transport scripts (src/redis/redis_transport.cpp):
// key and :state checks, the checked entry() reader, park(), bury(),
// make_waiting(), count(), bulk(), current() and wake(), and begin(), which
// every script calls first (it sets the keys and checks them and :state).
// It only defines, so it is a script library (redis_script). Scripts of
// other components that change the same queue
// (src/redis/redis_node_backend.cpp) include it and call begin(), so they
// check and repair exactly as the transport does.
#pragma once

namespace orchcore::redis_detail {

/// KEYS[1..7]: waiting, bylevel, delayed, leases, state, poisoned, wake;
/// ARGV[1]: the per-task key prefix "{p:q}:m:".
const char* transport_prelude() noexcept;

}  // namespace orchcore::redis_detail
