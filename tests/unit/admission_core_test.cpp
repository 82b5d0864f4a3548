// Deterministic tests of admission_core (the single-threaded state machine),
// the value types around it (options, errors, policy names, histogram) and
// detail::id_index. Time is a fixed steady_clock::time_point advanced by hand.
#include <orchcore/orchcore.hpp>

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <unordered_map>
#include <vector>

namespace oc = orchcore;
using namespace std::chrono_literals;
using oc::rejection_reason;

namespace {

using steady = std::chrono::steady_clock;
constexpr steady::time_point t0{};

template <class Policy, class Id = oc::job_id>
using core_t = oc::admission_core<std::string, Policy, Id>;

oc::queue_options opts(std::size_t capacity) {
    oc::queue_options o;
    o.capacity = capacity;
    return o;
}

oc::admission_request<> any_id(int prio = oc::priority::normal) { return {std::nullopt, prio}; }
oc::admission_request<> with_id(oc::job_id id, int prio = oc::priority::normal) { return {id, prio}; }

template <class Core>
typename Core::admit_outcome push(Core& c, std::string value, const typename Core::request_type& r = {},
                                  steady::time_point now = t0, bool consumer_waiting = false) {
    return c.admit(std::move(value), r, now, consumer_waiting);
}

template <class Core>
void require_conservation(const Core& c, steady::time_point now = t0) {
    const auto m = c.metrics(now);
    REQUIRE(m.depth == c.size());
    REQUIRE(m.accepted == m.depth + m.dequeued + m.evicted + m.cancelled);
}

std::vector<oc::job_id> ids(std::initializer_list<oc::job_id> l) { return l; }

}  // namespace

// ---------------------------------------------------------------------------
// Admission results, ids and positions
// ---------------------------------------------------------------------------

TEST_CASE("reject-new: accepted tasks get a fresh id and their FIFO position (the depth before insert)",
          "[core][reject-new]") {
    core_t<oc::policy::reject_new> c{opts(8)};
    std::vector<oc::job_id> seen;
    for (std::size_t i = 0; i < 5; ++i) {
        const auto r = push(c, "v" + std::to_string(i)).result;
        REQUIRE(r.accepted());
        REQUIRE(static_cast<bool>(r));
        REQUIRE(r.id.has_value());
        REQUIRE(r.position == i);
        REQUIRE_FALSE(r.evicted.has_value());
        seen.push_back(*r.id);
        REQUIRE(c.position_of(*r.id) == i);
    }
    REQUIRE(std::set<oc::job_id>(seen.begin(), seen.end()).size() == seen.size());
    REQUIRE(c.ids_in_dequeue_order() == seen);
    REQUIRE(c.size() == 5u);
    for (std::size_t i = 0; i < 5; ++i) {
        auto e = c.pop(t0);
        REQUIRE(e.has_value());
        REQUIRE(e->id == seen[i]);
        REQUIRE(e->value == "v" + std::to_string(i));
    }
    REQUIRE_FALSE(c.pop(t0).has_value());
}

TEST_CASE("generated ids never collide with a caller-supplied id that is queued", "[core][ids]") {
    core_t<oc::policy::reject_new> c{opts(1000)};
    // Caller claims the ids a naive counter would hand out next.
    for (oc::job_id id = 1; id <= 5; ++id) REQUIRE(push(c, "caller", with_id(id)).result.accepted());
    std::set<oc::job_id> all{1, 2, 3, 4, 5};
    for (int i = 0; i < 50; ++i) {
        const auto r = push(c, "gen").result;
        REQUIRE(r.accepted());
        REQUIRE(r.id.has_value());
        INFO("generated id " << *r.id);
        REQUIRE(all.insert(*r.id).second);  // never a queued id, never repeated
        // interleave more caller ids just ahead of the generator
        const oc::job_id ahead = *r.id + 2;
        if (!c.contains(ahead) && all.insert(ahead).second) REQUIRE(push(c, "caller", with_id(ahead)).result.accepted());
    }
    REQUIRE(c.size() == all.size());
}

TEST_CASE("generated ids stay unique after the tasks that carried them are gone", "[core][ids]") {
    core_t<oc::policy::reject_new> c{opts(2)};
    std::set<oc::job_id> generated;
    for (int i = 0; i < 100; ++i) {
        const auto r = push(c, "x").result;
        REQUIRE(r.accepted());
        REQUIRE(generated.insert(*r.id).second);
        REQUIRE(c.pop(t0).has_value());
    }
}

TEST_CASE("a duplicate id is rejected as invalid_request and leaves the queue unchanged", "[core][ids]") {
    auto check = [](auto& c) {
        REQUIRE(push(c, "first", with_id(7, 3)).result.accepted());
        REQUIRE(push(c, "second", with_id(8, 4)).result.accepted());
        const auto before_ids = c.ids_in_dequeue_order();
        const auto before = c.metrics(t0);

        std::string value = "duplicate";
        const auto r = c.admit(std::move(value), with_id(7, 9), t0).result;
        REQUIRE(r.rejected());
        REQUIRE_FALSE(static_cast<bool>(r));
        REQUIRE(r.reason == rejection_reason::invalid_request);
        REQUIRE(r.retry_after == 0ms);
        REQUIRE(r.id == std::optional<oc::job_id>(7));
        REQUIRE_FALSE(r.detail.empty());
        REQUIRE(value == "duplicate");  // not moved from
        REQUIRE(c.ids_in_dequeue_order() == before_ids);
        const auto after = c.metrics(t0);
        REQUIRE(after.accepted == before.accepted);
        REQUIRE(after.rejected(rejection_reason::invalid_request) == 1u);
        REQUIRE(after.rejected_total() == 1u);

        // Once the original left the queue, the id is free again.
        auto gone = c.cancel(7);
        REQUIRE(gone.has_value());
        REQUIRE(gone->value == "first");
        REQUIRE(push(c, "reused", with_id(7)).result.accepted());
    };
    SECTION("reject-new") { core_t<oc::policy::reject_new> c{opts(4)}; check(c); }
    SECTION("drop-lru") { core_t<oc::policy::drop_lru> c{opts(4)}; check(c); }
    SECTION("priority") { core_t<oc::policy::priority> c{opts(4)}; check(c); }
    SECTION("a full drop-lru queue does not evict for a duplicate") {
        core_t<oc::policy::drop_lru> c{opts(2)};
        check(c);
        REQUIRE(c.metrics(t0).evicted == 0u);
    }
}

