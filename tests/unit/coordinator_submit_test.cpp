// Coordinator: submission, results, queries, typed handlers, admission policies, bulk submission.
#include "unit/coordinator_test_support.hpp"

// ---------------------------------------------------------------------------
// submit / await / queries
// ---------------------------------------------------------------------------

TEST_CASE("coordinator: submit returns the handler's result; handles and queries see the record",
          "[coordinator]") {
    oc::coordinator c{fast_options()};
    c.register_handler("echo", [](oc::task_context& ctx) {
        return "echo:" + ctx.payload() + ":" + std::to_string(ctx.attempt()) + ":" + std::to_string(ctx.turn());
    });
    c.register_handler("meta", [](oc::task_context& ctx) {
        return ctx.metadata().at("k") + "@" + ctx.worker_id() + "#" + ctx.id() + "/" + ctx.type();
    });

    CHECK(c.submit("echo", "hi") == "echo:hi:1:0");

    oc::task_options o;
    o.id = "t-1";
    o.owner = "alice";
    o.priority = oc::priority::high;
    o.metadata = {{"k", "v"}};
    auto r = c.submit_async("meta", "payload", o);
    REQUIRE(r.accepted());
    REQUIRE(r.handle.valid());
    CHECK(r.handle.id() == "t-1");
    REQUIRE(r.admission.id);
    CHECK(*r.admission.id == "t-1");

    const auto rec = r.handle.wait_for(5s);
    REQUIRE(rec);
    CHECK(st(rec) == "completed");
    CHECK(rec->id == "t-1");
    CHECK(rec->type == "meta");
    CHECK(rec->payload == "payload");
    CHECK(rec->owner == "alice");
    CHECK(rec->priority == oc::priority::high);
    CHECK(rec->metadata == std::map<std::string, std::string>{{"k", "v"}});
    CHECK(rec->attempts == 1);
    CHECK(rec->retries == 0);
    CHECK(rec->started_at.has_value());
    CHECK(rec->finished_at.has_value());
    CHECK(rec->progress == 1.0);
    REQUIRE_FALSE(rec->worker_id.empty());
    CHECK(rec->result == "v@" + rec->worker_id + "#t-1/meta");
    CHECK(r.handle.get() == rec->result);

    CHECK(st(c.get_task("t-1")) == "completed");
    CHECK(st(c.get_status("t-1")) == "completed");
    CHECK(c.get_result("t-1") == rec->result);

    CHECK_FALSE(c.get_task("no-such-task").has_value());
    CHECK_FALSE(c.get_status("no-such-task").has_value());
    CHECK_FALSE(c.get_result("no-such-task").has_value());
    try {
        (void)c.wait_for("no-such-task", 10ms);
        FAIL("wait_for an unknown id must throw");
    } catch (const oc::error& e) {
        CHECK(e.code() == oc::errc::not_found);
    }
    oc::task_handle empty;
    CHECK_FALSE(empty.valid());
    CHECK_THROWS_AS(empty.wait_for(1ms), oc::error);

    // Generated ids are distinct.
    auto a = c.submit_async("echo", "a");
    auto b = c.submit_async("echo", "b");
    REQUIRE(a);
    REQUIRE(b);
    CHECK(a.handle.id() != b.handle.id());
    CHECK(a.handle.get() == "echo:a:1:0");
    CHECK(b.handle.get() == "echo:b:1:0");
    CHECK(c.get_stats().submitted == 4);
    CHECK(c.get_stats().completed == 4);
}

TEST_CASE("coordinator: typed handlers and typed submit_async (boost::json, arithmetic)", "[coordinator]") {
    oc::coordinator c{fast_options()};
    c.handle<boost::json::value>("sum", [](oc::task_context&, boost::json::value v) {
        return boost::json::value(v.at("a").as_int64() + v.at("b").as_int64());
    });
    c.handle<int>("twice", [](oc::task_context&, int v) { return v * 2; });

    const boost::json::value payload = {{"a", 2}, {"b", 40}};
    auto r = c.submit_async("sum", payload);
    REQUIRE(r);
    CHECK(c.get_task(r.handle.id())->payload == boost::json::serialize(payload));
    CHECK(r.handle.get_as<boost::json::value>() == boost::json::value(42));

    auto t = c.submit_async("twice", 21);
    REQUIRE(t);
    CHECK(t.handle.get_as<int>() == 42);

    // A payload the codec cannot decode fails the task, naming the payload.
    auto bad = c.submit_async("sum", std::string("{not json"), with_retries(0));
    REQUIRE(bad);
    const auto rec = bad.handle.wait_for(5s);
    REQUIRE(rec);
    CHECK(st(rec) == "failed");
    CHECK_THAT(rec->error, Catch::Contains("payload"));
    try {
        (void)bad.handle.get();
        FAIL("get() of a failed task must throw");
    } catch (const oc::task_failed_error& e) {
        CHECK(e.code() == oc::errc::task_failed);
        CHECK(e.record().status == oc::task_status::failed);
        CHECK_THAT(std::string(e.what()), Catch::Contains("payload"));
    }
}

