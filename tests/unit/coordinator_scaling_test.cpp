// Coordinator: manual and automatic scaling.
#include "unit/coordinator_test_support.hpp"

// ---------------------------------------------------------------------------
// scaling
// ---------------------------------------------------------------------------

TEST_CASE("coordinator: scale(n) is clamped; busy workers drain instead of dropping tasks", "[coordinator][scale]") {
    gate g;
    std::atomic<int> started{0};
    recorder workers_rec;
    oc::coordinator c{fast_options(1, 3)};
    gate_guard guard{g};
    workers_rec.attach(c, oc::event_channel::workers);
    c.register_handler("block", [&](oc::task_context&) {
        ++started;
        g.wait();
        return std::string("ok");
    });
    CHECK(c.get_workers().size() == 1);
    CHECK(c.scale(10) == 3);
    CHECK(c.get_stats().workers == 3);
    std::vector<oc::task_handle> hs;
    for (int i = 0; i < 3; ++i) hs.push_back(c.submit_async("block", "").handle);
    REQUIRE(eventually([&] { return started.load() == 3; }));
    CHECK(c.scale(0) == 1);
    CHECK(c.get_stats().workers == 1);
    auto ws = c.get_workers();
    CHECK(std::count_if(ws.begin(), ws.end(),
                        [](const oc::worker_info& w) { return w.status == oc::worker_status::draining; }) == 2);
    g.open();
    for (auto& h : hs) CHECK(st(h.wait_for(5s)) == "completed");
    REQUIRE(eventually([&] { return c.get_workers().size() == 1; }));
    // Published right after the change, outside the lock: allow for it.
    CHECK(eventually([&] { return workers_rec.count(oc::event_kind::worker_stopped) == 2; }));
    const auto hist = c.get_stats().scaling_history;
    REQUIRE(hist.size() == 2);
    CHECK(hist[0].from == 1);
    CHECK(hist[0].to == 3);
    CHECK(hist[1].from == 3);
    CHECK(hist[1].to == 1);
    CHECK_THAT(hist[0].reason, Catch::Contains("manual"));
}

TEST_CASE("coordinator: auto-scaling follows the load up to max and back down to min without flapping",
          "[coordinator][scale][autoscale]") {
    auto o = fast_options(1, 3);
    o.autoscale = true;
    o.scaling.scale_up_depth = 2;
    o.scaling.scale_down_depth = 1;
    o.scaling.up_after = 1;
    o.scaling.down_after = 2;
    o.scaling.cooldown = 30ms;
    gate g;
    recorder workers_rec;
    oc::coordinator c{o};
    gate_guard guard{g};
    workers_rec.attach(c, oc::event_channel::workers);
    c.register_handler("block", [&](oc::task_context&) {
        g.wait();
        return std::string();
    });
    std::vector<oc::task_handle> hs;
    for (int i = 0; i < 12; ++i) hs.push_back(c.submit_async("block", "").handle);
    REQUIRE(eventually([&] { return c.get_stats().workers == 3; }, 3s));
    CHECK(eventually([&] { return c.get_stats().running == 3; }));

    g.open();
    for (auto& h : hs) REQUIRE(st(h.wait_for(5s)) == "completed");
    REQUIRE(eventually([&] { return c.get_stats().workers == 1; }, 3s));
    std::this_thread::sleep_for(200ms);  // observation window: idle, it must stay put
    const auto s = c.get_stats();
    CHECK(s.workers == 1);
    std::size_t ups = 0, downs = 0;
    for (const auto& h : s.scaling_history) {
        CHECK((h.to == h.from + 1 || h.to + 1 == h.from));
        if (h.to > h.from) {
            ++ups;
            CHECK(h.reason == "queue depth high");
        } else {
            ++downs;
            CHECK(h.reason == "queue depth low");
        }
    }
    CHECK(ups == 2);
    CHECK(downs == 2);
    const auto scaled = workers_rec.count(oc::event_kind::scaled);
    CHECK(scaled == s.scaling_history.size());
    CHECK(scaled <= (3 - 1) * 2 + 2);
}