TEST_CASE("priorities outside [0, 20] are rejected as invalid_request; 0 and 20 are accepted", "[core][priority]") {
    auto check = [](auto& c, bool waiting) {
        for (int bad : {-1, 21, INT_MIN, INT_MAX, oc::priority::min - 1, oc::priority::max + 1}) {
            std::string v = "bad";
            const auto o = c.admit(std::move(v), any_id(bad), t0, waiting);
            INFO("priority " << bad);
            REQUIRE(o.result.rejected());
            REQUIRE(o.result.reason == rejection_reason::invalid_request);
            REQUIRE(o.result.retry_after == 0ms);
            REQUIRE_FALSE(o.handoff.has_value());
            REQUIRE(v == "bad");
        }
        REQUIRE(c.size() == 0u);
        REQUIRE(c.metrics(t0).rejected(rejection_reason::invalid_request) == 6u);
        REQUIRE(c.metrics(t0).accepted == 0u);
        REQUIRE(push(c, "lo", any_id(oc::priority::min), t0, waiting).result.accepted());
        REQUIRE(push(c, "hi", any_id(oc::priority::max), t0, waiting).result.accepted());
    };
    SECTION("reject-new") { core_t<oc::policy::reject_new> c{opts(4)}; check(c, false); }
    SECTION("drop-lru") { core_t<oc::policy::drop_lru> c{opts(4)}; check(c, false); }
    SECTION("priority") { core_t<oc::policy::priority> c{opts(4)}; check(c, false); }
    SECTION("fail-fast with a consumer waiting") { core_t<oc::policy::fail_fast> c{opts(4)}; check(c, true); }
}

// ---------------------------------------------------------------------------
// reject-new
// ---------------------------------------------------------------------------

TEST_CASE("reject-new: a full queue rejects with queue_full and the default retry_after before any dequeue",
          "[core][reject-new][retry]") {
    core_t<oc::policy::reject_new> c{opts(2)};
    REQUIRE(push(c, "a").result.accepted());
    REQUIRE(push(c, "b").result.accepted());
    const auto before = c.ids_in_dequeue_order();

    std::string v = "c";
    const auto r = c.admit(std::move(v), with_id(99, oc::priority::critical), t0).result;
    REQUIRE(r.rejected());
    REQUIRE(r.reason == rejection_reason::queue_full);
    REQUIRE(r.retry_after == 1000ms);
    REQUIRE(r.retry_after == c.options().default_retry_after);
    REQUIRE(r.id == std::optional<oc::job_id>(99));
    REQUIRE_FALSE(r.evicted.has_value());
    REQUIRE(v == "c");
    REQUIRE(c.ids_in_dequeue_order() == before);
    REQUIRE_FALSE(c.contains(99));
    const auto m = c.metrics(t0);
    REQUIRE(m.rejected(rejection_reason::queue_full) == 1u);
    REQUIRE(m.accepted == 2u);
    REQUIRE(m.evicted == 0u);

    SECTION("a single dequeue is not yet a measurement: still the default") {
        REQUIRE(c.pop(t0 + 10ms).has_value());
        REQUIRE(push(c, "c", {}, t0 + 10ms).result.accepted());
        const auto r2 = push(c, "d", {}, t0 + 10ms).result;
        REQUIRE(r2.reason == rejection_reason::queue_full);
        REQUIRE(r2.retry_after == 1000ms);
    }
    SECTION("a slot freed by a dequeue admits again") {
        REQUIRE(c.pop(t0).has_value());
        REQUIRE(push(c, "c").result.accepted());
    }
}

TEST_CASE("reject-new: retry_after follows the measured interval between dequeues, clamped to the options",
          "[core][reject-new][retry]") {
    // Four dequeues 200ms apart, then a rejection at the time of the last one.
    auto run = [](oc::queue_options o, steady::duration reject_at) {
        o.capacity = 1;
        core_t<oc::policy::reject_new> c{o};
        for (int i = 0; i < 4; ++i) {
            const auto now = t0 + i * 200ms;
            REQUIRE(push(c, "x", {}, now).result.accepted());
            REQUIRE(c.pop(now).has_value());
        }
        REQUIRE(push(c, "fill", {}, t0 + 600ms).result.accepted());
        const auto r = push(c, "over", {}, t0 + reject_at).result;
        REQUIRE(r.reason == rejection_reason::queue_full);
        return r.retry_after;
    };
    SECTION("unclamped: about the measured interval") {
        const auto ra = run({}, 600ms);
        REQUIRE(ra >= 200ms);
        REQUIRE(ra <= 201ms);
    }
    SECTION("a stalled consumer lengthens the hint (silence counts)") {
        const auto ra = run({}, 600ms + 5s);
        REQUIRE(ra >= 5000ms);
        REQUIRE(ra <= 5001ms);
    }
    SECTION("clamped up to min_retry_after") {
        oc::queue_options o;
        o.min_retry_after = 500ms;
        REQUIRE(run(o, 600ms) == 500ms);
    }
    SECTION("clamped down to max_retry_after") {
        oc::queue_options o;
        o.max_retry_after = 50ms;
        o.default_retry_after = 50ms;
        REQUIRE(run(o, 600ms) == 50ms);
        REQUIRE(run(o, 600ms + 1h) == 50ms);
    }
    SECTION("metrics report the dequeue rate") {
        core_t<oc::policy::reject_new> c{opts(1)};
        for (int i = 0; i < 4; ++i) {
            const auto now = t0 + i * 200ms;
            REQUIRE(push(c, "x", {}, now).result.accepted());
            REQUIRE(c.pop(now).has_value());
        }
        REQUIRE(c.metrics(t0 + 600ms).dequeue_rate_per_second == Approx(5.0).epsilon(0.01));
        // a long silence drives the rate down
        REQUIRE(c.metrics(t0 + 600ms + 10s).dequeue_rate_per_second == Approx(0.1).epsilon(0.01));
    }
}

// ---------------------------------------------------------------------------
// drop-lru
// ---------------------------------------------------------------------------

