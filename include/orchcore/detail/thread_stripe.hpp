// Striping by thread: which stripe of a striped counter the calling thread
// uses, and a gate built on striped counters that lets a rare writer wait
// until no reader is inside (a grace period), without readers sharing a
// cache line.
#pragma once

#include <orchcore/detail/spin.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>

namespace orchcore::detail {

/// The calling thread's stripe among `N`. Threads are dealt numbers
/// round-robin on first use, so a handful of threads get a stripe each.
template <std::size_t N>
std::size_t thread_stripe() noexcept {
    static_assert(N > 0);
    static std::atomic<std::size_t> next{0};
    thread_local const std::size_t mine = next.fetch_add(1, std::memory_order_relaxed);
    return mine % N;
}

/// Readers announce themselves in their thread's stripe; a writer that has
/// published a change (with a seq_cst store) calls wait_for_readers() and
/// returns once every reader that might have missed the change has left.
/// enter()'s seq_cst increment and the reader's following seq_cst load pair
/// with the writer's seq_cst store and loads (Dekker): either the writer
/// waits for the reader, or the reader sees the change.
template <std::size_t N = 8>
class reader_gate {
public:
    using counter = std::atomic<std::uint32_t>;

    counter& enter() noexcept {
        counter& c = stripes_[thread_stripe<N>()].count;
        c.fetch_add(1, std::memory_order_seq_cst);
        return c;
    }
    static void leave(counter& c) noexcept { c.fetch_sub(1, std::memory_order_release); }

    /// Waits until each stripe has been seen empty once. Readers' sections
    /// are short, so this spins, then yields.
    void wait_for_readers() const noexcept {
        for (const auto& s : stripes_) {
            for (int i = 0; s.count.load(std::memory_order_seq_cst) != 0; ++i) {
                if (i < 32) cpu_relax(); else std::this_thread::yield();
            }
        }
    }

    /// RAII reader section.
    class section {
    public:
        explicit section(reader_gate& g) noexcept : c_(&g.enter()) {}
        section(const section&) = delete;
        section& operator=(const section&) = delete;
        ~section() { leave(); }
        void leave() noexcept {
            if (c_) reader_gate::leave(*c_);
            c_ = nullptr;
        }

    private:
        counter* c_;
    };

private:
    struct alignas(64) stripe {
        counter count{0};
    };
    std::array<stripe, N> stripes_{};
};

}  // namespace orchcore::detail
