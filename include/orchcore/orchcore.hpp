// Umbrella header: everything in orchcore's core.
#pragma once

#include <orchcore/version.hpp>
#include <orchcore/error.hpp>
#include <orchcore/priority.hpp>
#include <orchcore/metrics.hpp>
#include <orchcore/admission_policy.hpp>
#include <orchcore/admission_result.hpp>
#include <orchcore/admission_core.hpp>
#include <orchcore/admission_queue.hpp>
#include <orchcore/any_admission_queue.hpp>
#include <orchcore/task_status.hpp>
#include <orchcore/backoff.hpp>
#include <orchcore/autoscaler.hpp>
#include <orchcore/codec.hpp>
#include <orchcore/task.hpp>
#include <orchcore/event_bus.hpp>
#include <orchcore/worker_pool.hpp>
#include <orchcore/coordinator.hpp>
#include <orchcore/task_store.hpp>
#include <orchcore/transport.hpp>
#include <orchcore/node_backend.hpp>
#include <orchcore/worker_registry.hpp>