TEST_CASE("drop-lru: a full queue evicts the oldest task of the lowest priority present", "[core][drop-lru]") {
    core_t<oc::policy::drop_lru> c{opts(3)};
    REQUIRE(push(c, "A", with_id(1, 5), t0).result.accepted());
    REQUIRE(push(c, "B", with_id(2, 2), t0 + 1ms).result.accepted());
    REQUIRE(push(c, "C", with_id(3, 2), t0 + 2ms).result.accepted());

    // D outranks everything; the victim is B: lowest priority (2), oldest of the two.
    auto r = push(c, "D", with_id(4, 10), t0 + 3ms).result;
    REQUIRE(r.accepted());
    REQUIRE(r.id == std::optional<oc::job_id>(4));
    REQUIRE(r.position == 2u);  // FIFO: depth before insert, after the eviction
    REQUIRE(r.evicted.has_value());
    REQUIRE(r.evicted->id == 2u);
    REQUIRE(r.evicted->value == "B");
    REQUIRE(r.evicted->priority == 2);
    REQUIRE(r.evicted->enqueued_at == t0 + 1ms);
    REQUIRE(c.ids_in_dequeue_order() == ids({1, 3, 4}));

    auto m = c.metrics(t0);
    REQUIRE(m.evicted == 1u);
    REQUIRE(m.rejected_total() == 0u);
    REQUIRE(m.accepted == 4u);
    REQUIRE(m.depth == 3u);
    require_conservation(c);

    // drop-lru always admits: even a newcomer of the lowest priority evicts the
    // oldest task of the lowest priority present (C, priority 2).
    r = push(c, "E", with_id(5, 0), t0 + 4ms).result;
    REQUIRE(r.accepted());
    REQUIRE(r.evicted.has_value());
    REQUIRE(r.evicted->id == 3u);
    REQUIRE(c.ids_in_dequeue_order() == ids({1, 4, 5}));

    // Now the lowest priority is 0 and E is the only one there.
    r = push(c, "F", with_id(6, 0), t0 + 5ms).result;
    REQUIRE(r.evicted.has_value());
    REQUIRE(r.evicted->id == 5u);
    REQUIRE(r.evicted->value == "E");
    REQUIRE(c.ids_in_dequeue_order() == ids({1, 4, 6}));

    m = c.metrics(t0);
    REQUIRE(m.evicted == 3u);
    REQUIRE(m.accepted == 6u);
    REQUIRE(m.rejected_total() == 0u);
    require_conservation(c);
}

TEST_CASE("drop-lru: with one priority it is a plain LRU and dequeues FIFO", "[core][drop-lru]") {
    core_t<oc::policy::drop_lru> c{opts(3)};
    for (oc::job_id id = 1; id <= 3; ++id) REQUIRE(push(c, "v", with_id(id)).result.accepted());
    for (oc::job_id id = 4; id <= 10; ++id) {
        const auto r = push(c, "v" + std::to_string(id), with_id(id)).result;
        REQUIRE(r.accepted());
        REQUIRE(r.evicted.has_value());
        REQUIRE(r.evicted->id == id - 3);
        REQUIRE(c.size() == 3u);
    }
    REQUIRE(c.ids_in_dequeue_order() == ids({8, 9, 10}));
    // dequeue order ignores priority for drop-lru
    REQUIRE(c.cancel(9).has_value());
    REQUIRE(push(c, "hi", with_id(11, oc::priority::critical)).result.position == 2u);
    REQUIRE(c.pop(t0)->id == 8u);
    REQUIRE(c.pop(t0)->id == 10u);
    REQUIRE(c.pop(t0)->id == 11u);
}

TEST_CASE("drop-lru: admission order across priorities survives cancellations and a long churn behind one task",
          "[core][drop-lru]") {
    core_t<oc::policy::drop_lru> c{opts(64)};
    // Priorities 3, 7, 3, 12, 7, ...: dequeue order is still admission order.
    const int prios[] = {3, 7, 3, 12, 7, 0, 12, 3};
    for (oc::job_id id = 1; id <= 8; ++id) REQUIRE(push(c, "v", with_id(id, prios[id - 1])).result.accepted());
    REQUIRE(c.cancel(3).has_value());  // from the middle of priority 3
    REQUIRE(c.cancel(5).has_value());  // from the middle of priority 7
    REQUIRE(c.ids_in_dequeue_order() == ids({1, 2, 4, 6, 7, 8}));
    REQUIRE(c.position_of(8) == 5u);
    REQUIRE(c.position_of(4) == 2u);

    // Task 1 stays at the head while tasks come and go behind it, many
    // times the capacity: every position and the order stay exact.
    oc::job_id next = 100;
    for (int round = 0; round < 2000; ++round) {
        const oc::job_id a = next++, b = next++;
        REQUIRE(push(c, "a", with_id(a, round % 2 == 0 ? 3 : 12)).result.position == 6u);
        REQUIRE(push(c, "b", with_id(b, 3)).result.position == 7u);
        REQUIRE(c.cancel(a).has_value());
        REQUIRE(c.position_of(b) == 6u);
        REQUIRE(c.cancel(b).has_value());
        REQUIRE_FALSE(c.contains(a));
    }
    REQUIRE(c.size() == 6u);
    for (oc::job_id id : {1, 2, 4, 6, 7, 8}) REQUIRE(c.pop(t0)->id == id);
    require_conservation(c);
}

// ---------------------------------------------------------------------------
// priority
// ---------------------------------------------------------------------------

TEST_CASE("priority: dequeues by priority, FIFO within a priority; position counts tasks of priority >= its own",
          "[core][priority]") {
    core_t<oc::policy::priority> c{opts(16)};
    struct step { oc::job_id id; int prio; std::size_t expected_position; };
    const step steps[] = {{1, 5, 0}, {2, 10, 0}, {3, 5, 2}, {4, 0, 3}, {5, 10, 1}, {6, 20, 0}, {7, 5, 5}};
    for (const auto& s : steps) {
        const auto r = push(c, "v" + std::to_string(s.id), with_id(s.id, s.prio)).result;
        INFO("id " << s.id);
        REQUIRE(r.accepted());
        REQUIRE(r.position == s.expected_position);
    }
    const auto order = ids({6, 2, 5, 1, 3, 7, 4});
    REQUIRE(c.ids_in_dequeue_order() == order);
    for (std::size_t i = 0; i < order.size(); ++i) REQUIRE(c.position_of(order[i]) == i);

    std::vector<oc::queue_entry<std::string>> out;
    REQUIRE(c.pop_batch(std::back_inserter(out), 3, t0) == 3u);
    REQUIRE(out.size() == 3u);
    REQUIRE(out[0].id == 6u);
    REQUIRE(out[0].priority == 20);
    REQUIRE(out[0].value == "v6");
    REQUIRE(out[1].id == 2u);
    REQUIRE(out[2].id == 5u);
    for (oc::job_id id : {1, 3, 7, 4}) REQUIRE(c.pop(t0)->id == id);
    REQUIRE(c.empty());
}

