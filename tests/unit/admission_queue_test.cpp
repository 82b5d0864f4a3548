// Tests of the thread-safe admission_queue and of any_admission_queue /
// make_admission_queue. Nothing here asserts on timing except "a timeout
// returned empty"; where a test needs a consumer to be blocked it polls
// waiting_consumers().
#include <orchcore/orchcore.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace oc = orchcore;
using namespace std::chrono_literals;
using oc::rejection_reason;

namespace {

oc::queue_options opts(std::size_t capacity) {
    oc::queue_options o;
    o.capacity = capacity;
    return o;
}

oc::admission_request<> with_id(oc::job_id id, int prio = oc::priority::normal) { return {id, prio}; }
oc::admission_request<> prio(int p) { return {std::nullopt, p}; }

// Polls until `n` consumers are blocked in the queue. The bound only guards
// against a hung test; it is not a timing assertion.
template <class Q>
void wait_for_waiters(const Q& q, std::size_t n) {
    const auto give_up = std::chrono::steady_clock::now() + 10s;
    while (q.waiting_consumers() < n) {
        REQUIRE(std::chrono::steady_clock::now() < give_up);
        std::this_thread::yield();
    }
    REQUIRE(q.waiting_consumers() == n);
}

// Polls `pred` for up to 10 s (a guard against hanging, not a timing test).
template <class Pred>
bool wait_until_true(Pred pred) {
    const auto give_up = std::chrono::steady_clock::now() + 10s;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > give_up) return false;
        std::this_thread::sleep_for(100us);
    }
    return true;
}

// Joins the threads once each has counted itself in `finished` (its last
// action). If they have not all finished within 10 s the queue is broken
// (e.g. close() did not wake a consumer): the threads are detached instead,
// so the test fails instead of hanging. Such threads must own, through a
// shared_ptr, everything they touch.
bool join_or_abandon(std::vector<std::thread>& threads, const std::atomic<int>& finished) {
    const auto n = static_cast<int>(threads.size());
    const bool all = wait_until_true([&] { return finished.load() == n; });
    for (auto& t : threads) {
        if (all) t.join(); else t.detach();
    }
    return all;
}

// A thread running `f`. wait() gives it up to 10 s to finish and reports
// whether it finished without throwing, so a consumer that never receives
// its task fails the test instead of hanging it (the close_on_exit guard
// then releases it). An exception in `f` is kept, never terminates.
class worker {
public:
    template <class F>
    explicit worker(F f)
        : thread_([this, f]() mutable {
              try {
                  f();
              } catch (...) {
                  error_ = std::current_exception();
              }
              done_ = true;
          }) {}
    bool wait() {
        if (!wait_until_true([&] { return done_.load(); })) return false;
        thread_.join();
        return error_ == nullptr;
    }
    bool done() const { return done_.load(); }

private:
    std::exception_ptr error_;
    std::atomic<bool> done_{false};
    std::jthread thread_;
};

// Closes the queue on scope exit so that a failed REQUIRE never leaves a
// consumer blocked forever in a thread that is about to be joined. Declare it
// after the threads: it is destroyed (and closes) before they are joined.
template <class Q>
struct close_on_exit {
    Q& q;
    ~close_on_exit() { q.close(); }
};

template <class Q>
oc::queue_metrics metrics_of(const Q& q) { return q.metrics(); }

void require_same_counters(const oc::queue_metrics& a, const oc::queue_metrics& b) {
    REQUIRE(a.depth == b.depth);
    REQUIRE(a.accepted == b.accepted);
    REQUIRE(a.dequeued == b.dequeued);
    REQUIRE(a.handed_off == b.handed_off);
    REQUIRE(a.evicted == b.evicted);
    REQUIRE(a.cancelled == b.cancelled);
    REQUIRE(a.rejected_by_reason == b.rejected_by_reason);
    REQUIRE(a.wait_time.count() == b.wait_time.count());
}

void require_conservation(const oc::queue_metrics& m) {
    REQUIRE(m.accepted == m.depth + m.dequeued + m.evicted + m.cancelled);
}

}  // namespace

// ---------------------------------------------------------------------------
// Blocking consumers
// ---------------------------------------------------------------------------

TEST_CASE("pop blocks until a task is pushed, then returns it", "[queue][blocking]") {
    oc::reject_new_queue<std::string> q{opts(4)};
    std::optional<oc::queue_entry<std::string>> got;
    worker consumer([&] { got = q.pop(); });
    close_on_exit<decltype(q)> guard{q};
    wait_for_waiters(q, 1);
    REQUIRE_FALSE(consumer.done());  // still blocked: nothing was pushed

    const auto r = q.try_push(std::string("payload"), with_id(17, 3));
    REQUIRE(r.accepted());
    REQUIRE(r.position == 0u);
    REQUIRE(consumer.wait());
    REQUIRE(got.has_value());
    REQUIRE(got->id == 17u);
    REQUIRE(got->value == "payload");
    REQUIRE(got->priority == 3);
    REQUIRE(q.waiting_consumers() == 0u);
    REQUIRE(q.size() == 0u);
    const auto m = q.metrics();
    REQUIRE(m.accepted == 1u);
    REQUIRE(m.dequeued == 1u);
    require_conservation(m);
}

