// Heap allocations of worker_pool::submit, counted by a global operator new
// (hence a binary of its own: the counter sees every allocation of the
// process). A warmed-up pool makes one allocation per submit (the block
// holding the callable, the promise and the future's shared state), plus,
// per burst, some for waking idle workers (an Asio dispatch posted
// from a thread outside the pool allocates its operation).
#define CATCH_CONFIG_MAIN
#include <orchcore/worker_pool.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <future>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

namespace {
std::atomic<long> allocations{0};
}  // namespace

// Every replaceable form is replaced, so that no allocation escapes the
// count and every deallocation pairs with its own allocation (a sanitizer
// checks that new and delete match).
namespace {
void* counted(std::size_t n, std::size_t align = 0) noexcept {
    allocations.fetch_add(1, std::memory_order_relaxed);
    if (n == 0) n = 1;
    if (align <= alignof(std::max_align_t)) return std::malloc(n);
    return std::aligned_alloc(align, (n + align - 1) / align * align);
}
void* counted_or_throw(std::size_t n, std::size_t align = 0) {
    if (void* p = counted(n, align)) return p;
    throw std::bad_alloc();
}
}  // namespace

void* operator new(std::size_t n) { return counted_or_throw(n); }
void* operator new[](std::size_t n) { return counted_or_throw(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted(n); }
void* operator new(std::size_t n, std::align_val_t a) { return counted_or_throw(n, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted_or_throw(n, static_cast<std::size_t>(a)); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return counted(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return counted(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

namespace oc = orchcore;

namespace {

// Submits n callables returning `make(i)` and waits for all of them;
// returns the allocations made meanwhile (the futures' vector is reserved
// beforehand).
template <class Make>
long allocations_for(oc::worker_pool& pool, int n, Make make) {
    using R = decltype(make(0));
    std::vector<std::future<R>> futures;
    futures.reserve(static_cast<std::size_t>(n));
    const long before = allocations.load();
    for (int i = 0; i < n; ++i) futures.push_back(pool.submit([i, make] { return make(i); }));
    for (auto& f : futures) f.wait();
    const long made = allocations.load() - before;
    for (int i = 0; i < n; ++i) REQUIRE(futures[static_cast<std::size_t>(i)].get() == make(i));
    return made;
}

// Allocations allowed besides one per task: worker wake-ups. An idle
// worker spins briefly, then sleeps; on a loaded machine (or under a
// sanitizer) it can catch up with the submitter and sleep many times in one
// burst, each wake-up costing one allocation. One in 20 tasks is far more
// than that and far less than a second allocation per task would add.
constexpr long wake_ups(long tasks) { return std::max(16L, tasks / 20); }

}  // namespace

TEST_CASE("worker_pool::submit allocates once per task after warm-up", "[pool][submit][alloc]") {
    oc::worker_pool pool({.min_workers = 2, .max_workers = 2});
    const auto square = [](int i) { return static_cast<long>(i) * i; };
    // Warm-up: a worker's queue grows (doubling) to the largest backlog it
    // has seen, at most all the tasks of a round, and keeps that storage.
    allocations_for(pool, 10000, square);
    const long made = allocations_for(pool, 5000, square);
    CHECK(made >= 5000);  // the counter sees them
    CHECK(made <= 5000 + wake_ups(5000));
}

TEST_CASE("worker_pool::submit with a larger result or capture still allocates once", "[pool][submit][alloc]") {
    oc::worker_pool pool({.min_workers = 1, .max_workers = 1});
    struct big {
        long v[8];
        bool operator==(const big&) const = default;
    };
    const auto make = [](int i) { return big{{i, i, i, i, i, i, i, i}}; };
    allocations_for(pool, 4000, make);
    CHECK(allocations_for(pool, 2000, make) <= 2000 + wake_ups(2000));
}

TEST_CASE("worker_pool::submit delivers values, void and exceptions through the one block", "[pool][submit][alloc]") {
    oc::worker_pool pool({.min_workers = 1, .max_workers = 1});
    auto s = pool.submit([] { return std::string(100, 'x'); });
    auto v = pool.submit([] {});
    auto e = pool.submit([]() -> int { throw std::runtime_error("nope"); });
    CHECK(s.get() == std::string(100, 'x'));
    CHECK_NOTHROW(v.get());
    CHECK_THROWS_WITH(e.get(), "nope");
}

TEST_CASE("worker_pool::submit takes over-aligned callables and results", "[pool][submit][alloc]") {
    oc::worker_pool pool({.min_workers = 1, .max_workers = 1});
    struct alignas(64) wide {
        long v = 3;
    };
    wide w;
    auto f = pool.submit([w] { return wide{reinterpret_cast<std::uintptr_t>(&w) % 64 == 0 ? w.v + 1 : -1}; });
    CHECK(f.get().v == 4);  // the capture was aligned
}