TEST_CASE("priority: a full queue evicts the newest lowest-priority task only when strictly outranked",
          "[core][priority]") {
    core_t<oc::policy::priority> c{opts(3)};
    REQUIRE(push(c, "a", with_id(1, 5)).result.accepted());
    REQUIRE(push(c, "b", with_id(2, 1)).result.accepted());
    REQUIRE(push(c, "c", with_id(3, 1)).result.accepted());

    SECTION("equal priority is not enough: queue_full") {
        std::string v = "d";
        const auto r = c.admit(std::move(v), with_id(4, 1), t0).result;
        REQUIRE(r.rejected());
        REQUIRE(r.reason == rejection_reason::queue_full);
        REQUIRE(r.retry_after == 1000ms);
        REQUIRE_FALSE(r.evicted.has_value());
        REQUIRE(v == "d");
        REQUIRE(c.ids_in_dequeue_order() == ids({1, 2, 3}));
        REQUIRE(c.metrics(t0).evicted == 0u);
        REQUIRE(c.metrics(t0).rejected(rejection_reason::queue_full) == 1u);
    }
    SECTION("a lower priority: queue_full") {
        const auto r = push(c, "d", with_id(4, 0)).result;
        REQUIRE(r.reason == rejection_reason::queue_full);
        REQUIRE(c.ids_in_dequeue_order() == ids({1, 2, 3}));
    }
    SECTION("strictly higher: the newest of the lowest priority is evicted") {
        auto r = push(c, "d", with_id(4, 2)).result;
        REQUIRE(r.accepted());
        REQUIRE(r.evicted.has_value());
        REQUIRE(r.evicted->id == 3u);  // c is newer than b
        REQUIRE(r.evicted->value == "c");
        REQUIRE(r.evicted->priority == 1);
        REQUIRE(r.position == 1u);  // behind a (5)
        REQUIRE(c.ids_in_dequeue_order() == ids({1, 4, 2}));

        r = push(c, "e", with_id(5, 9)).result;
        REQUIRE(r.accepted());
        REQUIRE(r.evicted->id == 2u);
        REQUIRE(r.position == 0u);
        REQUIRE(c.ids_in_dequeue_order() == ids({5, 1, 4}));

        const auto m = c.metrics(t0);
        REQUIRE(m.evicted == 2u);
        REQUIRE(m.accepted == 5u);
        REQUIRE(m.rejected_total() == 0u);
        require_conservation(c);
    }
}

namespace {
struct prio_reject
    : oc::policy::basic_policy<oc::policy::dequeue_order::by_priority, oc::policy::when_full::reject, false> {
    static constexpr std::string_view name = "prio-reject";
};
static_assert(oc::admission_policy<prio_reject>);
}  // namespace

TEST_CASE("a user-defined policy combination: priority order, reject when full", "[core][policy]") {
    oc::admission_core<int, prio_reject> c{opts(2)};
    REQUIRE(c.admit(1, with_id(1, 1), t0).result.position == 0u);
    REQUIRE(c.admit(2, with_id(2, 9), t0).result.position == 0u);
    const auto r = c.admit(3, with_id(3, 20), t0).result;
    REQUIRE(r.reason == rejection_reason::queue_full);
    REQUIRE(c.metrics(t0).policy == "prio-reject");
    REQUIRE(c.pop(t0)->value == 2);
    REQUIRE(c.pop(t0)->value == 1);
}

// ---------------------------------------------------------------------------
// capacity 0 and fail-fast
// ---------------------------------------------------------------------------

TEMPLATE_TEST_CASE("capacity 0 admits nothing for queueing policies", "[core][capacity]", oc::policy::reject_new,
                   oc::policy::drop_lru, oc::policy::priority) {
    core_t<TestType> c{opts(0)};
    for (bool waiting : {false, true}) {
        std::string v = "x";
        const auto o = c.admit(std::move(v), any_id(oc::priority::critical), t0, waiting);
        REQUIRE(o.result.rejected());
        REQUIRE(o.result.reason == rejection_reason::queue_full);
        REQUIRE_FALSE(o.result.evicted.has_value());
        REQUIRE_FALSE(o.handoff.has_value());
        REQUIRE(v == "x");
    }
    const auto m = c.metrics(t0);
    REQUIRE(m.capacity == 0u);
    REQUIRE(m.depth == 0u);
    REQUIRE(m.accepted == 0u);
    REQUIRE(m.rejected(rejection_reason::queue_full) == 2u);
    REQUIRE(c.empty());
    REQUIRE_FALSE(c.pop(t0).has_value());
}

TEST_CASE("fail-fast: rejected with policy_violation when no consumer is waiting", "[core][fail-fast]") {
    core_t<oc::policy::fail_fast> c{opts(4)};
    std::string v = "job";
    const auto o = c.admit(std::move(v), with_id(3), t0, /*consumer_waiting=*/false);
    REQUIRE(o.result.rejected());
    REQUIRE(o.result.reason == rejection_reason::policy_violation);
    REQUIRE(o.result.id == std::optional<oc::job_id>(3));
    REQUIRE(o.result.retry_after == c.options().default_retry_after);  // retrying may help
    REQUIRE_FALSE(o.handoff.has_value());
    REQUIRE(v == "job");
    REQUIRE(c.empty());  // never queued, although there is room
    const auto m = c.metrics(t0);
    REQUIRE(m.rejected(rejection_reason::policy_violation) == 1u);
    REQUIRE(m.accepted == 0u);
    REQUIRE(m.handed_off == 0u);
}

TEST_CASE("fail-fast: admitted as a direct handoff when a consumer is waiting, without using a slot",
          "[core][fail-fast]") {
    const std::size_t capacity = GENERATE(0u, 1u);
    core_t<oc::policy::fail_fast> c{opts(capacity)};
    for (int i = 0; i < 5; ++i) {
        const auto now = t0 + i * 1ms;
        const auto o = push(c, "payload" + std::to_string(i), any_id(7), now, /*consumer_waiting=*/true);
        REQUIRE(o.result.accepted());
        REQUIRE(o.result.position == 0u);
        REQUIRE(o.result.id.has_value());
        REQUIRE(o.handoff.has_value());
        REQUIRE(o.handoff->id == *o.result.id);
        REQUIRE(o.handoff->value == "payload" + std::to_string(i));
        REQUIRE(o.handoff->priority == 7);
        REQUIRE(o.handoff->enqueued_at == now);
        REQUIRE(c.size() == 0u);
        REQUIRE_FALSE(c.contains(*o.result.id));
        REQUIRE_FALSE(c.pop(now).has_value());
    }
    const auto with_caller_id = push(c, "mine", with_id(42), t0, true);
    REQUIRE(with_caller_id.result.id == std::optional<oc::job_id>(42));
    REQUIRE(with_caller_id.handoff->id == 42u);

    const auto m = c.metrics(t0 + 4ms);
    REQUIRE(m.policy == "fail-fast");
    REQUIRE(m.accepted == 6u);
    REQUIRE(m.handed_off == 6u);
    REQUIRE(m.dequeued == 6u);
    REQUIRE(m.depth == 0u);
    REQUIRE(m.wait_time.count() == 6u);
    REQUIRE(m.wait_time.max() == 0ns);
    REQUIRE(m.rejected_total() == 0u);
    require_conservation(c);
}

TEST_CASE("queueing policies ignore consumer_waiting and never count a handoff", "[core][fail-fast]") {
    core_t<oc::policy::reject_new> c{opts(2)};
    const auto o = push(c, "x", {}, t0, /*consumer_waiting=*/true);
    REQUIRE(o.result.accepted());
    REQUIRE_FALSE(o.handoff.has_value());
    REQUIRE(c.size() == 1u);
    REQUIRE(c.metrics(t0).handed_off == 0u);
}