namespace {
struct point {
    int x = 0, y = 0;
    bool operator==(const point&) const = default;
};
}  // namespace

template <>
struct orchcore::codec<point> {
    static std::string encode(const point& p) { return std::to_string(p.x) + "," + std::to_string(p.y); }
    static point decode(std::string_view s) {
        const auto comma = s.find(',');
        if (comma == std::string_view::npos)
            throw orchcore::invalid_argument("payload", "\"" + std::string(s) + "\"", "not a point \"x,y\"");
        return {orchcore::codec<int>::decode(s.substr(0, comma)), orchcore::codec<int>::decode(s.substr(comma + 1))};
    }
};

TEST_CASE("codec: numbers round-trip exactly; bad text names the payload", "[codec]") {
    for (double v : {1e-9, 0.1, -1.5e300, 3.141592653589793, 0.0})
        CHECK(oc::codec<double>::decode(oc::codec<double>::encode(v)) == v);
    CHECK(oc::codec<float>::decode(oc::codec<float>::encode(1e-7f)) == 1e-7f);
    CHECK(oc::codec<std::int64_t>::encode(INT64_MIN) == "-9223372036854775808");
    CHECK(oc::codec<std::int64_t>::decode("-9223372036854775808") == INT64_MIN);
    CHECK(oc::codec<std::uint64_t>::decode(oc::codec<std::uint64_t>::encode(UINT64_MAX)) == UINT64_MAX);
    CHECK(oc::codec<bool>::decode(oc::codec<bool>::encode(true)));
    CHECK_FALSE(oc::codec<bool>::decode("false"));
    CHECK_THROWS_AS(oc::codec<bool>::decode("yes"), oc::invalid_argument);
    CHECK_THROWS_AS(oc::codec<int>::decode("12x"), oc::invalid_argument);
    CHECK_THROWS_AS(oc::codec<int>::decode("99999999999"), oc::invalid_argument);  // out of range
    try {
        (void)oc::codec<double>::decode("");
        FAIL("expected invalid_argument");
    } catch (const oc::invalid_argument& e) {
        CHECK(e.field() == "payload");
    }
    static_assert(oc::encodable<point>);
    static_assert(oc::encodable<double>);
}

TEST_CASE("coordinator: a user type with its own codec specialisation", "[coordinator][codec]") {
    oc::coordinator c{fast_options()};
    c.handle<point>("mirror", [](oc::task_context&, point p) { return point{p.y, p.x}; });
    c.handle<double>("half", [](oc::task_context&, double v) { return v / 2; });
    auto r = c.submit_async("mirror", point{1, 2});
    REQUIRE(r);
    CHECK(c.get_task(r.handle.id())->payload == "1,2");  // stored encoded
    CHECK(r.handle.get_as<point>() == point{2, 1});
    auto h = c.submit_async("half", 1e-9);
    REQUIRE(h);
    CHECK(h.handle.get_as<double>() == 1e-9 / 2);
    // The user codec's error fails the task at once: bad input stays bad,
    // so no retry is spent on it.
    auto bad = c.submit_async("mirror", std::string("nope"), with_retries(3));
    REQUIRE(bad);
    const auto rec = bad.handle.wait_for(5s);
    REQUIRE(rec);
    CHECK(st(rec) == "failed");
    CHECK(rec->attempts == 1);
    CHECK(rec->retries == 0);
    CHECK_THAT(rec->error, Catch::Contains("not a point"));
}

