// A CPU hint for short spin loops (lets the sibling hyper-thread run and
// saves power), and a bounded backoff for waiting on another thread's short
// step: first pause instructions, then a few yields, then the caller blocks
// (futex, condition variable) or gives up. No loop yields without bound:
// on 2 cores an unbounded spin-then-yield loop turns every wait into a
// storm of sched_yield system calls and context switches.
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

// for (backoff b; !ready(); ) if (!b.pause()) { block(); break; }
//
// pause() waits a little (a pause instruction for the first `Spins` calls,
// then a yield for the next `Yields`) and returns true; after that it
// returns false at once: time to block.
template <int Spins, int Yields>
class bounded_backoff {
    static_assert(Spins >= 0 && Yields >= 0);

public:
    bool pause() noexcept {
        if (n_ < Spins) {
            cpu_relax();
        } else if (n_ < Spins + Yields) {
            std::this_thread::yield();
        } else {
            return false;
        }
        ++n_;
        return true;
    }

private:
    int n_ = 0;
};

}  // namespace orchcore::detail