// ---------------------------------------------------------------------------
// cancel, close, pop
// ---------------------------------------------------------------------------

TEST_CASE("cancel removes a queued task and returns it; cancelling again is a no-op", "[core][cancel]") {
    auto check = [](auto& c, const std::vector<oc::job_id>& order, oc::job_id victim) {
        REQUIRE(c.ids_in_dequeue_order() == order);
        const auto victim_pos = *c.position_of(victim);
        const auto before = c.metrics(t0);

        auto e = c.cancel(victim);
        REQUIRE(e.has_value());
        REQUIRE(e->id == victim);
        REQUIRE(e->value == "v" + std::to_string(victim));
        REQUIRE_FALSE(c.contains(victim));
        REQUIRE_FALSE(c.position_of(victim).has_value());
        REQUIRE(c.size() == order.size() - 1);
        for (std::size_t i = 0; i < order.size(); ++i) {
            if (order[i] == victim) continue;
            const std::size_t expected = i < victim_pos ? i : i - 1;  // behind: shift by one
            REQUIRE(c.position_of(order[i]) == expected);
        }
        auto m = c.metrics(t0);
        REQUIRE(m.cancelled == before.cancelled + 1);
        REQUIRE(m.dequeued == before.dequeued);
        require_conservation(c);

        const auto ids_after = c.ids_in_dequeue_order();
        REQUIRE_FALSE(c.cancel(victim).has_value());
        REQUIRE_FALSE(c.cancel(12345).has_value());
        REQUIRE(c.ids_in_dequeue_order() == ids_after);
        REQUIRE(c.metrics(t0).cancelled == m.cancelled);
    };
    SECTION("reject-new") {
        core_t<oc::policy::reject_new> c{opts(8)};
        for (oc::job_id id = 1; id <= 5; ++id) push(c, "v" + std::to_string(id), with_id(id));
        check(c, ids({1, 2, 3, 4, 5}), 2);
    }
    SECTION("reject-new, the head") {
        core_t<oc::policy::reject_new> c{opts(8)};
        for (oc::job_id id = 1; id <= 3; ++id) push(c, "v" + std::to_string(id), with_id(id));
        check(c, ids({1, 2, 3}), 1);
        REQUIRE(c.pop(t0)->id == 2u);
    }
    SECTION("drop-lru: the cancelled task is no longer an eviction candidate") {
        core_t<oc::policy::drop_lru> c{opts(3)};
        push(c, "v1", with_id(1, 1));
        push(c, "v2", with_id(2, 3));
        push(c, "v3", with_id(3, 3));
        check(c, ids({1, 2, 3}), 1);
        push(c, "v4", with_id(4, 9));  // fills the freed slot
        const auto r = push(c, "v5", with_id(5, 9)).result;
        REQUIRE(r.evicted->id == 2u);
    }
    SECTION("priority") {
        core_t<oc::policy::priority> c{opts(8)};
        push(c, "v1", with_id(1, 1));
        push(c, "v2", with_id(2, 9));
        push(c, "v3", with_id(3, 5));
        push(c, "v4", with_id(4, 5));
        push(c, "v5", with_id(5, 0));
        check(c, ids({2, 3, 4, 1, 5}), 3);
        REQUIRE(push(c, "v6", with_id(6, 5)).result.position == 2u);
    }
}

TEST_CASE("close rejects admissions with reason closed and retry_after 0; queued tasks can still leave",
          "[core][close]") {
    auto check = [](auto& c, bool waiting) {
        c.close();
        REQUIRE(c.is_closed());
        std::string v = "late";
        const auto o = c.admit(std::move(v), with_id(50, oc::priority::critical), t0, waiting);
        REQUIRE(o.result.rejected());
        REQUIRE(o.result.reason == rejection_reason::closed);
        REQUIRE(o.result.retry_after == 0ms);
        REQUIRE_FALSE(o.handoff.has_value());
        REQUIRE(v == "late");
        // a closed queue reports closed even for requests that are also invalid
        REQUIRE(push(c, "bad", any_id(99), t0, waiting).result.reason == rejection_reason::closed);
        REQUIRE(c.metrics(t0).rejected(rejection_reason::closed) == 2u);
        REQUIRE(c.metrics(t0).rejected_total() == 2u);
    };
    SECTION("reject-new: queued tasks stay poppable and cancellable") {
        core_t<oc::policy::reject_new> c{opts(4)};
        push(c, "a", with_id(1));
        push(c, "b", with_id(2));
        push(c, "c", with_id(3));
        check(c, false);
        REQUIRE(c.size() == 3u);
        REQUIRE(c.pop(t0)->value == "a");
        REQUIRE(c.cancel(3)->value == "c");
        REQUIRE(c.pop(t0)->value == "b");
        REQUIRE_FALSE(c.pop(t0).has_value());
        require_conservation(c);
    }
    SECTION("drop-lru, full: no eviction after close") {
        core_t<oc::policy::drop_lru> c{opts(1)};
        push(c, "a", with_id(1, 0));
        check(c, false);
        REQUIRE(c.metrics(t0).evicted == 0u);
        REQUIRE(c.ids_in_dequeue_order() == ids({1}));
    }
    SECTION("priority") {
        core_t<oc::policy::priority> c{opts(1)};
        push(c, "a", with_id(1, 0));
        check(c, false);
        REQUIRE(c.pop(t0)->id == 1u);
    }
    SECTION("fail-fast, even with a consumer waiting") {
        core_t<oc::policy::fail_fast> c{opts(1)};
        check(c, true);
        REQUIRE(c.metrics(t0).handed_off == 0u);
    }
}

TEST_CASE("pop returns the entry with its payload, id, priority and admission time", "[core][pop]") {
    core_t<oc::policy::reject_new> c{opts(4)};
    REQUIRE_FALSE(c.pop(t0).has_value());
    REQUIRE(push(c, "hello", with_id(9, 13), t0 + 5ms).result.accepted());
    const auto e = c.pop(t0 + 8ms);
    REQUIRE(e.has_value());
    REQUIRE(e->id == 9u);
    REQUIRE(e->value == "hello");
    REQUIRE(e->priority == 13);
    REQUIRE(e->enqueued_at == t0 + 5ms);
    const auto m = c.metrics(t0 + 8ms);
    REQUIRE(m.dequeued == 1u);
    REQUIRE(m.wait_time.count() == 1u);
    REQUIRE(m.wait_time.sum() == 3ms);
    REQUIRE_FALSE(c.pop(t0).has_value());
}

