// Coordinator: task events in order, progress reports.
#include "unit/coordinator_test_support.hpp"

// ---------------------------------------------------------------------------
// events
// ---------------------------------------------------------------------------

TEST_CASE("coordinator: each task's events arrive queued -> started -> completed", "[coordinator][events]") {
    recorder rec;
    oc::coordinator c{fast_options(2, 2)};
    rec.attach(c);
    c.register_handler("quick", [](oc::task_context& ctx) { return ctx.payload(); });

    // Two submitters while the workers keep finishing (and so dispatching)
    // tasks: the window in which a worker may start a task its submitter
    // has not yet announced is exercised often.
    constexpr int per_thread = 150;
    std::vector<std::string> ids[2];
    auto produce = [&](int t) {
        for (int i = 0; i < per_thread; ++i) {
            auto r = c.submit_async("quick", std::to_string(i));
            if (r) ids[t].push_back(r.handle.id());
        }
    };
    std::thread t0(produce, 0), t1(produce, 1);
    t0.join();
    t1.join();
    REQUIRE(ids[0].size() + ids[1].size() == 2 * per_thread);
    for (auto& v : ids)
        for (auto& id : v) REQUIRE(st(c.wait_for(id, 5s)) == "completed");
    REQUIRE(eventually([&] { return rec.count(oc::event_kind::task_completed) == 2 * per_thread; }));

    const std::vector<std::string> expected{"task.queued", "task.started", "task.completed"};
    std::size_t bad = 0;
    for (auto& v : ids)
        for (auto& id : v) {
            auto k = rec.kinds(id);
            if (k != expected) {
                ++bad;
                UNSCOPED_INFO(id << ": " << Catch::Detail::stringify(k));
            }
        }
    CHECK(bad == 0);

    for (auto& e : rec.all()) {
        CHECK(oc::channel_of(e.kind) == oc::event_channel::tasks);
        if (e.kind == oc::event_kind::task_queued) CHECK(e.status == oc::task_status::queued);
        if (e.kind == oc::event_kind::task_started) {
            CHECK(e.status == oc::task_status::running);
            CHECK(e.attempt == 1);
            CHECK_FALSE(e.worker_id.empty());
        }
        if (e.kind == oc::event_kind::task_completed) CHECK(e.status == oc::task_status::completed);
    }
}

TEST_CASE("coordinator: progress reports are recorded and published", "[coordinator][events]") {
    recorder rec;
    oc::coordinator c{fast_options()};
    rec.attach(c);
    c.register_handler("steps", [](oc::task_context& ctx) {
        ctx.report_progress(0.25, "quarter");
        ctx.report_progress(0.5, "half");
        return std::string("done");
    });
    auto r = c.submit_async("steps", "");
    REQUIRE(r);
    const auto rec_done = r.handle.wait_for(5s);
    REQUIRE(rec_done);
    CHECK(rec_done->progress == 1.0);
    CHECK(rec_done->progress_message == "half");
    std::vector<std::pair<double, std::string>> seen;
    for (auto& e : rec.of(r.handle.id()))
        if (e.kind == oc::event_kind::task_progress) seen.emplace_back(e.progress, e.detail);
    CHECK(seen == std::vector<std::pair<double, std::string>>{{0.25, "quarter"}, {0.5, "half"}});
}

TEST_CASE("coordinator: a NaN progress is refused by name and the record keeps a number", "[coordinator][events]") {
    oc::coordinator c{fast_options()};
    c.register_handler("nan", [](oc::task_context& ctx) {
        ctx.report_progress(0.5, "half");
        try {
            ctx.report_progress(std::nan(""), "broken");
        } catch (const oc::invalid_argument& e) {
            return std::string(e.field());
        }
        return std::string("accepted");
    });
    auto r = c.submit_async("nan", "");
    REQUIRE(r);
    const auto done = r.handle.wait_for(5s);
    REQUIRE(done);
    CHECK(done->status == oc::task_status::completed);
    CHECK(done->result == "progress fraction");
    CHECK(done->progress_message == "half");
}
