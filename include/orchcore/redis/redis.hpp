// Umbrella header of the Redis component (CMake target orchcore::redis,
// option ORCHCORE_WITH_REDIS; find_package(orchcore CONFIG COMPONENTS redis)).
#pragma once

#include <orchcore/version.hpp>  // the C++20 check
#include <orchcore/redis/redis_options.hpp>
#include <orchcore/redis/redis_client.hpp>
#include <orchcore/redis/redis_async.hpp>
#include <orchcore/redis/redis_transport.hpp>
#include <orchcore/redis/redis_task_store.hpp>
#include <orchcore/redis/redis_node_backend.hpp>
#include <orchcore/redis/redis_worker_registry.hpp>
#include <orchcore/redis/redis_event_bus.hpp>