TEST_CASE("pop_batch takes up to max tasks in dequeue order", "[core][pop]") {
    core_t<oc::policy::reject_new> c{opts(8)};
    for (oc::job_id id = 1; id <= 5; ++id) push(c, "v" + std::to_string(id), with_id(id));
    std::vector<oc::queue_entry<std::string>> out;
    REQUIRE(c.pop_batch(std::back_inserter(out), 0, t0) == 0u);
    REQUIRE(out.empty());
    REQUIRE(c.pop_batch(std::back_inserter(out), 2, t0) == 2u);
    REQUIRE(c.pop_batch(std::back_inserter(out), 10, t0) == 3u);
    REQUIRE(c.pop_batch(std::back_inserter(out), 10, t0) == 0u);
    REQUIRE(out.size() == 5u);
    for (std::size_t i = 0; i < 5; ++i) {
        REQUIRE(out[i].id == i + 1);
        REQUIRE(out[i].value == "v" + std::to_string(i + 1));
    }
    const auto m = c.metrics(t0);
    REQUIRE(m.dequeued == 5u);
    REQUIRE(m.wait_time.count() == 5u);
    require_conservation(c);
}

// ---------------------------------------------------------------------------
// metrics
// ---------------------------------------------------------------------------

TEST_CASE("metrics conservation: accepted == depth + dequeued + evicted + cancelled through a mixed workload",
          "[core][metrics]") {
    auto run = [](auto& c) {
        auto now = t0;
        for (int round = 0; round < 40; ++round) {
            now += 1ms;
            push(c, "v", any_id(round % 21), now);
            require_conservation(c, now);
            if (round % 3 == 0) {
                c.pop(now);
                require_conservation(c, now);
            }
            if (round % 5 == 0) {
                const auto queued = c.ids_in_dequeue_order();
                if (!queued.empty()) REQUIRE(c.cancel(queued.back()).has_value());
                require_conservation(c, now);
            }
            if (round % 7 == 0) push(c, "dup", with_id(c.ids_in_dequeue_order().empty() ? 1 : c.ids_in_dequeue_order()[0]), now);
            require_conservation(c, now);
        }
        const auto m = c.metrics(now);
        REQUIRE(m.cancelled > 0u);
        REQUIRE(m.dequeued > 0u);
        REQUIRE(m.depth <= m.capacity);
        REQUIRE(m.wait_time.count() == m.dequeued);
        return m;
    };
    SECTION("reject-new") {
        core_t<oc::policy::reject_new> c{opts(4)};
        const auto m = run(c);
        REQUIRE(m.rejected(rejection_reason::queue_full) > 0u);
        REQUIRE(m.evicted == 0u);
        REQUIRE(m.policy == "reject-new");
    }
    SECTION("drop-lru") {
        core_t<oc::policy::drop_lru> c{opts(4)};
        const auto m = run(c);
        REQUIRE(m.evicted > 0u);
        REQUIRE(m.rejected(rejection_reason::queue_full) == 0u);
        REQUIRE(m.policy == "drop-lru");
    }
    SECTION("priority") {
        core_t<oc::policy::priority> c{opts(4)};
        const auto m = run(c);
        REQUIRE(m.evicted > 0u);
        REQUIRE(m.policy == "priority");
    }
}

TEST_CASE("the wait_time histogram counts every dequeue and estimates quantiles", "[core][metrics]") {
    core_t<oc::policy::reject_new> c{opts(128)};
    for (int i = 0; i < 100; ++i) push(c, "x", {}, t0);
    for (int i = 0; i < 90; ++i) REQUIRE(c.pop(t0 + 1ms).has_value());
    for (int i = 0; i < 10; ++i) REQUIRE(c.pop(t0 + 1s).has_value());
    const auto& h = c.metrics(t0 + 1s).wait_time;
    REQUIRE(h.count() == 100u);
    REQUIRE(h.sum() == 90 * 1ms + 10 * 1s);
    REQUIRE(h.max() == 1s);
    const auto p50 = h.quantile(0.5);
    REQUIRE(p50 >= 1ms);
    REQUIRE(p50 <= 2ms);
    REQUIRE(h.quantile(0.99) == 1s);  // never more than the largest sample
    REQUIRE(h.quantile(1.0) == 1s);
    REQUIRE(h.quantile(0.0) == p50);
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < oc::latency_histogram::bucket_count; ++i) total += h.bucket(i);
    REQUIRE(total == 100u);
}

TEST_CASE("latency_histogram: samples at nanoseconds::max() saturate the sum; a NaN quantile is 0", "[metrics]") {
    oc::latency_histogram h;
    h.record(std::chrono::nanoseconds::max());
    h.record(std::chrono::nanoseconds::max());
    h.record(std::chrono::nanoseconds::max());
    CHECK(h.count() == 3u);
    CHECK(h.sum() == std::chrono::nanoseconds::max());  // not wrapped into the negative
    CHECK(h.max() == std::chrono::nanoseconds::max());
    oc::latency_histogram small;
    small.record(1us);
    small.record(std::chrono::hours(1));
    CHECK(small.quantile(std::numeric_limits<double>::quiet_NaN()) == 1us);
    CHECK(small.quantile(-std::numeric_limits<double>::infinity()) == 1us);
    CHECK(small.quantile(std::numeric_limits<double>::infinity()) == small.max());
}

TEST_CASE("latency_histogram: bucket i holds samples <= 2^i microseconds", "[metrics]") {
    oc::latency_histogram h;
    REQUIRE(h.quantile(0.5) == 0ns);
    h.record(0ns);
    h.record(1us);
    h.record(-5ms);  // clamped to zero
    REQUIRE(h.bucket(0) == 3u);
    h.record(1001ns);  // > 1us
    h.record(2us);
    REQUIRE(h.bucket(1) == 2u);
    h.record(1024us);
    REQUIRE(h.bucket(10) == 1u);
    h.record(1025us);
    REQUIRE(h.bucket(11) == 1u);
    h.record(std::chrono::hours(24 * 365));
    REQUIRE(h.bucket(oc::latency_histogram::bucket_count - 1) == 1u);
    REQUIRE(h.count() == 8u);
    REQUIRE(oc::latency_histogram::upper_bound(0) == 1us);
    REQUIRE(oc::latency_histogram::upper_bound(10) == 1024us);
    REQUIRE(oc::latency_histogram::upper_bound(oc::latency_histogram::bucket_count - 1) ==
            std::chrono::nanoseconds::max());
}

// ---------------------------------------------------------------------------
// options, policy names, errors
// ---------------------------------------------------------------------------

