// Coordinator: dispatch, tag routing and worker reports.
#include "unit/coordinator_test_support.hpp"

// ---------------------------------------------------------------------------
// tag routing
// ---------------------------------------------------------------------------

TEST_CASE("coordinator: a lone task is dispatched by submit itself, never held for a batch or a tick",
          "[coordinator][dispatch]") {
    auto o = fast_options(1, 1);
    o.autoscale_interval = std::chrono::hours(1);
    o.maintenance_interval = std::chrono::hours(1);
    gate g;
    oc::coordinator c{o};
    gate_guard guard{g};
    c.register_handler("hold", [&](oc::task_context&) {
        g.wait();
        return std::string("ok");
    });
    // A free slot: by the time submit_async returns, the task holds it.
    auto first = c.submit_async("hold", "");
    REQUIRE(first);
    CHECK(c.get_status(first.handle.id()) == oc::task_status::running);
    CHECK(c.get_stats().started == 1);
    // No free slot: it waits in the queue, and starts when the slot frees.
    auto second = c.submit_async("hold", "");
    REQUIRE(second);
    CHECK(c.get_status(second.handle.id()) == oc::task_status::queued);
    g.open();
    CHECK(second.handle.get() == "ok");
}

TEST_CASE("coordinator: get_workers reports status, current tasks, totals, uptime, free slots and heartbeat",
          "[coordinator][workers]") {
    auto o = fast_options(1, 1);
    o.worker_template.max_concurrent = 2;
    o.worker_template.tags = {"gpu"};
    gate g;
    std::atomic<int> started{0};
    oc::coordinator c{o};
    gate_guard guard{g};
    c.register_handler("hold", [&](oc::task_context&) {
        ++started;
        g.wait();
        return std::string("ok");
    });
    c.register_handler("bad", [](oc::task_context&) -> std::string { throw std::runtime_error("no"); });
    const auto t0 = std::chrono::system_clock::now();

    auto idle = c.get_workers();
    REQUIRE(idle.size() == 1);
    CHECK(idle[0].status == oc::worker_status::idle);
    CHECK(idle[0].available == 2);
    CHECK(idle[0].max_concurrent == 2);
    CHECK(idle[0].tags == std::vector<std::string>{"gpu"});
    CHECK(idle[0].current_tasks.empty());

    auto h = c.submit_async("hold", "");
    REQUIRE(h);
    REQUIRE(eventually([&] { return started.load() == 1; }));
    auto busy = c.get_workers();
    REQUIRE(busy.size() == 1);
    CHECK(busy[0].status == oc::worker_status::busy);
    CHECK(busy[0].available == 1);
    CHECK(busy[0].current_tasks == std::vector<std::string>{h.handle.id()});

    auto b = c.submit_async("bad", "", with_retries(0));
    REQUIRE(b);
    REQUIRE(st(b.handle.wait_for(5s)) == "failed");
    g.open();
    REQUIRE(h.handle.get() == "ok");
    std::this_thread::sleep_for(30ms);  // past one heartbeat interval (20ms)
    REQUIRE(eventually([&] {
        auto ws = c.get_workers();
        return ws.size() == 1 && ws[0].completed == 1 && ws[0].failed == 1 && ws[0].available == 2;
    }));
    auto done = c.get_workers();
    CHECK(done[0].status == oc::worker_status::idle);
    CHECK(done[0].current_tasks.empty());
    CHECK(done[0].uptime >= 30ms);
    CHECK(done[0].last_heartbeat >= t0);  // it has heartbeaten since the test began
    CHECK(done[0].id == busy[0].id);
}

TEST_CASE("coordinator: tagged tasks run only on workers with those tags", "[coordinator][tags]") {
    oc::coordinator c{fast_options(1, 4)};
    c.register_handler("where", [](oc::task_context& ctx) { return ctx.worker_id(); });
    oc::task_options gpu;
    gpu.tags = {"gpu"};
    auto tagged = c.submit_async("where", "", gpu);
    REQUIRE(tagged);
    // Untagged work still flows past it.
    CHECK_FALSE(c.submit("where", "").empty());
    std::this_thread::sleep_for(100ms);  // observation window: nobody may take it
    CHECK(st(c.get_status(tagged.handle.id())) == "queued");
    CHECK(c.get_task(tagged.handle.id())->attempts == 0);

    oc::worker_options wo;
    wo.tags = {"gpu", "fast"};
    wo.heartbeat_interval = 20ms;
    const std::string gpu_worker = c.add_worker(wo);
    CHECK(c.get_workers().size() == 2);
    const auto done = tagged.handle.wait_for(3s);
    REQUIRE(done);
    CHECK(st(done) == "completed");
    CHECK(done->result == gpu_worker);
    CHECK(done->worker_id == gpu_worker);

    for (int i = 0; i < 5; ++i) CHECK(c.submit("where", "", gpu) == gpu_worker);

    oc::task_options both;
    both.tags = {"gpu", "tpu"};  // no worker has both
    auto never = c.submit_async("where", "", both);
    REQUIRE(never);
    CHECK(c.submit("where", "", gpu) == gpu_worker);
    CHECK(st(c.get_status(never.handle.id())) == "queued");

    oc::worker_options dup;
    dup.id = gpu_worker;
    dup.heartbeat_interval = 20ms;
    try {
        (void)c.add_worker(dup);
        FAIL("a duplicate worker id must be refused");
    } catch (const oc::invalid_argument& e) {
        CHECK(e.field() == "worker.id");
    }
    CHECK(c.cancel(never.handle.id()));
}