TEST_CASE("the longest-waiting consumer gets the next task", "[queue][blocking]") {
    oc::reject_new_queue<int> q{opts(4)};
    std::optional<oc::queue_entry<int>> first, second;
    worker a([&] { first = q.pop(); });
    wait_for_waiters(q, 1);
    worker b([&] { second = q.pop(); });
    close_on_exit<decltype(q)> guard{q};
    wait_for_waiters(q, 2);

    REQUIRE(q.try_push(1).accepted());
    REQUIRE(a.wait());
    REQUIRE(first.has_value());
    REQUIRE(first->value == 1);
    REQUIRE_FALSE(b.done());
    REQUIRE(q.waiting_consumers() == 1u);
    REQUIRE(q.try_push(2).accepted());
    REQUIRE(b.wait());
    REQUIRE(second.has_value());
    REQUIRE(second->value == 2);
}

TEST_CASE("pop_for times out with an empty optional and leaves metrics unchanged", "[queue][timeout]") {
    oc::priority_queue<int> q{opts(4)};
    const auto before = q.metrics();
    REQUIRE_FALSE(q.pop_for(20ms).has_value());
    REQUIRE_FALSE(q.pop_for(0ms).has_value());
    REQUIRE_FALSE(q.pop_for(-5ms).has_value());
    REQUIRE(q.waiting_consumers() == 0u);
    require_same_counters(q.metrics(), before);

    // The consumer that gave up is not handed later tasks: they are queued.
    REQUIRE(q.try_push(5).accepted());
    REQUIRE(q.size() == 1u);
    const auto e = q.pop_for(1h);  // available at once: no wait
    REQUIRE(e.has_value());
    REQUIRE(e->value == 5);
}

TEST_CASE("pop_until takes system_clock and steady_clock deadlines", "[queue][timeout]") {
    oc::reject_new_queue<int> q{opts(4)};
    SECTION("a past system_clock deadline returns empty at once") {
        REQUIRE_FALSE(q.pop_until(std::chrono::system_clock::now() - 1h).has_value());
    }
    SECTION("a near system_clock deadline times out empty") {
        REQUIRE_FALSE(q.pop_until(std::chrono::system_clock::now() + 20ms).has_value());
        REQUIRE(q.waiting_consumers() == 0u);
    }
    SECTION("a steady_clock deadline times out empty") {
        REQUIRE_FALSE(q.pop_until(std::chrono::steady_clock::now() + 10ms).has_value());
    }
    SECTION("a queued task is returned even with a past deadline") {
        REQUIRE(q.try_push(8).accepted());
        const auto e = q.pop_until(std::chrono::system_clock::now() - 1s);
        REQUIRE(e.has_value());
        REQUIRE(e->value == 8);
    }
    SECTION("a task pushed while waiting on a far system_clock deadline is returned") {
        std::optional<oc::queue_entry<int>> got;
        worker consumer([&] { got = q.pop_until(std::chrono::system_clock::now() + 1h); });
        close_on_exit<decltype(q)> guard{q};
        wait_for_waiters(q, 1);
        REQUIRE(q.try_push(42).accepted());
        REQUIRE(consumer.wait());
        REQUIRE(got.has_value());
        REQUIRE(got->value == 42);
    }
}

TEMPLATE_TEST_CASE("close wakes every blocked consumer and they throw queue_closed", "[queue][close]",
                   oc::policy::reject_new, oc::policy::drop_lru, oc::policy::fail_fast, oc::policy::priority) {
    // Shared with the consumer threads; if close() fails to wake one, the
    // thread is abandoned with this state instead of hanging the test.
    struct state {
        oc::admission_queue<int, TestType> q{opts(4)};
        std::atomic<int> closed_seen{0}, other_outcome{0}, finished{0};
    };
    using blocking_call = void (*)(oc::admission_queue<int, TestType>&);
    const std::vector<blocking_call> calls = {
        [](auto& q) { (void)q.pop(); },
        [](auto& q) { (void)q.pop_for(1h); },
        [](auto& q) { (void)q.pop_until(std::chrono::system_clock::now() + 1h); },
        [](auto& q) { (void)q.pop_batch(4); },
        [](auto& q) { (void)q.pop_batch_for(3, 1h); },
        [](auto& q) { (void)q.pop_until(std::chrono::steady_clock::time_point::max()); },
    };
    auto st = std::make_shared<state>();
    std::vector<std::thread> threads;
    for (auto call : calls) {
        threads.emplace_back([st, call] {
            try {
                call(st->q);
                ++st->other_outcome;
            } catch (const oc::queue_closed& e) {
                if (e.code() == oc::errc::queue_closed) ++st->closed_seen;
            } catch (...) {
                ++st->other_outcome;
            }
            ++st->finished;
        });
    }
    const bool all_blocked = wait_until_true([&] { return st->q.waiting_consumers() == calls.size(); });
    st->q.close();
    REQUIRE(join_or_abandon(threads, st->finished));
    REQUIRE(all_blocked);
    REQUIRE(st->closed_seen.load() == static_cast<int>(calls.size()));
    REQUIRE(st->other_outcome.load() == 0);
    REQUIRE(st->q.waiting_consumers() == 0u);
    REQUIRE(st->q.is_closed());
    // later blocking calls fail at once too
    REQUIRE_THROWS_AS(st->q.pop(), oc::queue_closed);
    REQUIRE_THROWS_AS(st->q.pop_for(1h), oc::operation_aborted);
}