TEST_CASE("invalid queue_options throw invalid_argument naming the field and value", "[core][options]") {
    auto expect = [](oc::queue_options o, const std::string& field, const std::string& value) {
        try {
            core_t<oc::policy::reject_new> c{o};
            FAIL("no exception for field " << field);
        } catch (const oc::invalid_argument& e) {
            const std::string what = e.what();
            INFO(what);
            REQUIRE(what.find(field) != std::string::npos);
            REQUIRE(what.find(value) != std::string::npos);
            REQUIRE(e.field() == field);
            REQUIRE(e.value() == value);
            REQUIRE(e.code() == oc::errc::invalid_argument);
        }
    };
    oc::queue_options o;
    SECTION("capacity above max_queue_capacity") {
        o.capacity = oc::max_queue_capacity + 1;
        expect(o, "capacity", std::to_string(oc::max_queue_capacity + 1));
    }
    SECTION("negative min_retry_after") {
        o.min_retry_after = -1ms;
        expect(o, "min_retry_after", "-1ms");
    }
    SECTION("max_retry_after below min_retry_after") {
        o.min_retry_after = 10ms;
        o.max_retry_after = 5ms;
        o.default_retry_after = 10ms;
        expect(o, "max_retry_after", "5ms");
    }
    SECTION("default_retry_after above max_retry_after") {
        o.max_retry_after = 500ms;
        expect(o, "default_retry_after", "1000ms");
    }
    SECTION("default_retry_after below min_retry_after") {
        o.min_retry_after = 2s;
        expect(o, "default_retry_after", "1000ms");
    }
    SECTION("the typed queue validates too") {
        o.capacity = oc::max_queue_capacity + 1;
        REQUIRE_THROWS_AS((oc::admission_queue<int>{o}), oc::invalid_argument);
        REQUIRE_THROWS_AS(oc::make_admission_queue<int>("priority", o), oc::invalid_argument);
    }
}

TEST_CASE("the core reports the capacity and the wait-time switch it was built with", "[core][options]") {
    oc::queue_options o;
    o.capacity = 7;
    o.wait_time_metrics = false;
    core_t<oc::policy::drop_lru> off{o};
    REQUIRE(off.capacity() == 7u);
    REQUIRE_FALSE(off.stamps());
    o.wait_time_metrics = true;
    core_t<oc::policy::priority> on{o};
    REQUIRE(on.stamps());
    REQUIRE(on.options().capacity == 7u);
}

TEST_CASE("boundary queue_options are accepted", "[core][options]") {
    oc::queue_options o;
    o.capacity = oc::max_queue_capacity;
    o.min_retry_after = 0ms;
    o.max_retry_after = 0ms;
    o.default_retry_after = 0ms;
    core_t<oc::policy::reject_new> c{o};
    REQUIRE(c.capacity() == oc::max_queue_capacity);
    REQUIRE(push(c, "x").result.accepted());
}

TEST_CASE("queue policy names round-trip and parse case- and separator-insensitively", "[policy]") {
    using oc::queue_policy;
    for (auto p : {queue_policy::reject_new, queue_policy::drop_lru, queue_policy::fail_fast, queue_policy::priority}) {
        REQUIRE(oc::parse_queue_policy(oc::to_string(p)) == p);
        REQUIRE(oc::try_parse_queue_policy(oc::to_string(p)) == p);
    }
    REQUIRE(oc::to_string(queue_policy::reject_new) == "reject-new");
    REQUIRE(oc::to_string(queue_policy::drop_lru) == "drop-lru");
    REQUIRE(oc::to_string(queue_policy::fail_fast) == "fail-fast");
    REQUIRE(oc::to_string(queue_policy::priority) == "priority");
    REQUIRE(oc::parse_queue_policy("DROP_LRU") == queue_policy::drop_lru);
    REQUIRE(oc::parse_queue_policy("Fail_Fast") == queue_policy::fail_fast);
    REQUIRE(oc::parse_queue_policy("reject_new") == queue_policy::reject_new);
    REQUIRE(oc::parse_queue_policy("PRIORITY") == queue_policy::priority);
    // the static policy names match the run-time names
    REQUIRE(oc::policy::reject_new::name == oc::to_string(queue_policy::reject_new));
    REQUIRE(oc::policy::drop_lru::name == oc::to_string(queue_policy::drop_lru));
    REQUIRE(oc::policy::fail_fast::name == oc::to_string(queue_policy::fail_fast));
    REQUIRE(oc::policy::priority::name == oc::to_string(queue_policy::priority));

    for (const char* bad : {"lifo", "", "drop lru", "drop-lru ", "rejectnew"}) {
        INFO("text: '" << bad << "'");
        REQUIRE_FALSE(oc::try_parse_queue_policy(bad).has_value());
        REQUIRE_THROWS_AS(oc::parse_queue_policy(bad), oc::invalid_argument);
    }
    try {
        oc::parse_queue_policy("lifo");
        FAIL("no exception");
    } catch (const oc::invalid_argument& e) {
        const std::string what = e.what();
        REQUIRE(e.field() == "policy");
        REQUIRE(what.find("policy") != std::string::npos);
        REQUIRE(what.find("lifo") != std::string::npos);
        REQUIRE(e.code() == oc::errc::invalid_argument);
    }
}

TEST_CASE("rejection reasons have stable names", "[policy]") {
    REQUIRE(oc::to_string(rejection_reason::queue_full) == "queue_full");
    REQUIRE(oc::to_string(rejection_reason::invalid_request) == "invalid_request");
    REQUIRE(oc::to_string(rejection_reason::policy_violation) == "policy_violation");
    REQUIRE(oc::to_string(rejection_reason::closed) == "closed");
}

TEST_CASE("error types carry orchcore codes and share the operation_aborted and error roots", "[errors]") {
    SECTION("queue_closed") {
        try {
            throw oc::queue_closed();
        } catch (const oc::operation_aborted& e) {
            REQUIRE(e.code() == oc::errc::queue_closed);
            REQUIRE(e.code().category().name() == std::string("orchcore"));
            REQUIRE(e.code().category() == oc::error_category());
            REQUIRE(e.code().message() == "queue closed");
            REQUIRE(std::string(e.what()) == "orchcore: queue is closed");
        }
        REQUIRE_THROWS_AS(throw oc::queue_closed(), oc::error);
        REQUIRE_THROWS_AS(throw oc::queue_closed(), std::system_error);
    }
    SECTION("shutdown_error") {
        try {
            throw oc::shutdown_error("pool stopping");
        } catch (const oc::operation_aborted& e) {
            REQUIRE(e.code() == oc::errc::shutdown);
            REQUIRE(std::string(e.what()) == "pool stopping");  // exactly as given
        }
        REQUIRE_THROWS_AS(throw oc::shutdown_error(), oc::error);
    }
    SECTION("cancelled_error") {
        try {
            throw oc::cancelled_error();
        } catch (const oc::operation_aborted& e) {
            REQUIRE(e.code() == oc::errc::cancelled);
        }
        REQUIRE_THROWS_AS(throw oc::cancelled_error(), oc::error);
    }
    SECTION("invalid_argument is an error but not operation_aborted") {
        bool caught_as_aborted = false;
        try {
            try {
                throw oc::invalid_argument("capacity", "-1", "must be positive");
            } catch (const oc::operation_aborted&) {
                caught_as_aborted = true;
            }
        } catch (const oc::error& e) {
            REQUIRE(std::string(e.what()) == "orchcore: invalid capacity = -1: must be positive");
            REQUIRE(e.code() == oc::errc::invalid_argument);
        }
        REQUIRE_FALSE(caught_as_aborted);
    }
    SECTION("codes compare with std::error_code") {
        const std::error_code ec = oc::errc::duplicate_id;
        REQUIRE(ec == oc::make_error_code(oc::errc::duplicate_id));
        REQUIRE(ec != oc::errc::not_found);
        REQUIRE(ec.category().name() == std::string("orchcore"));
        REQUIRE_FALSE(oc::error_category().message(999).empty());
    }
}