TEST_CASE("coordinator: a handler waiting for its own task is refused, not left waiting forever",
          "[coordinator][wait]") {
    oc::coordinator c{fast_options(1, 1)};
    c.register_handler("self", [&](oc::task_context& ctx) -> std::string {
        try {
            (void)c.wait_for(ctx.id(), std::chrono::milliseconds::max());
            return "waited";
        } catch (const oc::invalid_argument& e) {
            return e.field() + "=" + e.value();
        }
    });
    c.register_handler("other", [&](oc::task_context& ctx) -> std::string {
        // Waiting for another task is allowed (here: one that is finished).
        auto r = c.wait_for(ctx.payload(), 5s);
        return r ? std::string(oc::to_string(r->status)) : "none";
    });
    auto r = c.submit_async("self", "");
    REQUIRE(r);
    const auto rec = r.handle.wait_for(30s);
    REQUIRE(rec);
    CHECK(st(rec) == "completed");
    CHECK(rec->result == "id=\"" + r.handle.id() + "\"");
    CHECK(c.submit("other", r.handle.id()) == "completed");
}

TEST_CASE("coordinator: a moved-from task_handle is empty", "[coordinator]") {
    oc::coordinator c{fast_options(1, 1)};
    c.register_handler("echo", [](oc::task_context& ctx) { return ctx.payload(); });
    auto r = c.submit_async("echo", "x");
    REQUIRE(r);
    const std::string id = r.handle.id();
    oc::task_handle moved = std::move(r.handle);
    CHECK(moved.valid());
    CHECK(moved.id() == id);
    CHECK_FALSE(r.handle.valid());  // NOLINT(bugprone-use-after-move): the documented moved-from state
    CHECK_THROWS_AS(r.handle.wait_for(1ms), oc::error);
    oc::task_handle assigned;
    assigned = std::move(moved);
    CHECK_FALSE(moved.valid());  // NOLINT(bugprone-use-after-move)
    CHECK(assigned.get() == "x");
    oc::task_handle copy = assigned;  // copies stay valid on both sides
    CHECK(copy.valid());
    CHECK(assigned.valid());
}

TEST_CASE("coordinator: unknown task type throws invalid_argument naming \"type\"", "[coordinator]") {
    oc::coordinator c{fast_options()};
    try {
        (void)c.submit_async("no-such-type", "x");
        FAIL("expected invalid_argument");
    } catch (const oc::invalid_argument& e) {
        CHECK(e.field() == "type");
        CHECK(e.code() == oc::errc::invalid_argument);
        CHECK_THAT(std::string(e.what()), Catch::Contains("no-such-type"));
    }
    CHECK_THROWS_AS(c.submit("no-such-type", "x"), oc::invalid_argument);
    CHECK_THROWS_AS(c.post("no-such-type", "x"), oc::invalid_argument);
    CHECK_THROWS_AS(c.register_handler("", [](oc::task_context&) { return std::string(); }), oc::invalid_argument);
    CHECK_THROWS_AS(c.register_handler("t", oc::task_handler{}), oc::invalid_argument);
    CHECK(c.get_stats().submitted == 0);
}

TEST_CASE("coordinator: bad task options throw invalid_argument naming the field", "[coordinator]") {
    oc::coordinator c{fast_options()};
    c.register_handler("t", [](oc::task_context&) { return std::string(); });
    auto field_of = [&](oc::task_options o) -> std::string {
        try {
            (void)c.submit_async("t", "", std::move(o));
        } catch (const oc::invalid_argument& e) {
            return e.field();
        }
        return "<accepted>";
    };
    oc::task_options o;
    o.timeout = -1ms;
    CHECK(field_of(o) == "timeout");
    o = {};
    o.turn_timeout = -5ms;
    CHECK(field_of(o) == "turn_timeout");
    o = {};
    o.max_retries = 1001;
    CHECK(field_of(o) == "max_retries");
    o = {};
    o.id = "";
    CHECK(field_of(o) == "id");
    o = {};
    o.backoff = oc::backoff_policy{.base = 10ms, .cap = 1ms};
    CHECK(field_of(o) == "backoff.cap");
}

