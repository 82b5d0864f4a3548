#pragma once

// orchcore is written in C++20 (concepts, designated initializers,
// coroutines). Say so plainly instead of failing somewhere in a header.
#if !defined(__cplusplus) || (__cplusplus < 202002L && !(defined(_MSVC_LANG) && _MSVC_LANG >= 202002L))
#error "orchcore requires C++20: compile with -std=c++20 (CMake: target_compile_features(<target> PRIVATE cxx_std_20), or link orchcore::orchcore, which requires it)"
#endif

#define ORCHCORE_VERSION_MAJOR 0
#define ORCHCORE_VERSION_MINOR 1
#define ORCHCORE_VERSION_PATCH 0

namespace orchcore {
inline constexpr const char* version_string = "0.1.0";
}