// ---------------------------------------------------------------------------
// string ids
// ---------------------------------------------------------------------------

TEST_CASE("string ids: generated as job-<n>, skipping queued caller ids; cancel and duplicates by string",
          "[core][ids]") {
    oc::admission_core<int, oc::policy::priority, std::string> c{opts(8)};
    using req = oc::admission_request<std::string>;
    REQUIRE(c.admit(1, req{std::string("job-1"), 3}, t0).result.accepted());
    const auto g = c.admit(2, req{}, t0).result;
    REQUIRE(g.accepted());
    REQUIRE(g.id.has_value());
    REQUIRE(*g.id != "job-1");
    REQUIRE(g.id->rfind("job-", 0) == 0u);
    REQUIRE(c.admit(3, req{std::string("alpha"), 9}, t0).result.position == 0u);

    const auto dup = c.admit(4, req{std::string("alpha"), 1}, t0).result;
    REQUIRE(dup.reason == rejection_reason::invalid_request);
    REQUIRE(dup.id == std::optional<std::string>("alpha"));

    REQUIRE(c.ids_in_dequeue_order() == std::vector<std::string>{"alpha", *g.id, "job-1"});
    REQUIRE(c.position_of("job-1") == 2u);
    const auto e = c.cancel("alpha");
    REQUIRE(e.has_value());
    REQUIRE(e->value == 3);
    REQUIRE_FALSE(c.cancel("alpha").has_value());
    REQUIRE(c.position_of("job-1") == 1u);
    REQUIRE(c.pop(t0)->id == *g.id);
    REQUIRE(c.pop(t0)->id == "job-1");
}

// ---------------------------------------------------------------------------
// detail::id_index
// ---------------------------------------------------------------------------

namespace {

// Hashes that force collisions: every key shares one hash, or groups of
// eight keys share one, so probe runs are long, interleave and wrap around
// the end of the table.
struct constant_hash {
    std::size_t operator()(std::uint64_t) const noexcept { return 42; }
};
struct grouped_hash {
    std::size_t operator()(std::uint64_t k) const noexcept { return static_cast<std::size_t>(k / 8); }
};

struct index_op {
    int kind;  // 0 insert, 1 erase, 2 find
    std::uint64_t key;
};

template <class Key, class Hash, class MakeKey>
void check_id_index_against_map(const std::vector<index_op>& ops, MakeKey make_key) {
    oc::detail::id_index<Key, Hash> index;
    std::unordered_map<Key, std::uint32_t> model;
    std::uint32_t next_value = 0;
    std::set<std::uint64_t> universe;
    for (const auto& op : ops) {
        universe.insert(op.key);
        const Key key = make_key(op.key);
        switch (op.kind) {
            case 0: {
                const bool fresh = model.emplace(key, next_value).second;
                RC_ASSERT(index.insert(key, next_value) == fresh);
                ++next_value;
                break;
            }
            case 1:
                RC_ASSERT(index.erase(key) == (model.erase(key) == 1));
                break;
            default: {
                const auto it = model.find(key);
                RC_ASSERT(index.find(key) == (it == model.end() ? index.npos : it->second));
            }
        }
        RC_ASSERT(index.size() == model.size());
        // After every step every key agrees (this is what catches a broken
        // backward shift: an element left behind a hole becomes unfindable).
        for (std::uint64_t k : universe) {
            const auto it = model.find(make_key(k));
            RC_ASSERT(index.find(make_key(k)) == (it == model.end() ? index.npos : it->second));
        }
    }
}

rc::Gen<std::vector<index_op>> gen_index_ops(std::uint64_t key_range) {
    auto op = rc::gen::build<index_op>(rc::gen::set(&index_op::kind, rc::gen::weightedElement<int>({{5, 0}, {4, 1}, {1, 2}})),
                                       rc::gen::set(&index_op::key, rc::gen::inRange<std::uint64_t>(0, key_range)));
    return rc::gen::scale(3.0, rc::gen::container<std::vector<index_op>>(op));
}

}  // namespace

TEST_CASE("id_index agrees with std::unordered_map under random insert/erase churn", "[id_index][prop]") {
    const auto as_is = [](std::uint64_t k) { return k; };
    rc::prop("identity-like hash", [&] { check_id_index_against_map<std::uint64_t, std::hash<std::uint64_t>>(*gen_index_ops(200), as_is); });
    rc::prop("every key collides", [&] { check_id_index_against_map<std::uint64_t, constant_hash>(*gen_index_ops(40), as_is); });
    rc::prop("groups of eight keys collide", [&] { check_id_index_against_map<std::uint64_t, grouped_hash>(*gen_index_ops(160), as_is); });
    rc::prop("string keys", [&] {
        check_id_index_against_map<std::string, std::hash<std::string>>(
            *gen_index_ops(100), [](std::uint64_t k) { return "job-" + std::to_string(k); });
    });
}

TEST_CASE("id_index: erasing from the middle of a collision run keeps the rest findable", "[id_index]") {
    oc::detail::id_index<std::uint64_t, constant_hash> index;
    for (std::uint32_t k = 0; k < 7; ++k) REQUIRE(index.insert(k, k * 10));
    REQUIRE_FALSE(index.insert(3, 99));  // present: not replaced
    REQUIRE(index.find(3) == 30u);
    for (std::uint64_t victim : {3u, 0u, 6u, 4u}) {
        REQUIRE(index.erase(victim));
        REQUIRE_FALSE(index.erase(victim));
        REQUIRE(index.find(victim) == index.npos);
    }
    for (std::uint64_t k : {1u, 2u, 5u}) REQUIRE(index.find(k) == k * 10);
    REQUIRE(index.size() == 3u);
    // grows past the initial table (16 slots) with everything in one run
    for (std::uint32_t k = 100; k < 140; ++k) REQUIRE(index.insert(k, k));
    for (std::uint32_t k = 100; k < 140; ++k) REQUIRE(index.find(k) == k);
    for (std::uint32_t k = 100; k < 140; k += 2) REQUIRE(index.erase(k));
    for (std::uint32_t k = 101; k < 140; k += 2) REQUIRE(index.find(k) == k);
    for (std::uint64_t k : {1u, 2u, 5u}) REQUIRE(index.find(k) == k * 10);
    REQUIRE(index.size() == 23u);
}