TEST_CASE("coordinator: duplicate ids and bad priorities are rejected as invalid_request", "[coordinator]") {
    recorder rec;
    oc::coordinator c{fast_options()};
    rec.attach(c);
    c.register_handler("echo", [](oc::task_context& ctx) { return ctx.payload(); });

    auto first = c.submit_async("echo", "first", with_id("dup"));
    REQUIRE(first);
    REQUIRE(first.handle.wait_for(5s));

    auto second = c.submit_async("echo", "second", with_id("dup"));
    CHECK_FALSE(second.accepted());
    CHECK_FALSE(second.handle.valid());
    CHECK(second.admission.reason == oc::rejection_reason::invalid_request);
    CHECK(second.admission.retry_after == 0ms);
    REQUIRE(second.admission.id);
    CHECK(*second.admission.id == "dup");
    // Never overwritten.
    CHECK(c.get_task("dup")->payload == "first");
    CHECK(c.get_result("dup") == "first");

    try {
        (void)c.submit("echo", "third", with_id("dup"));
        FAIL("expected rejected_error");
    } catch (const oc::rejected_error& e) {
        CHECK(e.reason() == oc::rejection_reason::invalid_request);
        CHECK(e.code() == oc::errc::rejected);
    }

    for (int p : {oc::priority::max + 1, oc::priority::min - 1, 1000}) {
        oc::task_options o;
        o.priority = p;
        auto r = c.submit_async("echo", "x", o);
        CHECK_FALSE(r.accepted());
        CHECK(r.admission.reason == oc::rejection_reason::invalid_request);
        try {
            (void)c.submit("echo", "x", o);
            FAIL("expected rejected_error");
        } catch (const oc::rejected_error& e) {
            CHECK(e.reason() == oc::rejection_reason::invalid_request);
        }
    }
    // Edge priorities are fine.
    for (int p : {oc::priority::min, oc::priority::max}) {
        oc::task_options o;
        o.priority = p;
        CHECK(c.submit("echo", "edge", o) == "edge");
    }
    CHECK(c.get_stats().rejected == 8);
    CHECK(rec.count(oc::event_kind::task_rejected) == 8);
}

TEST_CASE("coordinator: a full queue rejects with queue_full and a retry-after hint", "[coordinator]") {
    auto o = fast_options(1, 1);
    o.queue.capacity = 2;
    gate g;
    std::atomic<int> started{0};
    oc::coordinator c{o};
    gate_guard guard{g};
    c.register_handler("block", [&](oc::task_context&) {
        ++started;
        g.wait();
        return std::string("done");
    });

    auto running = c.submit_async("block", "");
    REQUIRE(running);
    REQUIRE(eventually([&] { return started.load() == 1; }));
    auto q1 = c.submit_async("block", "");
    auto q2 = c.submit_async("block", "");
    REQUIRE(q1);
    REQUIRE(q2);
    CHECK(c.get_stats().queued == 2);
    CHECK(c.get_stats().running == 1);

    auto full = c.submit_async("block", "");
    CHECK_FALSE(full.accepted());
    CHECK_FALSE(full.handle.valid());
    CHECK(full.admission.reason == oc::rejection_reason::queue_full);
    CHECK(full.admission.retry_after > 0ms);

    try {
        (void)c.submit("block", "");
        FAIL("expected rejected_error");
    } catch (const oc::rejected_error& e) {
        CHECK(e.reason() == oc::rejection_reason::queue_full);
        CHECK(e.retry_after() > 0ms);
        CHECK(e.code() == oc::errc::rejected);
        CHECK_THAT(std::string(e.what()), Catch::Contains("queue_full"));
    }
    CHECK(c.get_stats().rejected == 2);

    g.open();
    for (auto* h : {&running.handle, &q1.handle, &q2.handle}) CHECK(st(h->wait_for(5s)) == "completed");
    CHECK(started.load() == 3);
}

TEST_CASE("coordinator: fail_fast admits only when a worker can start the task now", "[coordinator]") {
    auto o = fast_options(1, 1);
    o.policy = oc::queue_policy::fail_fast;
    gate g;
    oc::coordinator c{o};
    gate_guard guard{g};
    c.register_handler("block", [&](oc::task_context&) {
        g.wait();
        return std::string("done");
    });
    auto first = c.submit_async("block", "");
    REQUIRE(first);
    CHECK(st(c.get_status(first.handle.id())) == "running");
    auto second = c.submit_async("block", "");
    CHECK_FALSE(second.accepted());
    CHECK(second.admission.reason == oc::rejection_reason::policy_violation);
    g.open();
    CHECK(first.handle.get() == "done");
}

