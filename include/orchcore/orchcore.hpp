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
