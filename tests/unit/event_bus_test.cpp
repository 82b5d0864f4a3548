// event_bus: subscriptions (RAII), channel filtering, subscriber errors.
#include <orchcore/event_bus.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace oc = orchcore;

namespace {

oc::event make(oc::event_kind k, std::string task_id = "t") {
    oc::event e;
    e.kind = k;
    e.task_id = std::move(task_id);
    return e;
}

}  // namespace

TEST_CASE("event_bus: subscribers receive what is published; unsubscribing is RAII", "[event_bus]") {
    oc::event_bus bus;
    CHECK_FALSE(bus.has_subscribers());
    std::vector<std::string> got;
    {
        auto sub = bus.subscribe(oc::event_channel::tasks, [&](const oc::event& e) { got.push_back(e.task_id); });
        CHECK(bus.has_subscribers());
        bus.publish(make(oc::event_kind::task_queued, "a"));
        bus.publish(make(oc::event_kind::task_completed, "b"));
    }
    CHECK_FALSE(bus.has_subscribers());
    bus.publish(make(oc::event_kind::task_queued, "c"));
    CHECK(got == std::vector<std::string>{"a", "b"});
    CHECK(bus.published() == 3);

    auto sub = bus.subscribe(oc::event_channel::tasks, [&](const oc::event& e) { got.push_back(e.task_id); });
    sub.reset();
    sub.reset();  // idempotent
    bus.publish(make(oc::event_kind::task_queued, "d"));
    CHECK(got.size() == 2);
}

TEST_CASE("event_bus: subscriptions move; only the last owner unsubscribes", "[event_bus]") {
    oc::event_bus bus;
    int n = 0;
    oc::event_bus::subscription outer;
    {
        auto sub = bus.subscribe(oc::event_channel::tasks, [&](const oc::event&) { ++n; });
        oc::event_bus::subscription moved(std::move(sub));
        outer = std::move(moved);
    }  // the moved-from ones are destroyed here
    bus.publish(make(oc::event_kind::task_started));
    CHECK(n == 1);

    // Move-assigning over a live subscription ends the old one.
    int m = 0;
    outer = bus.subscribe(oc::event_channel::tasks, [&](const oc::event&) { ++m; });
    bus.publish(make(oc::event_kind::task_started));
    CHECK(n == 1);
    CHECK(m == 1);
    outer = oc::event_bus::subscription{};
    CHECK_FALSE(bus.has_subscribers());
}

TEST_CASE("event_bus: subscribers see only their channel", "[event_bus]") {
    oc::event_bus bus;
    std::vector<oc::event_kind> tasks, workers;
    auto a = bus.subscribe(oc::event_channel::tasks, [&](const oc::event& e) { tasks.push_back(e.kind); });
    auto b = bus.subscribe(oc::event_channel::workers, [&](const oc::event& e) { workers.push_back(e.kind); });
    bus.publish(make(oc::event_kind::task_queued));
    bus.publish(make(oc::event_kind::worker_started));
    bus.publish(make(oc::event_kind::scaled));
    bus.publish(make(oc::event_kind::stale_token_refused));
    bus.publish(make(oc::event_kind::worker_dead));
    CHECK(tasks == std::vector<oc::event_kind>{oc::event_kind::task_queued, oc::event_kind::stale_token_refused});
    CHECK(workers == std::vector<oc::event_kind>{oc::event_kind::worker_started, oc::event_kind::scaled,
                                                 oc::event_kind::worker_dead});
}

TEST_CASE("event_bus: every kind has a name and a channel", "[event_bus]") {
    using K = oc::event_kind;
    for (auto k : {K::task_queued, K::task_started, K::task_progress, K::task_completed, K::task_failed,
                   K::task_retried, K::task_cancelled, K::task_timed_out, K::task_continued, K::task_requeued,
                   K::task_rejected, K::task_expired, K::stale_token_refused}) {
        CHECK(oc::channel_of(k) == oc::event_channel::tasks);
        CHECK(oc::to_string(k).substr(0, 5) == "task.");
    }
    for (auto k : {K::worker_started, K::worker_stopped, K::worker_dead, K::scaled}) {
        CHECK(oc::channel_of(k) == oc::event_channel::workers);
        CHECK(oc::to_string(k).substr(0, 7) == "worker.");
    }
}