TEST_CASE("coordinator: the priority policy runs higher priorities first", "[coordinator]") {
    auto o = fast_options(1, 1);
    o.policy = oc::queue_policy::priority;
    gate g;
    std::mutex m;
    std::vector<std::string> order;
    std::atomic<int> started{0};
    oc::coordinator c{o};
    gate_guard guard{g};
    c.register_handler("block", [&](oc::task_context&) {
        ++started;
        g.wait();
        return std::string();
    });
    c.register_handler("log", [&](oc::task_context& ctx) {
        std::lock_guard lk(m);
        order.push_back(ctx.payload());
        return std::string();
    });
    auto b = c.submit_async("block", "");
    REQUIRE(eventually([&] { return started.load() == 1; }));
    std::vector<oc::task_handle> hs;
    for (auto [name, p] : {std::pair{"low", oc::priority::low}, std::pair{"normal", oc::priority::normal},
                           std::pair{"critical", oc::priority::critical}, std::pair{"high", oc::priority::high}}) {
        oc::task_options to;
        to.priority = p;
        auto r = c.submit_async("log", name, to);
        REQUIRE(r);
        hs.push_back(r.handle);
    }
    g.open();
    for (auto& h : hs) REQUIRE(h.wait_for(5s));
    CHECK(order == std::vector<std::string>{"critical", "high", "normal", "low"});
}

TEST_CASE("coordinator: drop_lru evicts the oldest queued task, which ends cancelled", "[coordinator]") {
    auto o = fast_options(1, 1);
    o.policy = oc::queue_policy::drop_lru;
    o.queue.capacity = 1;
    gate g;
    std::atomic<int> started{0};
    recorder rec;
    oc::coordinator c{o};
    gate_guard guard{g};
    rec.attach(c);
    c.register_handler("block", [&](oc::task_context&) {
        ++started;
        g.wait();
        return std::string("ok");
    });
    auto running = c.submit_async("block", "");
    REQUIRE(eventually([&] { return started.load() == 1; }));
    auto old = c.submit_async("block", "");
    auto young = c.submit_async("block", "");
    REQUIRE(old);
    REQUIRE(young);
    const auto r = old.handle.wait_for(0ms);
    REQUIRE(r);
    CHECK(st(r) == "cancelled");
    CHECK_THAT(r->error, Catch::Contains("evicted"));
    CHECK(rec.count(oc::event_kind::task_cancelled, old.handle.id()) == 1);
    g.open();
    CHECK(young.handle.get() == "ok");
    CHECK(running.handle.get() == "ok");
    CHECK(started.load() == 2);
}

TEST_CASE("coordinator: submit_many in local mode", "[coordinator][bulk]") {
    oc::coordinator_options o;
    o.queue.capacity = 10;
    o.scaling.min_workers = 0;  // nothing runs: the queue fills
    o.scaling.max_workers = 1;
    oc::coordinator c{o};
    c.register_handler("t", [](oc::task_context& ctx) { return ctx.payload(); });
    std::vector<oc::task_request> batch;
    for (int i = 0; i < 12; ++i) batch.push_back({"t", std::to_string(i), {}});
    batch[3].options.id = "x";
    batch[4].options.id = "x";
    auto rs = c.submit_many(batch);
    REQUIRE(rs.size() == 12);
    CHECK(rs[3].accepted());
    CHECK(rs[3].admission.id == "x");
    CHECK_FALSE(rs[4].accepted());
    CHECK(rs[4].admission.reason == oc::rejection_reason::invalid_request);
    std::size_t accepted = 0;
    for (auto& r : rs) accepted += r.accepted() ? 1 : 0;
    CHECK(accepted == 10);
    CHECK_FALSE(rs[11].accepted());
    CHECK(rs[11].admission.reason == oc::rejection_reason::queue_full);
    // Invalid options throw before anything is admitted.
    std::vector<oc::task_request> bad{{"t", "a", {}}, {"t", "b", {}}};
    bad[1].options.timeout = std::chrono::milliseconds(-1);
    CHECK_THROWS_AS(c.submit_many(bad), oc::invalid_argument);
    CHECK(c.get_stats().submitted == 10);
    c.scale(1);
    for (auto& r : rs)
        if (r) CHECK(r.handle.wait_for(5s));
}