TEST_CASE("close with tasks queued: consumers drain them, then blocking pops throw queue_closed",
          "[queue][close]") {
    oc::reject_new_queue<int> q{opts(8)};
    for (int i = 1; i <= 4; ++i) REQUIRE(q.try_push(i).accepted());
    q.close();
    REQUIRE(q.is_closed());

    const auto r = q.try_push(99);
    REQUIRE(r.rejected());
    REQUIRE(r.reason == rejection_reason::closed);
    REQUIRE(r.retry_after == 0ms);

    REQUIRE(q.pop().value == 1);
    REQUIRE(q.pop_for(1h)->value == 2);
    const auto batch = q.pop_batch(10);
    REQUIRE(batch.size() == 2u);
    REQUIRE(batch[0].value == 3);
    REQUIRE(batch[1].value == 4);

    REQUIRE_THROWS_AS(q.pop(), oc::queue_closed);
    REQUIRE_THROWS_AS(q.pop_for(1h), oc::queue_closed);  // not an empty optional
    REQUIRE_THROWS_AS(q.pop_until(std::chrono::system_clock::now() + 1h), oc::queue_closed);
    REQUIRE_THROWS_AS(q.pop_batch(3), oc::queue_closed);
    REQUIRE_THROWS_AS(q.pop_batch_for(3, 1h), oc::queue_closed);
    REQUIRE_FALSE(q.try_pop().has_value());
    REQUIRE(q.try_pop_batch(5).empty());

    const auto m = q.metrics();
    REQUIRE(m.accepted == 4u);
    REQUIRE(m.dequeued == 4u);
    REQUIRE(m.rejected(rejection_reason::closed) == 1u);
    require_conservation(m);
}

