// detail::task (the worker queues' callable) and detail::task_ring (a
// worker's FIFO): order, move-only callables, captures destroyed exactly once.
#include <orchcore/detail/task.hpp>
#include <orchcore/detail/task_ring.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <functional>
#include <memory>
#include <vector>

namespace od = orchcore::detail;

namespace {
// Counts live copies of itself through a shared counter.
struct tracked {
    std::shared_ptr<int> live;
    explicit tracked(std::shared_ptr<int> l) : live(std::move(l)) { ++*live; }
    tracked(tracked&& o) noexcept : live(o.live) { ++*live; }
    tracked(const tracked&) = delete;
    ~tracked() { --*live; }
};
}  // namespace

TEST_CASE("task: runs small and large callables, move-only ones too", "[pool][task]") {
    int ran = 0;
    auto owned = std::make_unique<int>(5);
    od::task small([&ran, p = std::move(owned)] { ran += *p; });
    std::array<long, 16> big_capture{};
    big_capture[15] = 7;
    od::task big([&ran, big_capture] { ran += static_cast<int>(big_capture[15]); });
    STATIC_REQUIRE(od::task::stored_in_place<std::function<void()>>);
    struct too_big {
        std::array<long, 16> v;
        void operator()() const {}
    };
    STATIC_REQUIRE_FALSE(od::task::stored_in_place<too_big>);
    od::task moved = std::move(big);
    CHECK_FALSE(big);
    small();
    moved();
    CHECK(ran == 12);
}

TEST_CASE("task: a callable is destroyed once, whether it ran or not", "[pool][task]") {
    auto live = std::make_shared<int>(0);
    {
        od::task a([t = tracked(live)] {});
        od::task b = std::move(a);
        CHECK(*live == 1);
        b = nullptr;
        CHECK(*live == 0);
        std::array<long, 8> pad{};
        od::task c([t = tracked(live), pad] { (void)pad; });
        STATIC_REQUIRE_FALSE(od::task::stored_in_place<decltype([t = tracked(live), pad] { (void)pad; })>);
        CHECK(*live == 1);
    }
    CHECK(*live == 0);
}

TEST_CASE("task_ring: FIFO across growth and wrap-around, clear destroys the rest", "[pool][task]") {
    od::task_ring ring;
    std::vector<int> order;
    int next = 0;
    for (int round = 0; round < 5; ++round) {
        for (int i = 0; i < 13 * (round + 1); ++i) ring.push_back([&order, v = next++] { order.push_back(v); });
        for (int i = 0; i < 10 * (round + 1); ++i) ring.pop_front()();
    }
    while (!ring.empty()) ring.pop_front()();
    REQUIRE(order.size() == static_cast<std::size_t>(next));
    for (int i = 0; i < next; ++i) CHECK(order[static_cast<std::size_t>(i)] == i);

    auto live = std::make_shared<int>(0);
    for (int i = 0; i < 40; ++i) ring.push_back([t = tracked(live)] {});
    CHECK(*live == 40);
    ring.clear();
    CHECK(*live == 0);
    CHECK(ring.empty());
}
