// Coordinator: steering messages, across turns and into coroutine handlers.
#include "unit/coordinator_test_support.hpp"

// ---------------------------------------------------------------------------
// steering
// ---------------------------------------------------------------------------

TEST_CASE("coordinator: steering messages reach a running task in order, exactly once", "[coordinator][steer]") {
    gate g;
    std::atomic<int> blocker_started{0};
    std::promise<void> ready;
    oc::coordinator c{fast_options(1, 1)};
    gate_guard guard{g};
    c.register_handler("block", [&](oc::task_context&) {
        ++blocker_started;
        g.wait();
        return std::string();
    });
    c.register_handler("listen", [&](oc::task_context& ctx) {
        std::string out;
        for (auto& m : ctx.receive()) out += m + ",";  // sent while queued
        out += "|";
        ready.set_value();
        const auto until = steady::now() + 5s;
        while (steady::now() < until) {
            for (auto& m : ctx.receive_for(100ms)) {
                if (m == "stop") return out + "stop";
                out += m + ",";
            }
        }
        return out + "gave up";
    });
    auto b = c.submit_async("block", "");
    REQUIRE(eventually([&] { return blocker_started.load() == 1; }));
    auto r = c.submit_async("listen", "");
    REQUIRE(r);
    const auto id = r.handle.id();
    c.steer(id, {"q1", "q2"});  // queued: kept in the mailbox
    g.open();
    REQUIRE(ready.get_future().wait_for(5s) == std::future_status::ready);
    c.steer(id, {"a", "b"});
    c.steer(id, {"c"});
    c.steer(id, {"stop"});
    CHECK(r.handle.get() == "q1,q2,|a,b,c,stop");

    try {
        c.steer(id, {"too late"});
        FAIL("steering a finished task must throw");
    } catch (const oc::error& e) {
        CHECK(e.code() == oc::errc::task_finished);
    }
    try {
        c.steer("no-such-task", {"x"});
        FAIL("steering an unknown task must throw");
    } catch (const oc::error& e) {
        CHECK(e.code() == oc::errc::not_found);
    }
}

TEST_CASE("coordinator: concurrent steering loses and duplicates nothing", "[coordinator][steer]") {
    std::promise<void> ready;
    oc::coordinator c{fast_options()};
    constexpr int per_sender = 200;
    c.register_handler("collect", [&](oc::task_context& ctx) {
        ready.set_value();
        std::string out;
        int n = 0;
        const auto until = steady::now() + 5s;
        while (n < 2 * per_sender && steady::now() < until) {
            for (auto& m : ctx.receive_for(50ms)) {
                out += m + " ";
                ++n;
            }
        }
        return out;
    });
    auto r = c.submit_async("collect", "");
    REQUIRE(r);
    REQUIRE(ready.get_future().wait_for(5s) == std::future_status::ready);
    auto send = [&](char who) {
        for (int i = 0; i < per_sender; ++i) c.steer(r.handle.id(), {std::string(1, who) + std::to_string(i)});
    };
    std::thread ta(send, 'a'), tb(send, 'b');
    ta.join();
    tb.join();
    const std::string got = r.handle.get();
    // Per sender: every message once, in the order sent.
    std::map<char, std::vector<int>> seen;
    std::size_t pos = 0;
    while (pos < got.size()) {
        const auto sp = got.find(' ', pos);
        const std::string m = got.substr(pos, sp - pos);
        seen[m[0]].push_back(std::stoi(m.substr(1)));
        pos = sp + 1;
    }
    std::vector<int> expected(per_sender);
    for (int i = 0; i < per_sender; ++i) expected[static_cast<std::size_t>(i)] = i;
    CHECK(seen['a'] == expected);
    CHECK(seen['b'] == expected);
}

TEST_CASE("coordinator: messages sent between turns are read at the start of the next turn",
          "[coordinator][steer]") {
    recorder rec;
    gate during_turn0;
    std::promise<void> turn0_ready;
    std::mutex m;
    std::vector<std::vector<std::string>> per_turn;
    std::atomic<int> steered_between{0};
    std::atomic<bool> queued_between{true};
    oc::coordinator c{fast_options()};
    gate_guard guard{during_turn0};
    rec.attach(c);
    c.register_handler("chat", [&](oc::task_context& ctx) {
        auto msgs = ctx.receive();
        {
            std::lock_guard lk(m);
            per_turn.push_back(msgs);
        }
        if (ctx.turn() == 0) {
            turn0_ready.set_value();
            during_turn0.wait();  // the test steers "m2" now; this turn does not read it
            ctx.continue_later(30ms);
            return std::string("ignored");
        }
        return "turn " + std::to_string(ctx.turn());
    });
    // Between the turns (delivered synchronously when the task goes back to
    // the queue, before the next turn can start).
    auto sub = c.events().subscribe(oc::event_channel::tasks, [&](const oc::event& e) {
        if (e.kind == oc::event_kind::task_continued) {
            if (e.status != oc::task_status::queued) queued_between = false;
            c.steer(e.task_id, {"m3"});
            ++steered_between;
        }
    });

    auto r = c.submit_async("chat", "");
    REQUIRE(r);
    const auto id = r.handle.id();
    c.steer(id, {"m1"});  // before the first turn (or as it starts)
    REQUIRE(turn0_ready.get_future().wait_for(5s) == std::future_status::ready);
    c.steer(id, {"m2"});
    during_turn0.open();

    CHECK(r.handle.get() == "turn 1");
    const auto done = c.get_task(id);
    REQUIRE(done);
    CHECK(done->turns == 1);
    CHECK(done->attempts == 2);
    CHECK(done->retries == 0);
    CHECK(steered_between.load() == 1);
    CHECK(queued_between.load());
    CHECK(c.get_stats().continued == 1);
    CHECK(rec.count(oc::event_kind::task_continued, id) == 1);
    std::lock_guard lk(m);
    REQUIRE(per_turn.size() == 2);
    // m1 may arrive before the first receive() or not; it must arrive exactly once.
    std::vector<std::string> all;
    for (auto& t : per_turn) all.insert(all.end(), t.begin(), t.end());
    CHECK(all == std::vector<std::string>{"m1", "m2", "m3"});
    CHECK(std::find(per_turn[1].begin(), per_turn[1].end(), "m2") != per_turn[1].end());
    CHECK(std::find(per_turn[1].begin(), per_turn[1].end(), "m3") != per_turn[1].end());
}

