#pragma once

#define ORCHCORE_VERSION_MAJOR 0
#define ORCHCORE_VERSION_MINOR 1
#define ORCHCORE_VERSION_PATCH 0

namespace orchcore {
inline constexpr const char* version_string = "0.1.0";
}