TEST_CASE("coordinator: submit_many keeps each caller's id in the admission, the handle and the record",
          "[coordinator][bulk]") {
    oc::coordinator c{oc::coordinator_options{}};
    c.register_handler("t", [](oc::task_context& ctx) { return ctx.id(); });
    std::vector<oc::task_request> batch;
    std::vector<std::string> ids;
    for (int i = 0; i < 3; ++i) {
        ids.push_back("a-caller-chosen-id-longer-than-a-short-string/" + std::to_string(i));
        batch.push_back({"t", {}, {}});
        batch.back().options.id = ids.back();
    }
    batch.push_back({"t", {}, {}});  // a generated id beside them
    const auto rs = c.submit_many(batch);
    REQUIRE(rs.size() == 4);
    for (std::size_t i = 0; i < 3; ++i) {
        INFO(i);
        REQUIRE(rs[i].accepted());
        CHECK(rs[i].admission.id == ids[i]);
        CHECK(rs[i].handle.id() == ids[i]);
        CHECK(rs[i].handle.get() == ids[i]);
        CHECK(c.get_task(ids[i])->id == ids[i]);
    }
    REQUIRE(rs[3].accepted());
    REQUIRE(rs[3].admission.id);
    CHECK(*rs[3].admission.id == rs[3].handle.id());
}

TEST_CASE("coordinator: local submit_many admits in chunks; each task decided as if alone", "[coordinator][bulk]") {
    // 200 tasks span several of submit_many's lock chunks; with drop_lru and
    // capacity 50 and nothing running, the last 50 stay queued and the first
    // 150 are evicted, each ending cancelled exactly once.
    auto o = fast_options(1, 1);
    o.policy = oc::queue_policy::drop_lru;
    o.queue.capacity = 50;
    o.scaling.min_workers = 0;
    recorder rec;
    oc::coordinator c{o};
    rec.attach(c);
    std::atomic<int> ran{0};
    c.register_handler("t", [&](oc::task_context& ctx) {
        ++ran;
        return ctx.payload();
    });
    std::vector<oc::task_request> batch;
    for (int i = 0; i < 200; ++i) batch.push_back({"t", std::to_string(i), {}});
    auto rs = c.submit_many(batch);
    REQUIRE(rs.size() == 200);
    for (auto& r : rs) REQUIRE(r.accepted());
    for (int i = 0; i < 150; ++i) {
        auto rec150 = rs[static_cast<std::size_t>(i)].handle.wait_for(0ms);
        REQUIRE(rec150);
        CHECK(st(rec150) == "cancelled");
    }
    CHECK(c.get_stats().cancelled == 150);
    // Another thread may be publishing when these are emitted: it delivers them.
    CHECK(eventually([&] { return rec.count(oc::event_kind::task_cancelled) == 150; }));
    c.scale(1);
    for (int i = 150; i < 200; ++i) CHECK(rs[static_cast<std::size_t>(i)].handle.get() == std::to_string(i));
    CHECK(ran.load() == 50);

    // A type without a handler rejects the whole call before anything is
    // admitted, wherever it sits in the batch.
    std::vector<oc::task_request> mixed;
    for (int i = 0; i < 100; ++i) mixed.push_back({"t", "m", {}});
    mixed[99].type = "nobody";
    const auto submitted = c.get_stats().submitted;
    CHECK_THROWS_AS(c.submit_many(mixed), oc::invalid_argument);
    CHECK(c.get_stats().submitted == submitted);
}

TEST_CASE("coordinator: a generated id never takes a caller's id of the same form", "[coordinator]") {
    oc::coordinator c{fast_options()};
    c.register_handler("echo", [](oc::task_context& ctx) { return ctx.payload(); });
    // Ids the coordinator would generate next ("task-<n>").
    std::vector<oc::submit_result> callers;
    for (int i = 1; i <= 5; ++i) {
        callers.push_back(c.submit_async("echo", "caller", with_id("task-" + std::to_string(i))));
        REQUIRE(callers.back());
    }
    std::set<std::string> ids;
    for (int i = 0; i < 5; ++i) {
        auto r = c.submit_async("echo", "generated");
        REQUIRE(r);
        ids.insert(r.handle.id());
        CHECK(r.handle.get() == "generated");
    }
    CHECK(ids.size() == 5);
    // The caller's tasks may still be running on the other worker: await
    // them before reading their stored results.
    for (auto& r : callers) CHECK(r.handle.get() == "caller");
    for (int i = 1; i <= 5; ++i) CHECK(c.get_result("task-" + std::to_string(i)) == "caller");
    CHECK(c.get_stats().submitted == 10);
    CHECK(c.get_stats().rejected == 0);
}