TEST_CASE("coordinator: coroutine handlers receive steering messages with async_receive_for",
          "[coordinator][steer][async]") {
    oc::coordinator c{fast_options()};
    std::atomic<int> received{0};
    c.register_async_handler("async-listen", [&](oc::task_context& ctx) -> boost::asio::awaitable<std::string> {
        std::string got;
        for (int i = 0; i < 50; ++i) {
            auto msgs = co_await ctx.async_receive_for(std::chrono::milliseconds(2000));
            for (auto& msg : msgs) {
                if (msg == "stop") co_return got + "stop";
                got += msg + ",";
                ++received;
            }
            if (ctx.cancellation_requested()) co_return got + "cancelled";
        }
        co_return got + "gave up";
    });
    auto r = c.submit_async("async-listen", "");
    REQUIRE(r);
    const auto id = r.handle.id();
    REQUIRE(eventually([&] { return st(c.get_status(id)) == "running"; }));
    c.steer(id, {"hello"});
    REQUIRE(eventually([&] { return received.load() == 1; }));
    // Let the coroutine go back to waiting: the next message must wake it
    // long before its 2 s timeout.
    std::this_thread::sleep_for(20ms);
    const auto t0 = steady::now();
    c.steer(id, {"world"});
    REQUIRE(eventually([&] { return received.load() == 2; }, 3s));
    CHECK(steady::now() - t0 < 1500ms);
    c.steer(id, {"stop"});
    CHECK(r.handle.get() == "hello,world,stop");
}

TEST_CASE("coordinator: cancelling a coroutine handler wakes its async_receive_for", "[coordinator][cancel][async]") {
    auto o = fast_options();
    o.cancel_grace = 3s;  // the handler must stop by itself, not be fenced
    oc::coordinator c{o};
    std::atomic<bool> saw_cancel{false};
    c.register_async_handler("async-wait", [&](oc::task_context& ctx) -> boost::asio::awaitable<std::string> {
        for (int i = 0; i < 10 && !ctx.cancellation_requested(); ++i)
            (void)co_await ctx.async_receive_for(std::chrono::milliseconds(2000));
        saw_cancel = ctx.cancellation_requested();
        co_return std::string("stopped");
    });
    auto r = c.submit_async("async-wait", "");
    REQUIRE(r);
    const auto id = r.handle.id();
    REQUIRE(eventually([&] { return st(c.get_status(id)) == "running"; }));
    std::this_thread::sleep_for(20ms);
    const auto t0 = steady::now();
    CHECK(c.cancel(id));
    const auto done = r.handle.wait_for(3s);
    REQUIRE(done);
    CHECK(st(done) == "cancelled");
    CHECK(steady::now() - t0 < 1500ms);
    CHECK(saw_cancel.load());
    CHECK(c.get_stats().stale_token_refusals == 0);
}

TEST_CASE("coordinator: a task_context kept past its handler is refused, also after the coordinator is gone",
          "[coordinator][steer]") {
    std::optional<oc::task_context> kept;
    auto c = std::make_unique<oc::coordinator>(fast_options(1, 1));
    c->register_handler("keep", [&](oc::task_context& ctx) {
        kept.emplace(ctx);
        return std::string("done");
    });
    CHECK(c->submit("keep", "") == "done");
    REQUIRE(kept);
    auto code_of = [](auto&& call) {
        try {
            call();
        } catch (const oc::error& e) {
            return e.code();
        }
        return std::error_code{};
    };
    CHECK(code_of([&] { (void)kept->receive(); }) == oc::errc::stale_token);
    CHECK_NOTHROW(kept->report_progress(0.5));  // refused as a fenced attempt's, counted
    c.reset();
    CHECK_FALSE(kept->id().empty());  // its own fields stay readable
    CHECK_FALSE(kept->cancellation_requested());
    CHECK(code_of([&] { (void)kept->receive(); }) == oc::errc::stale_token);
    CHECK(code_of([&] { (void)kept->receive_for(1ms); }) == oc::errc::stale_token);
    CHECK(code_of([&] { kept->report_progress(0.5); }) == oc::errc::stale_token);
}
