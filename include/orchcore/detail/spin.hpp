// A CPU hint for short spin loops (lets the sibling hyper-thread run and
// saves power); a plain yield where no such instruction is known.
#pragma once

#include <thread>

namespace orchcore::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#else
    std::this_thread::yield();
#endif
}

}  // namespace orchcore::detail
