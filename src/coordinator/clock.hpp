// The coordinator's clocks: steady for deadlines, wall for records.
#pragma once

#include <chrono>

namespace orchcore::detail {

using steady = std::chrono::steady_clock;
using wall = std::chrono::system_clock;

}  // namespace orchcore::detail
