// Task priorities: any integer in [priority::min, priority::max]; higher runs first.
#pragma once

namespace orchcore::priority {

inline constexpr int low = 0;
inline constexpr int normal = 5;
inline constexpr int high = 10;
inline constexpr int critical = 20;

inline constexpr int min = low;
inline constexpr int max = critical;

/// Number of distinct priority levels (one FIFO lane each).
inline constexpr int levels = max - min + 1;

constexpr bool is_valid(int p) noexcept { return p >= min && p <= max; }

}  // namespace orchcore::priority