TEST_CASE("event_bus: an empty handler or an unknown channel is refused at subscribe", "[event_bus]") {
    oc::event_bus bus;
    try {
        (void)bus.subscribe(oc::event_channel::tasks, oc::event_bus::handler{});
        FAIL("expected invalid_argument");
    } catch (const oc::invalid_argument& e) {
        CHECK(e.field() == "handler");
    }
    try {
        (void)bus.subscribe(static_cast<oc::event_channel>(7), [](const oc::event&) {});
        FAIL("expected invalid_argument");
    } catch (const oc::invalid_argument& e) {
        CHECK(e.field() == "channel");
        CHECK(e.value() == "7");
    }
    CHECK_FALSE(bus.has_subscribers());
    bus.publish(make(oc::event_kind::task_failed));
    CHECK(bus.handler_errors() == 0);
}

TEST_CASE("event_bus: a throwing subscriber does not affect the others and is counted", "[event_bus]") {
    oc::event_bus bus;
    int before = 0, after = 0;
    auto a = bus.subscribe(oc::event_channel::tasks, [&](const oc::event&) { ++before; });
    auto bad = bus.subscribe(oc::event_channel::tasks, [](const oc::event&) { throw std::runtime_error("boom"); });
    auto worse = bus.subscribe(oc::event_channel::tasks, [](const oc::event&) { throw 1; });
    auto c = bus.subscribe(oc::event_channel::tasks, [&](const oc::event&) { ++after; });
    CHECK_NOTHROW(bus.publish(make(oc::event_kind::task_failed)));
    CHECK_NOTHROW(bus.publish(make(oc::event_kind::task_failed)));
    CHECK(before == 2);
    CHECK(after == 2);
    CHECK(bus.handler_errors() == 4);
}

TEST_CASE("event_bus: subscribers may subscribe and unsubscribe from inside a callback", "[event_bus]") {
    oc::event_bus bus;
    int self_calls = 0, late_calls = 0;
    std::optional<oc::event_bus::subscription> self, late;
    self = bus.subscribe(oc::event_channel::tasks, [&](const oc::event&) {
        ++self_calls;
        self.reset();  // unsubscribes itself while being called
        late = bus.subscribe(oc::event_channel::tasks, [&](const oc::event&) { ++late_calls; });
    });
    bus.publish(make(oc::event_kind::task_queued));
    CHECK(self_calls == 1);
    CHECK(late_calls == 0);  // subscribed during this publish: sees the next one
    bus.publish(make(oc::event_kind::task_queued));
    CHECK(self_calls == 1);
    CHECK(late_calls == 1);
}

TEST_CASE("event_bus: a subscription may outlive its bus", "[event_bus]") {
    oc::event_bus::subscription sub;
    {
        auto bus = std::make_unique<oc::event_bus>();
        sub = bus->subscribe(oc::event_channel::tasks, [](const oc::event&) {});
    }
    CHECK_NOTHROW(sub.reset());
}

TEST_CASE("event_bus: concurrent publishing and subscribing", "[event_bus]") {
    oc::event_bus bus;
    std::atomic<int> got{0};
    auto keep = bus.subscribe(oc::event_channel::tasks, [&](const oc::event&) { ++got; });
    std::atomic<bool> stop{false};
    std::thread churn([&] {
        while (!stop.load()) {
            auto s = bus.subscribe(oc::event_channel::tasks, [](const oc::event&) {});
        }
    });
    std::vector<std::thread> publishers;
    for (int t = 0; t < 2; ++t)
        publishers.emplace_back([&] {
            for (int i = 0; i < 2000; ++i) bus.publish(make(oc::event_kind::task_progress));
        });
    for (auto& p : publishers) p.join();
    stop = true;
    churn.join();
    CHECK(got.load() == 4000);
    CHECK(bus.published() == 4000);
}