TEST_CASE("close while a consumer drains: queued tasks are delivered before queue_closed", "[queue][close]") {
    oc::drop_lru_queue<int> q{opts(16)};
    for (int i = 0; i < 10; ++i) REQUIRE(q.try_push(i).accepted());
    std::vector<int> got;
    bool closed = false;
    worker consumer([&] {
        try {
            for (;;) got.push_back(q.pop().value);
        } catch (const oc::queue_closed&) {
            closed = true;
        }
    });
    q.close();
    REQUIRE(consumer.wait());
    REQUIRE(closed);
    REQUIRE(got == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
}

TEST_CASE("try_pop and try_pop_batch on an empty queue return nothing without blocking", "[queue]") {
    oc::priority_queue<int> q{opts(4)};
    REQUIRE_FALSE(q.try_pop().has_value());
    REQUIRE(q.try_pop_batch(8).empty());
    REQUIRE(q.try_pop_batch(0).empty());
    REQUIRE(q.try_push(1, prio(1)).accepted());
    REQUIRE(q.try_push(2, prio(9)).accepted());
    REQUIRE(q.try_pop_batch(0).empty());
    REQUIRE(q.try_pop()->value == 2);
    REQUIRE(q.try_pop()->value == 1);
    REQUIRE_FALSE(q.try_pop().has_value());
    REQUIRE(q.metrics().dequeued == 2u);
}

TEST_CASE("pop_batch returns up to max tasks in dequeue order and waits only for the first", "[queue][batch]") {
    oc::reject_new_queue<int> q{opts(8)};
    SECTION("queued tasks") {
        for (int i = 1; i <= 5; ++i) REQUIRE(q.try_push(i).accepted());
        auto b = q.pop_batch(3);
        REQUIRE(b.size() == 3u);
        REQUIRE(b[0].value == 1);
        REQUIRE(b[1].value == 2);
        REQUIRE(b[2].value == 3);
        b = q.pop_batch(10);
        REQUIRE(b.size() == 2u);
        REQUIRE(b[0].value == 4);
        REQUIRE(b[1].value == 5);
        const auto tb = q.try_pop_batch(4);
        REQUIRE(tb.empty());
    }
    SECTION("an empty queue: the batch waits for the first task and returns it alone") {
        std::vector<oc::queue_entry<int>> got;
        worker consumer([&] { got = q.pop_batch(4); });
        close_on_exit<decltype(q)> guard{q};
        wait_for_waiters(q, 1);
        REQUIRE(q.try_push(7).accepted());
        REQUIRE(consumer.wait());
        REQUIRE(got.size() == 1u);
        REQUIRE(got[0].value == 7);
    }
    SECTION("pop_batch_for times out with an empty vector") {
        const auto before = q.metrics();
        REQUIRE(q.pop_batch_for(2, 10ms).empty());
        REQUIRE(q.pop_batch_until(2, std::chrono::system_clock::now() + 10ms).empty());
        require_same_counters(q.metrics(), before);
    }
    SECTION("max 0 is invalid") {
        REQUIRE_THROWS_AS(q.pop_batch(0), oc::invalid_argument);
        REQUIRE_THROWS_AS(q.pop_batch_for(0, 1ms), oc::invalid_argument);
        REQUIRE_THROWS_AS(q.pop_batch_until(0, std::chrono::steady_clock::now()), oc::invalid_argument);
        try {
            (void)q.pop_batch(0);
        } catch (const oc::invalid_argument& e) {
            REQUIRE(e.field() == "max");
            REQUIRE(std::string(e.what()).find("max") != std::string::npos);
        }
        REQUIRE(q.try_push(1).accepted());  // even with tasks queued
        REQUIRE_THROWS_AS(q.pop_batch(0), oc::invalid_argument);
        REQUIRE(q.size() == 1u);
    }
}

// ---------------------------------------------------------------------------
// fail-fast
// ---------------------------------------------------------------------------

TEST_CASE("fail-fast queue: try_push is rejected with policy_violation while no consumer is blocked", "[queue][fail-fast]") {
    oc::fail_fast_queue<std::string> q{opts(8)};
    std::string value = "job";
    const auto r = q.try_push(std::move(value), with_id(5));
    REQUIRE(r.rejected());
    REQUIRE(r.reason == rejection_reason::policy_violation);
    REQUIRE(r.retry_after > 0ms);
    REQUIRE(value == "job");  // not moved from
    REQUIRE(q.size() == 0u);
    REQUIRE_FALSE(q.try_pop().has_value());
    // a consumer that timed out is no longer waiting
    REQUIRE_FALSE(q.pop_for(5ms).has_value());
    REQUIRE(q.try_push(std::string("again")).reason == rejection_reason::policy_violation);
    REQUIRE(q.metrics().rejected(rejection_reason::policy_violation) == 2u);
    REQUIRE(q.metrics().accepted == 0u);
}

TEST_CASE("fail-fast: a task is handed intact to the waiting consumer, also with capacity 0", "[queue][fail-fast]") {
    const std::size_t capacity = GENERATE(0u, 16u);
    const int how = GENERATE(0, 1, 2);  // pop, pop_for, pop_batch
    CAPTURE(capacity, how);
    oc::fail_fast_queue<std::string> q{opts(capacity)};
    std::optional<oc::queue_entry<std::string>> got;
    worker consumer([&] {
        if (how == 0) got = q.pop();
        if (how == 1) got = q.pop_for(1h);
        if (how == 2) {
            auto b = q.pop_batch(5);
            if (b.size() == 1) got = std::move(b[0]);
        }
    });
    close_on_exit<decltype(q)> guard{q};
    wait_for_waiters(q, 1);

    const std::string payload(1000, 'p');  // not a small string: a real move
    const auto r = q.try_push(std::string(payload), with_id(77, oc::priority::high));
    REQUIRE(r.accepted());
    REQUIRE(r.id == std::optional<oc::job_id>(77));
    REQUIRE(r.position == 0u);
    REQUIRE(consumer.wait());
    REQUIRE(got.has_value());
    REQUIRE(got->id == 77u);
    REQUIRE(got->value == payload);
    REQUIRE(got->priority == oc::priority::high);
    REQUIRE(q.size() == 0u);
    REQUIRE(q.waiting_consumers() == 0u);

    const auto m = q.metrics();
    REQUIRE(m.accepted == 1u);
    REQUIRE(m.handed_off == 1u);
    REQUIRE(m.dequeued == 1u);
    REQUIRE(m.depth == 0u);
    require_conservation(m);
    // with the consumer gone, the next push is rejected again
    REQUIRE(q.try_push(std::string("x")).reason == rejection_reason::policy_violation);
}

TEST_CASE("fail-fast: one task per waiting consumer", "[queue][fail-fast]") {
    oc::fail_fast_queue<int> q{opts(0)};
    std::optional<oc::queue_entry<int>> a, b;
    worker ta([&] { a = q.pop(); });
    worker tb([&] { b = q.pop(); });
    close_on_exit<decltype(q)> guard{q};
    wait_for_waiters(q, 2);
    REQUIRE(q.try_push(1).accepted());
    REQUIRE(q.try_push(2).accepted());
    REQUIRE(q.try_push(3).reason == rejection_reason::policy_violation);
    REQUIRE(ta.wait());
    REQUIRE(tb.wait());
    REQUIRE(a.has_value());
    REQUIRE(b.has_value());
    REQUIRE(std::set<int>{a->value, b->value} == std::set<int>{1, 2});
    REQUIRE(q.metrics().handed_off == 2u);
}

// ---------------------------------------------------------------------------
// eviction handler
// ---------------------------------------------------------------------------

TEST_CASE("the eviction handler receives the evicted entry, which is also in the result", "[queue][evict]") {
    std::vector<oc::queue_entry<std::string>> evicted;
    SECTION("drop-lru") {
        oc::drop_lru_queue<std::string> q{opts(2), [&](const oc::queue_entry<std::string>& e) { evicted.push_back(e); }};
        REQUIRE(q.try_push(std::string("a"), with_id(1, 3)).accepted());
        REQUIRE(q.try_push(std::string("b"), with_id(2, 3)).accepted());
        const auto r = q.try_push(std::string("c"), with_id(3, 3));
        REQUIRE(r.accepted());
        REQUIRE(r.evicted.has_value());
        REQUIRE(r.evicted->id == 1u);
        REQUIRE(evicted.size() == 1u);
        REQUIRE(evicted[0].id == 1u);
        REQUIRE(evicted[0].value == "a");
        REQUIRE(evicted[0].priority == 3);
        REQUIRE(q.ids_in_dequeue_order() == std::vector<oc::job_id>{2, 3});
    }
    SECTION("priority") {
        oc::priority_queue<std::string> q{opts(2), [&](const oc::queue_entry<std::string>& e) { evicted.push_back(e); }};
        REQUIRE(q.try_push(std::string("a"), with_id(1, 1)).accepted());
        REQUIRE(q.try_push(std::string("b"), with_id(2, 1)).accepted());
        REQUIRE(q.try_push(std::string("no"), with_id(3, 1)).reason == rejection_reason::queue_full);
        REQUIRE(evicted.empty());  // a rejection evicts nothing
        REQUIRE(q.try_push(std::string("c"), with_id(4, 2)).accepted());
        REQUIRE(evicted.size() == 1u);
        REQUIRE(evicted[0].id == 2u);
        REQUIRE(evicted[0].value == "b");
    }
    SECTION("no handler calls without evictions") {
        oc::drop_lru_queue<std::string> q{opts(4), [&](const oc::queue_entry<std::string>& e) { evicted.push_back(e); }};
        for (int i = 0; i < 4; ++i) REQUIRE(q.try_push(std::string("x")).accepted());
        (void)q.cancel(q.ids_in_dequeue_order()[0]);
        (void)q.try_pop();
        REQUIRE(evicted.empty());
    }
}

TEST_CASE("without an eviction handler the evicted entry is still returned and counted", "[queue][evict]") {
    oc::drop_lru_queue<std::string> q{opts(2)};
    REQUIRE(q.try_push(std::string("a"), with_id(1, 3)).accepted());
    REQUIRE(q.try_push(std::string("b"), with_id(2, 3)).accepted());
    const auto r = q.try_push(std::string("c"), with_id(3, 3));
    REQUIRE(r.accepted());
    REQUIRE(r.evicted.has_value());
    REQUIRE(r.evicted->id == 1u);
    REQUIRE(r.evicted->value == "a");
    REQUIRE(q.metrics().evicted == 1u);
    REQUIRE(q.ids_in_dequeue_order() == std::vector<oc::job_id>{2, 3});
}

TEST_CASE("an exception from the eviction handler propagates out of try_push, but the admission stands",
          "[queue][evict]") {
    int calls = 0;
    oc::drop_lru_queue<int> q{opts(1), [&](const oc::queue_entry<int>& e) {
                                  ++calls;
                                  throw std::runtime_error("handler failed for " + std::to_string(e.id));
                              }};
    REQUIRE(q.try_push(1, with_id(10)).accepted());
    REQUIRE_THROWS_WITH(q.try_push(2, with_id(20)), "handler failed for 10");
    REQUIRE(calls == 1);
    REQUIRE(q.contains(20));
    REQUIRE_FALSE(q.contains(10));
    REQUIRE(q.ids_in_dequeue_order() == std::vector<oc::job_id>{20});
    const auto m = q.metrics();
    REQUIRE(m.accepted == 2u);
    REQUIRE(m.evicted == 1u);
    REQUIRE(m.depth == 1u);
    require_conservation(m);
    // the queue stays usable: the lock was not held by the handler
    REQUIRE(q.try_pop()->value == 2);
    REQUIRE(q.try_push(3).accepted());
}

// ---------------------------------------------------------------------------
// Introspection
// ---------------------------------------------------------------------------

TEST_CASE("size, size_approx, capacity, contains and position_of reflect the queue", "[queue]") {
    oc::priority_queue<std::string> q{opts(5)};
    REQUIRE(q.capacity() == 5u);
    REQUIRE(q.size() == 0u);
    REQUIRE(q.size_approx() == 0u);
    REQUIRE(q.try_push(std::string("a"), with_id(1, 1)).accepted());
    const std::string b = "b";
    REQUIRE(q.try_push(b, with_id(2, 8)).position == 0u);  // const& overload copies
    REQUIRE(b == "b");
    REQUIRE(q.size() == 2u);
    REQUIRE(q.size_approx() == 2u);
    REQUIRE(q.contains(1));
    REQUIRE_FALSE(q.contains(3));
    REQUIRE(q.position_of(1) == 1u);
    REQUIRE(q.position_of(2) == 0u);
    REQUIRE_FALSE(q.position_of(3).has_value());
    REQUIRE(q.cancel(2)->value == "b");
    REQUIRE_FALSE(q.cancel(2).has_value());
    REQUIRE(q.position_of(1) == 0u);
    REQUIRE(q.size_approx() == 1u);
    REQUIRE(q.metrics().policy == "priority");
}

// ---------------------------------------------------------------------------
// Many producers, many consumers
// ---------------------------------------------------------------------------

namespace {

struct item {
    int producer = 0;
    int seq = 0;
};

// P producers push `per_producer` items each, retrying on queue_full /
// policy_violation; C consumers pop (mixing pop, pop_for and pop_batch) until
// the queue is closed and drained.
template <class Policy>
void run_stress(int producers, int consumers, int per_producer, std::size_t capacity) {
    struct state {
        std::atomic<std::uint64_t> handler_calls{0};
        oc::admission_queue<item, Policy> q;
        std::vector<std::vector<item>> consumed;
        std::atomic<int> unexpected{0}, finished{0};
        state(std::size_t cap, int n_consumers)
            : q(opts(cap), [this](const oc::queue_entry<item>&) { ++handler_calls; }),
              consumed(static_cast<std::size_t>(n_consumers)) {}
    };
    auto st = std::make_shared<state>(capacity, consumers);
    auto& q = st->q;
    std::vector<std::vector<item>> evicted(static_cast<std::size_t>(producers));
    std::atomic<std::uint64_t> retries{0};
    std::atomic<int> unexpected{0};

    std::vector<std::thread> cs;
    for (int c = 0; c < consumers; ++c) {
        cs.emplace_back([st, c] {
            auto& mine = st->consumed[static_cast<std::size_t>(c)];
            try {
                for (unsigned n = 0;; ++n) {
                    switch (n % 3) {
                        case 0: mine.push_back(st->q.pop().value); break;
                        case 1:
                            if (auto e = st->q.pop_for(50ms)) mine.push_back(e->value);
                            break;
                        default:
                            for (auto& e : st->q.pop_batch(4)) mine.push_back(e.value);
                    }
                }
            } catch (const oc::queue_closed&) {
            } catch (...) {
                ++st->unexpected;
            }
            ++st->finished;
        });
    }
    {
        std::vector<std::jthread> ps;
        for (int p = 0; p < producers; ++p) {
            ps.emplace_back([&, p] {
                std::minstd_rand rng(static_cast<unsigned>(p) + 1);
                const auto give_up = std::chrono::steady_clock::now() + 30s;  // only if consumers died
                for (int i = 0; i < per_producer; ++i) {
                    for (;;) {
                        const int pr = static_cast<int>(rng() % 21);
                        auto r = q.try_push(item{p, i}, prio(pr));
                        if (r.accepted()) {
                            if (r.evicted) evicted[static_cast<std::size_t>(p)].push_back(r.evicted->value);
                            break;
                        }
                        if ((r.reason != rejection_reason::queue_full &&
                             r.reason != rejection_reason::policy_violation) ||
                            std::chrono::steady_clock::now() > give_up) {
                            ++unexpected;
                            return;
                        }
                        ++retries;
                        std::this_thread::yield();
                    }
                }
            });
        }
    }  // producers joined
    q.close();
    REQUIRE(join_or_abandon(cs, st->finished));
    REQUIRE(st->unexpected.load() == 0);
    const auto& consumed = st->consumed;
    const auto& handler_calls = st->handler_calls;

    REQUIRE(unexpected.load() == 0);
    // Every item is accounted for exactly once: consumed or evicted.
    std::vector<std::vector<int>> seen(static_cast<std::size_t>(producers),
                                       std::vector<int>(static_cast<std::size_t>(per_producer), 0));
    std::uint64_t n_consumed = 0, n_evicted = 0;
    for (const auto& v : consumed)
        for (const auto& it : v) {
            ++seen[static_cast<std::size_t>(it.producer)][static_cast<std::size_t>(it.seq)];
            ++n_consumed;
        }
    for (const auto& v : evicted)
        for (const auto& it : v) {
            ++seen[static_cast<std::size_t>(it.producer)][static_cast<std::size_t>(it.seq)];
            ++n_evicted;
        }
    for (const auto& per : seen) REQUIRE(std::all_of(per.begin(), per.end(), [](int n) { return n == 1; }));

    // FIFO policies: one consumer sees one producer's items in order.
    if constexpr (Policy::order == oc::policy::dequeue_order::fifo) {
        for (const auto& v : consumed) {
            std::vector<int> last(static_cast<std::size_t>(producers), -1);
            for (const auto& it : v) {
                REQUIRE(it.seq > last[static_cast<std::size_t>(it.producer)]);
                last[static_cast<std::size_t>(it.producer)] = it.seq;
            }
        }
    }

    const auto m = q.metrics();
    const auto total = static_cast<std::uint64_t>(producers) * static_cast<std::uint64_t>(per_producer);
    REQUIRE(m.accepted == total);
    REQUIRE(m.dequeued == n_consumed);
    REQUIRE(m.evicted == n_evicted);
    REQUIRE(handler_calls.load() == n_evicted);
    REQUIRE(m.depth == 0u);
    REQUIRE(m.cancelled == 0u);
    REQUIRE(m.rejected_total() == retries.load());
    REQUIRE(m.wait_time.count() == m.dequeued);
    require_conservation(m);
    if constexpr (Policy::handoff_only) REQUIRE(m.handed_off == total);
    REQUIRE(q.waiting_consumers() == 0u);
}

}  // namespace

TEST_CASE("reject-new, 4 producers x 4 consumers, 20k items: every item consumed exactly once", "[queue][stress]") {
    run_stress<oc::policy::reject_new>(4, 4, 5000, 8);
}

TEMPLATE_TEST_CASE("evicting policies under contention: every item consumed or evicted exactly once",
                   "[queue][stress]", oc::policy::drop_lru, oc::policy::priority) {
    run_stress<TestType>(4, 4, 2500, 4);
}

TEST_CASE("fail-fast under contention: every accepted item reaches exactly one consumer", "[queue][stress]") {
    run_stress<oc::policy::fail_fast>(2, 3, 1000, 0);
}

// ---------------------------------------------------------------------------
// any_admission_queue
// ---------------------------------------------------------------------------

namespace {

struct observed {
    bool accepted;
    rejection_reason reason;
    std::optional<oc::job_id> id;
    std::size_t position;
    std::optional<oc::job_id> evicted;
    bool operator==(const observed&) const = default;
};

template <class R>
observed observe(const R& r) {
    return {r.accepted(), r.accepted() ? rejection_reason::queue_full : r.reason, r.id,
            r.accepted() ? r.position : 0u, r.evicted ? std::optional<oc::job_id>(r.evicted->id) : std::nullopt};
}

// A small scenario run on any queue-like object; returns what it saw.
template <class Q>
std::vector<observed> scenario(Q& q, std::vector<oc::job_id>& order_after_pushes, std::vector<int>& popped) {
    std::vector<observed> out;
    out.push_back(observe(q.try_push(1, with_id(1, 1))));
    out.push_back(observe(q.try_push(2, with_id(2, 5))));
    out.push_back(observe(q.try_push(3, with_id(3, 9))));   // full (capacity 2)
    out.push_back(observe(q.try_push(4, with_id(2, 9))));   // duplicate id if 2 is queued
    out.push_back(observe(q.try_push(5, with_id(4, 42))));  // invalid priority
    out.push_back(observe(q.try_push(6, prio(0))));         // generated id, lowest priority
    order_after_pushes = q.ids_in_dequeue_order();
    if (auto e = q.try_pop()) popped.push_back(e->value);
    for (auto& e : q.try_pop_batch(8)) popped.push_back(e.value);
    q.close();
    out.push_back(observe(q.try_push(7, prio(3))));
    return out;
}

}  // namespace

TEST_CASE("make_admission_queue: each policy name behaves like the typed queue", "[queue][any]") {
    auto compare = [](std::string_view name, oc::queue_policy kind, auto typed_tag) {
        using typed_q = typename decltype(typed_tag)::type;
        INFO("policy " << name);
        typed_q typed{opts(2)};
        auto erased = oc::make_admission_queue<int>(name, opts(2));
        REQUIRE(erased->policy() == kind);
        REQUIRE(erased->capacity() == 2u);

        std::vector<oc::job_id> order_t, order_e;
        std::vector<int> popped_t, popped_e;
        const auto obs_t = scenario(typed, order_t, popped_t);
        const auto obs_e = scenario(*erased, order_e, popped_e);
        REQUIRE(obs_t == obs_e);
        REQUIRE(order_t == order_e);
        REQUIRE(popped_t == popped_e);
        REQUIRE(erased->is_closed());
        const auto mt = typed.metrics();
        const auto me = erased->metrics();
        REQUIRE(me.policy == name);
        REQUIRE(mt.policy == name);
        require_same_counters(mt, me);
        require_conservation(me);
        return obs_e;
    };
    using oc::queue_policy;
    const auto rn = compare("reject-new", queue_policy::reject_new,
                            std::type_identity<oc::reject_new_queue<int>>{});
    REQUIRE(rn[2].reason == rejection_reason::queue_full);
    REQUIRE(rn[3].reason == rejection_reason::invalid_request);
    REQUIRE(rn[4].reason == rejection_reason::invalid_request);
    REQUIRE(rn[6].reason == rejection_reason::closed);

    const auto dl = compare("drop-lru", queue_policy::drop_lru, std::type_identity<oc::drop_lru_queue<int>>{});
    REQUIRE(dl[2].accepted);
    REQUIRE(dl[2].evicted == std::optional<oc::job_id>(1));

    const auto ff = compare("fail-fast", queue_policy::fail_fast, std::type_identity<oc::fail_fast_queue<int>>{});
    REQUIRE(ff[0].reason == rejection_reason::policy_violation);

    const auto pr = compare("priority", queue_policy::priority, std::type_identity<oc::priority_queue<int>>{});
    REQUIRE(pr[2].accepted);
    REQUIRE(pr[2].evicted == std::optional<oc::job_id>(1));
    REQUIRE(pr[2].position == 0u);
    REQUIRE(pr[5].reason == rejection_reason::queue_full);  // priority 0 does not outrank 5
}

TEST_CASE("make_admission_queue: blocking pops, handoff and close work through the interface", "[queue][any]") {
    const auto name = GENERATE(as<std::string>{}, "reject-new", "drop-lru", "fail-fast", "priority");
    INFO("policy " << name);
    std::vector<oc::job_id> evicted;
    auto q = oc::make_admission_queue<std::string>(name, opts(1),
                                                   [&](const oc::queue_entry<std::string>& e) { evicted.push_back(e.id); });
    REQUIRE(q->policy() == oc::parse_queue_policy(name));
    REQUIRE_FALSE(q->pop_for(1ms).has_value());
    REQUIRE(q->pop_batch_for(2, 1ms).empty());
    REQUIRE(q->size_approx() == 0u);

    std::optional<oc::queue_entry<std::string>> got;
    {
        std::atomic<int> closed_seen{0};
        worker consumer([&] { got = q->pop(); });
        std::list<worker> waiters;
        close_on_exit<oc::any_admission_queue<std::string>> guard{*q};  // closes before the joins
        wait_for_waiters(*q, 1);
        REQUIRE(q->try_push(std::string("to-consumer"), with_id(5)).accepted());
        REQUIRE(consumer.wait());
        REQUIRE(got.has_value());
        REQUIRE(got->value == "to-consumer");
        REQUIRE(got->id == 5u);
        REQUIRE(q->metrics().dequeued == 1u);

        if (name == "fail-fast") {
            REQUIRE(q->try_push(std::string("nobody")).reason == rejection_reason::policy_violation);
        } else {
            REQUIRE(q->try_push(std::string("a"), with_id(6, 1)).accepted());
            REQUIRE(q->contains(6));
            REQUIRE(q->position_of(6) == 0u);
            REQUIRE(q->size() == 1u);
            const auto r = q->try_push(std::string("b"), with_id(7, 2));
            if (name == "reject-new") {
                REQUIRE(r.reason == rejection_reason::queue_full);
            } else {
                REQUIRE(r.evicted->id == 6u);
                REQUIRE(evicted == std::vector<oc::job_id>{6});
            }
            const auto batch = q->pop_batch(3);
            REQUIRE(batch.size() == 1u);
            REQUIRE(q->try_push(std::string("c"), with_id(8)).accepted());
            REQUIRE(q->cancel(8)->value == "c");
            REQUIRE_FALSE(q->cancel(8).has_value());
            REQUIRE(q->try_push(std::string("d"), with_id(9)).accepted());
        }
        const std::size_t expected_waiters = name == "fail-fast" ? 2u : 1u;
        if (name == "fail-fast") {
            waiters.emplace_back([&] {
                try { (void)q->pop(); } catch (const oc::queue_closed&) { ++closed_seen; }
            });
            waiters.emplace_back([&] {
                try { (void)q->pop_batch(2); } catch (const oc::queue_closed&) { ++closed_seen; }
            });
            wait_for_waiters(*q, expected_waiters);
        }
        q->close();
        for (auto& w : waiters) REQUIRE(w.wait());
        REQUIRE(closed_seen.load() == (name == "fail-fast" ? 2 : 0));
        REQUIRE(q->is_closed());
        if (name != "fail-fast") REQUIRE(q->pop().value == "d");  // drained after close
        REQUIRE_THROWS_AS(q->pop(), oc::queue_closed);
        REQUIRE_THROWS_AS(q->pop_until(std::chrono::steady_clock::now() + 1h), oc::queue_closed);
        require_conservation(q->metrics());
    }
}

TEST_CASE("make_admission_queue rejects unknown policy names and values", "[queue][any]") {
    REQUIRE_THROWS_AS(oc::make_admission_queue<int>("lifo"), oc::invalid_argument);
    try {
        (void)oc::make_admission_queue<int>("lifo");
    } catch (const oc::invalid_argument& e) {
        REQUIRE(e.field() == "policy");
        REQUIRE(std::string(e.what()).find("lifo") != std::string::npos);
    }
    REQUIRE_THROWS_AS(oc::make_admission_queue<int>(static_cast<oc::queue_policy>(42)), oc::invalid_argument);
    auto q = oc::make_admission_queue<int>(oc::queue_policy::drop_lru);
    REQUIRE(q->policy() == oc::queue_policy::drop_lru);
    REQUIRE(q->capacity() == oc::queue_options{}.capacity);
}
