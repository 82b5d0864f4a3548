// Coordinator: admission, dispatch, events, cancellation, steering, retries,
// timeouts, health and fencing, stop, scaling, tag routing, TTL.
//
// Timing: every wait is bounded (eventually(), wait_for, gates with a cap),
// and no sleep is used as an assertion. A few tests sleep to *create* a
// situation (a task waiting longer than its turn timeout) or to give a
// wrong behaviour the chance to show (an observation window), never to
// decide an outcome on their own.
#include <orchcore/coordinator.hpp>

#include "unit/distributed_scenarios.hpp"

#include <catch2/catch.hpp>

#include "support/sync_helpers.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace oc = orchcore;
using namespace std::chrono_literals;

namespace {

using steady = std::chrono::steady_clock;
using orchcore::test::eventually;
using orchcore::test::gate;
using orchcore::test::gate_guard;


// Records events. Declare it before the coordinator so that it outlives it.
class recorder {
public:
    void attach(oc::coordinator& c, oc::event_channel ch = oc::event_channel::tasks) {
        subs_.push_back(c.events().subscribe(ch, [this](const oc::event& e) {
            std::lock_guard lk(m_);
            events_.push_back(e);
        }));
    }
    std::vector<oc::event> all() const {
        std::lock_guard lk(m_);
        return events_;
    }
    std::vector<oc::event> of(const std::string& task_id) const {
        std::vector<oc::event> out;
        for (auto& e : all())
            if (e.task_id == task_id) out.push_back(e);
        return out;
    }
    /// Kinds of the events of one task, in delivery order.
    std::vector<std::string> kinds(const std::string& task_id) const {
        std::vector<std::string> out;
        for (auto& e : of(task_id)) out.emplace_back(oc::to_string(e.kind));
        return out;
    }
    std::size_t count(oc::event_kind k, const std::string& task_id = {}) const {
        std::size_t n = 0;
        for (auto& e : all())
            if (e.kind == k && (task_id.empty() || e.task_id == task_id)) ++n;
        return n;
    }
    std::size_t count_worker(oc::event_kind k, const std::string& worker_id) const {
        std::size_t n = 0;
        for (auto& e : all())
            if (e.kind == k && e.worker_id == worker_id) ++n;
        return n;
    }

private:
    mutable std::mutex m_;
    std::vector<oc::event> events_;
    std::vector<oc::event_bus::subscription> subs_;
};

oc::coordinator_options fast_options(std::size_t min_workers = 2, std::size_t max_workers = 4) {
    oc::coordinator_options o;
    o.worker_template.heartbeat_interval = 20ms;
    // Generous except in the health tests, so that a slow (sanitized) run
    // never declares a healthy worker dead.
    o.worker_timeout = 1000ms;
    o.default_backoff = {.base = 1ms, .cap = 5ms};
    o.autoscale_interval = 20ms;
    o.maintenance_interval = 10ms;
    o.cancel_grace = 200ms;
    o.scaling.min_workers = min_workers;
    o.scaling.max_workers = max_workers;
    o.scaling.cooldown = 20ms;
    return o;
}

std::string st(const std::optional<oc::task_record>& r) {
    return r ? std::string(oc::to_string(r->status)) : std::string("<none>");
}
std::string st(const std::optional<oc::task_status>& s) {
    return s ? std::string(oc::to_string(*s)) : std::string("<none>");
}

oc::task_options with_id(std::string id) {
    oc::task_options o;
    o.id = std::move(id);
    return o;
}
oc::task_options with_retries(std::uint32_t n) {
    oc::task_options o;
    o.max_retries = n;
    return o;
}

// A handler body that runs until its attempt is asked to cancel (bounded),
// counts that it saw the request, then returns normally.
std::string run_until_cancelled(oc::task_context& ctx, std::atomic<int>& saw_cancel) {
    const auto until = steady::now() + 5s;
    while (!ctx.cancellation_requested() && steady::now() < until) std::this_thread::sleep_for(1ms);
    if (ctx.cancellation_requested()) ++saw_cancel;
    return "returned after cancel";
}

template <class F>
std::string error_text(F&& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "<no exception>";
}

}  // namespace

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

// ---------------------------------------------------------------------------
// cancellation
// ---------------------------------------------------------------------------

TEST_CASE("coordinator: cancelling a queued task removes it at once; it never starts", "[coordinator][cancel]") {
    gate g;
    recorder rec;
    std::atomic<int> started{0}, victim_runs{0};
    oc::coordinator c{fast_options(1, 1)};
    gate_guard guard{g};
    rec.attach(c);
    c.register_handler("block", [&](oc::task_context&) {
        ++started;
        g.wait();
        return std::string("ok");
    });
    c.register_handler("victim", [&](oc::task_context&) {
        ++victim_runs;
        return std::string("ran");
    });
    c.register_handler("after", [](oc::task_context&) { return std::string("after"); });

    auto blocker = c.submit_async("block", "");
    REQUIRE(eventually([&] { return started.load() == 1; }));
    auto victim = c.submit_async("victim", "");
    REQUIRE(victim);
    const auto id = victim.handle.id();
    REQUIRE(st(c.get_status(id)) == "queued");

    CHECK(c.cancel(id));
    CHECK(st(c.get_status(id)) == "cancelled");  // at once, no handler involved
    CHECK_FALSE(c.cancel(id));                    // already finished
    CHECK_FALSE(c.cancel("no-such-task"));
    const auto r = victim.handle.wait_for(0ms);
    REQUIRE(r);
    CHECK(st(r) == "cancelled");
    CHECK(r->attempts == 0);
    CHECK_FALSE(r->started_at.has_value());
    CHECK_THROWS_AS(victim.handle.get(), oc::cancelled_error);
    CHECK(c.get_stats().queued == 0);

    g.open();
    CHECK(blocker.handle.get() == "ok");
    // FIFO: a task submitted after the victim has run, so the victim would have.
    CHECK(c.submit("after", "") == "after");
    CHECK(victim_runs.load() == 0);
    CHECK(rec.count(oc::event_kind::task_started, id) == 0);
    CHECK(rec.count(oc::event_kind::task_cancelled, id) == 1);
    CHECK(c.get_stats().cancelled == 1);
}

TEST_CASE("coordinator: cancelling a running task is cooperative", "[coordinator][cancel]") {
    oc::coordinator c{fast_options()};

    SECTION("throw_if_cancelled") {
        std::promise<void> started;
        std::atomic<int> saw{0};
        c.register_handler("coop", [&](oc::task_context& ctx) {
            started.set_value();
            const auto until = steady::now() + 5s;
            while (!ctx.cancellation_requested() && steady::now() < until) std::this_thread::sleep_for(1ms);
            saw = ctx.cancellation_requested() ? 1 : 0;
            try {
                ctx.throw_if_cancelled();
            } catch (const oc::cancelled_error&) {
                saw = 2;
                throw;
            }
            return std::string("not cancelled");
        });
        auto r = c.submit_async("coop", "");
        REQUIRE(r);
        REQUIRE(started.get_future().wait_for(5s) == std::future_status::ready);
        CHECK(c.cancel(r.handle.id()));
        const auto done = r.handle.wait_for(3s);
        REQUIRE(done);
        CHECK(st(done) == "cancelled");
        CHECK(saw.load() == 2);
        CHECK_FALSE(c.cancel(r.handle.id()));
        CHECK_FALSE(c.get_result(r.handle.id()).has_value());
        CHECK_THROWS_AS(r.handle.get(), oc::cancelled_error);
        CHECK(c.get_stats().stale_token_refusals == 0);
    }

    SECTION("a handler that returns normally after the request still ends cancelled") {
        std::promise<void> started;
        std::atomic<bool> woke_early{false};
        c.register_handler("coop", [&](oc::task_context& ctx) {
            started.set_value();
            const auto t0 = steady::now();
            auto msgs = ctx.receive_for(5s);  // returns early, empty, on cancellation
            woke_early = msgs.empty() && steady::now() - t0 < 4s && ctx.cancellation_requested();
            return std::string("finished anyway");
        });
        auto r = c.submit_async("coop", "");
        REQUIRE(r);
        REQUIRE(started.get_future().wait_for(5s) == std::future_status::ready);
        CHECK(c.cancel(r.handle.id()));
        const auto done = r.handle.wait_for(3s);
        REQUIRE(done);
        CHECK(st(done) == "cancelled");
        CHECK(done->result.empty());
        CHECK(woke_early.load());
    }
}

TEST_CASE("coordinator: a handler ignoring cancellation is declared cancelled after cancel_grace; "
          "its late completion is refused",
          "[coordinator][cancel][fencing]") {
    auto o = fast_options(2, 2);
    o.cancel_grace = 100ms;
    gate g;
    recorder rec;
    std::promise<void> started;
    std::atomic<int> returned{0};
    oc::coordinator c{o};
    gate_guard guard{g};
    rec.attach(c);
    c.register_handler("stubborn", [&](oc::task_context&) {
        started.set_value();
        g.wait();
        ++returned;
        return std::string("late result");
    });
    auto r = c.submit_async("stubborn", "");
    REQUIRE(r);
    const auto id = r.handle.id();
    REQUIRE(started.get_future().wait_for(5s) == std::future_status::ready);
    CHECK(c.cancel(id));
    const auto done = r.handle.wait_for(3s);  // the handler is still blocked
    REQUIRE(done);
    CHECK(st(done) == "cancelled");
    CHECK_THAT(done->error, Catch::Contains("cancel_grace"));
    CHECK(returned.load() == 0);
    const auto refusals = c.get_stats().stale_token_refusals;

    g.open();
    REQUIRE(eventually([&] { return c.get_stats().stale_token_refusals > refusals; }));
    CHECK(returned.load() == 1);
    CHECK(st(c.get_status(id)) == "cancelled");
    CHECK_FALSE(c.get_result(id).has_value());
    // The counter is raised under the lock, the event published after it.
    CHECK(eventually([&] { return rec.count(oc::event_kind::stale_token_refused, id) == 1; }));
    CHECK(rec.count(oc::event_kind::task_cancelled, id) == 1);
    CHECK(rec.count(oc::event_kind::task_completed, id) == 0);
    // The worker slot the stubborn handler held is free again.
    CHECK(eventually([&] { return c.get_stats().running == 0; }));
}

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

// ---------------------------------------------------------------------------
// retries
// ---------------------------------------------------------------------------

TEST_CASE("coordinator: failed attempts are retried up to max_retries", "[coordinator][retry]") {
    recorder rec;
    oc::coordinator c{fast_options()};
    rec.attach(c);

    SECTION("two failures, then success") {
        std::atomic<int> calls{0};
        std::atomic<bool> attempt_numbers_ok{true};
        c.register_handler("flaky", [&](oc::task_context& ctx) {
            const int n = ++calls;
            if (ctx.attempt() != static_cast<std::uint32_t>(n)) attempt_numbers_ok = false;
            if (n <= 2) throw std::runtime_error("boom " + std::to_string(n));
            return std::string("ok");
        });
        auto r = c.submit_async("flaky", "", with_retries(3));
        REQUIRE(r);
        CHECK(r.handle.get() == "ok");
        const auto done = c.get_task(r.handle.id());
        REQUIRE(done);
        CHECK(done->retries == 2);
        CHECK(done->attempts == 3);
        CHECK(calls.load() == 3);
        CHECK(attempt_numbers_ok.load());
        CHECK(rec.count(oc::event_kind::task_retried, r.handle.id()) == 2);
        CHECK(rec.count(oc::event_kind::task_started, r.handle.id()) == 3);
        CHECK(c.get_stats().retried == 2);
    }

    SECTION("non_retryable_error fails after one attempt") {
        std::atomic<int> calls{0};
        c.register_handler("fatal", [&](oc::task_context&) -> std::string {
            ++calls;
            throw oc::non_retryable_error("fatal: bad input");
        });
        auto r = c.submit_async("fatal", "", with_retries(5));
        REQUIRE(r);
        const auto done = r.handle.wait_for(5s);
        REQUIRE(done);
        CHECK(st(done) == "failed");
        CHECK(done->error == "fatal: bad input");
        CHECK(done->attempts == 1);
        CHECK(done->retries == 0);
        CHECK(calls.load() == 1);
        CHECK(rec.count(oc::event_kind::task_retried, r.handle.id()) == 0);
        try {
            (void)r.handle.get();
            FAIL("expected task_failed_error");
        } catch (const oc::task_failed_error& e) {
            CHECK(e.record().status == oc::task_status::failed);
            CHECK_THAT(std::string(e.what()), Catch::Contains("fatal: bad input"));
        }
    }

    SECTION("retries exhausted: failed with the last error") {
        std::atomic<int> calls{0};
        c.register_handler("broken", [&](oc::task_context&) -> std::string {
            ++calls;
            throw std::runtime_error("always broken");
        });
        try {
            (void)c.submit("broken", "", with_retries(2));
            FAIL("expected task_failed_error");
        } catch (const oc::task_failed_error& e) {
            CHECK(e.code() == oc::errc::task_failed);
            CHECK(e.record().status == oc::task_status::failed);
            CHECK(e.record().error == "always broken");
            CHECK(e.record().attempts == 3);
            CHECK(e.record().retries == 2);
            CHECK_THAT(std::string(e.what()), Catch::Contains("always broken"));
        }
        CHECK(calls.load() == 3);
        CHECK(c.get_stats().failed == 1);
    }

    SECTION("non-standard exceptions fail the task too") {
        c.register_handler("weird", [](oc::task_context&) -> std::string { throw 42; });
        auto r = c.submit_async("weird", "", with_retries(0));
        REQUIRE(r);
        const auto done = r.handle.wait_for(5s);
        REQUIRE(done);
        CHECK(st(done) == "failed");
        CHECK(done->error == "unknown exception");
    }
}

TEST_CASE("coordinator: waiting for a worker consumes no retries and no turn timeout", "[coordinator][retry]") {
    gate g;
    std::atomic<int> started{0};
    oc::coordinator c{fast_options(1, 1)};
    gate_guard guard{g};
    c.register_handler("block", [&](oc::task_context&) {
        ++started;
        g.wait();
        return std::string();
    });
    c.register_handler("quick", [](oc::task_context&) { return std::string("quick"); });
    auto b = c.submit_async("block", "");
    REQUIRE(eventually([&] { return started.load() == 1; }));
    oc::task_options o;
    o.max_retries = 0;
    o.turn_timeout = 100ms;
    auto r = c.submit_async("quick", "", o);
    REQUIRE(r);
    std::this_thread::sleep_for(300ms);  // waits three times its turn timeout
    CHECK(st(c.get_status(r.handle.id())) == "queued");
    g.open();
    const auto done = r.handle.wait_for(5s);
    REQUIRE(done);
    CHECK(st(done) == "completed");
    CHECK(done->attempts == 1);
    CHECK(done->retries == 0);
}

// ---------------------------------------------------------------------------
// timeouts
// ---------------------------------------------------------------------------

TEST_CASE("coordinator: turn and task timeouts", "[coordinator][timeout]") {
    recorder rec;
    std::atomic<int> saw_cancel{0};
    oc::coordinator c{fast_options()};
    rec.attach(c);
    c.register_handler("hang", [&](oc::task_context& ctx) { return run_until_cancelled(ctx, saw_cancel); });
    c.register_handler("slow-then-fast", [&](oc::task_context& ctx) {
        if (ctx.attempt() == 1) return run_until_cancelled(ctx, saw_cancel);
        return std::string("fast");
    });

    SECTION("turn timeout without retries: timed_out, and the handler is asked to cancel") {
        oc::task_options o;
        o.turn_timeout = 50ms;
        o.max_retries = 0;
        auto r = c.submit_async("hang", "", o);
        REQUIRE(r);
        const auto done = r.handle.wait_for(3s);
        REQUIRE(done);
        CHECK(st(done) == "timed_out");
        CHECK(done->error == "turn timeout");
        CHECK(done->attempts == 1);
        REQUIRE(eventually([&] { return saw_cancel.load() == 1; }));
        // Its late return is refused, the record keeps its outcome.
        REQUIRE(eventually([&] { return c.get_stats().stale_token_refusals >= 1; }));
        CHECK(st(c.get_status(r.handle.id())) == "timed_out");
        CHECK_FALSE(c.get_result(r.handle.id()).has_value());
        CHECK(c.get_stats().timed_out == 1);
        CHECK(rec.count(oc::event_kind::task_timed_out, r.handle.id()) == 1);
        CHECK_THROWS_AS(r.handle.get(), oc::task_failed_error);
    }

    SECTION("turn timeout with retries: retried, then a fast attempt completes") {
        oc::task_options o;
        o.turn_timeout = 80ms;
        o.max_retries = 2;
        auto r = c.submit_async("slow-then-fast", "", o);
        REQUIRE(r);
        CHECK(r.handle.get() == "fast");
        const auto done = c.get_task(r.handle.id());
        CHECK(done->attempts == 2);
        CHECK(done->retries == 1);
        REQUIRE(eventually([&] { return saw_cancel.load() == 1; }));
        auto evs = rec.of(r.handle.id());
        const auto retried = std::count_if(evs.begin(), evs.end(), [](const oc::event& e) {
            return e.kind == oc::event_kind::task_retried && e.detail == "turn timeout";
        });
        CHECK(retried == 1);
    }

    SECTION("whole-task timeout while running: timed_out despite retries left") {
        oc::task_options o;
        o.timeout = 100ms;
        o.max_retries = 3;
        const auto t0 = steady::now();
        auto r = c.submit_async("hang", "", o);
        REQUIRE(r);
        const auto done = r.handle.wait_for(3s);
        REQUIRE(done);
        CHECK(st(done) == "timed_out");
        CHECK(done->error == "task timeout");
        CHECK(done->attempts == 1);
        CHECK(steady::now() - t0 >= 90ms);
        REQUIRE(eventually([&] { return saw_cancel.load() == 1; }));
    }
}

TEST_CASE("coordinator: whole-task timeout also runs while the task waits", "[coordinator][timeout]") {
    gate g;
    std::atomic<int> started{0};
    oc::coordinator c{fast_options(1, 1)};
    gate_guard guard{g};
    c.register_handler("block", [&](oc::task_context&) {
        ++started;
        g.wait();
        return std::string();
    });
    auto b = c.submit_async("block", "");
    REQUIRE(eventually([&] { return started.load() == 1; }));
    oc::task_options o;
    o.timeout = 50ms;
    auto r = c.submit_async("block", "", o);
    REQUIRE(r);
    const auto done = r.handle.wait_for(3s);
    REQUIRE(done);
    CHECK(st(done) == "timed_out");
    CHECK(done->attempts == 0);
    CHECK_THAT(done->error, Catch::Contains("task timeout"));
    g.open();
    REQUIRE(b.handle.wait_for(5s));
    CHECK(started.load() == 1);
}

TEST_CASE("coordinator: a retried attempt on the same worker keeps its own slot bookkeeping",
          "[coordinator][timeout][fencing]") {
    // One worker with two slots. Attempt 1 ignores its turn timeout and keeps
    // its slot; attempt 2 runs in the other slot. When attempt 1 finally
    // returns, attempt 2 must still be tracked as running on the worker (and
    // its own turn timeout must still be enforced).
    auto o = fast_options(1, 1);
    o.worker_template.max_concurrent = 2;
    gate first;
    std::atomic<int> second_started{0}, saw_cancel{0}, first_returned{0};
    oc::coordinator c{o};
    gate_guard guard{first};
    c.register_handler("t", [&](oc::task_context& ctx) {
        if (ctx.attempt() == 1) {
            first.wait();
            ++first_returned;
            return std::string("first");
        }
        ++second_started;
        return run_until_cancelled(ctx, saw_cancel);
    });
    oc::task_options to;
    to.turn_timeout = 300ms;
    to.max_retries = 1;
    auto r = c.submit_async("t", "", to);
    REQUIRE(r);
    const auto id = r.handle.id();
    REQUIRE(eventually([&] { return second_started.load() == 1; }, 3s));
    first.open();
    REQUIRE(eventually([&] { return first_returned.load() == 1 && c.get_stats().stale_token_refusals >= 1; }));
    CHECK(st(c.get_status(id)) == "running");
    const auto ws = c.get_workers();
    REQUIRE(ws.size() == 1);
    CHECK(ws[0].current_tasks == std::vector<std::string>{id});
    CHECK(c.get_stats().running == 1);

    const auto done = r.handle.wait_for(3s);
    REQUIRE(done);
    CHECK(st(done) == "timed_out");
    CHECK(done->attempts == 2);
    CHECK(eventually([&] { return saw_cancel.load() == 1; }));
    CHECK(eventually([&] { return c.get_stats().running == 0; }));
}

// ---------------------------------------------------------------------------
// health and fencing
// ---------------------------------------------------------------------------

// Submits a task of `type` (no retries), waits until its first attempt
// names its worker through `first_worker`, and silences that worker's
// heartbeats. Returns the submission and the silenced worker's id.
std::pair<oc::submit_result, std::string> submit_and_silence(oc::coordinator& c, const std::string& type,
                                                             std::promise<std::string>& first_worker) {
    auto r = c.submit_async(type, "", with_retries(0));
    REQUIRE(r);
    auto fw = first_worker.get_future();
    REQUIRE(fw.wait_for(5s) == std::future_status::ready);
    std::string dead = fw.get();
    c.suspend_heartbeats(dead);
    return {std::move(r), std::move(dead)};
}

TEST_CASE("coordinator: a silent worker is declared dead, its task re-runs elsewhere, the late result is refused",
          "[coordinator][health][fencing]") {
    auto o = fast_options(2, 2);
    o.worker_timeout = 200ms;
    gate g;
    recorder tasks_rec, workers_rec;
    std::promise<std::string> first_worker;
    std::atomic<int> first_returned{0};
    oc::coordinator c{o};
    gate_guard guard{g};
    tasks_rec.attach(c);
    workers_rec.attach(c, oc::event_channel::workers);
    c.register_handler("fragile", [&](oc::task_context& ctx) {
        if (ctx.attempt() == 1) {
            first_worker.set_value(ctx.worker_id());
            g.wait();
            ++first_returned;
            return std::string("first");
        }
        return "second@" + ctx.worker_id();
    });
    CHECK_THROWS_AS(c.suspend_heartbeats("no-such-worker"), oc::error);

    auto silenced = submit_and_silence(c, "fragile", first_worker);
    auto& r = silenced.first;
    const std::string dead = silenced.second;  // a plain variable: lambdas capture it
    const auto id = r.handle.id();

    const auto done = r.handle.wait_for(5s);
    REQUIRE(done);
    CHECK(st(done) == "completed");
    CHECK(done->attempts == 2);
    CHECK(done->worker_losses == 1);
    CHECK(done->retries == 0);  // a lost worker is not the task's failure
    REQUIRE_THAT(done->result, Catch::StartsWith("second@"));
    CHECK(done->result != "second@" + dead);

    CHECK(workers_rec.count_worker(oc::event_kind::worker_dead, dead) == 1);
    CHECK(tasks_rec.count(oc::event_kind::task_requeued, id) == 1);
    auto s = c.get_stats();
    CHECK(s.workers_died == 1);
    CHECK(s.requeued_after_worker_death == 1);
    // Replaced back to min_workers, without the dead one.
    REQUIRE(eventually([&] {
        auto ws = c.get_workers();
        return ws.size() == 2 &&
               std::none_of(ws.begin(), ws.end(), [&](const oc::worker_info& w) { return w.id == dead; });
    }));
    CHECK(c.get_stats().workers == 2);

    // The first attempt comes back: refused, the result stays the second's.
    const auto refusals = c.get_stats().stale_token_refusals;
    g.open();
    REQUIRE(eventually([&] { return first_returned.load() == 1; }));
    REQUIRE(eventually([&] { return c.get_stats().stale_token_refusals >= refusals + 1; }));
    CHECK(c.get_result(id) == done->result);
    CHECK(eventually([&] { return tasks_rec.count(oc::event_kind::stale_token_refused, id) >= 1; }));
    CHECK(tasks_rec.count(oc::event_kind::task_completed, id) == 1);
    CHECK(eventually([&] { return c.get_stats().running == 0; }));
}

TEST_CASE("coordinator: a worker declared dead that comes back is fenced off: heartbeat, progress, steering "
          "read and late failure are each refused and counted",
          "[coordinator][health][fencing]") {
    auto o = fast_options(2, 2);
    o.worker_timeout = 200ms;
    gate g;
    recorder tasks_rec, workers_rec;
    std::promise<std::string> first_worker;
    std::atomic<int> first_returned{0};
    std::atomic<bool> progress_refused{false}, read_refused{false};
    oc::coordinator c{o};
    gate_guard guard{g};
    tasks_rec.attach(c);
    workers_rec.attach(c, oc::event_channel::workers);
    c.register_handler("fragile", [&](oc::task_context& ctx) -> std::string {
        if (ctx.attempt() > 1) return "second";
        first_worker.set_value(ctx.worker_id());
        g.wait();
        // Back after being declared dead: every call of this attempt is refused.
        const auto before = c.get_stats().stale_token_refusals;
        ctx.report_progress(0.5, "late");
        progress_refused = c.get_stats().stale_token_refusals == before + 1;
        try {
            (void)ctx.receive();
        } catch (const oc::error& e) {
            read_refused = e.code() == oc::errc::stale_token;
        }
        ++first_returned;
        throw std::runtime_error("late failure");
    });
    auto silenced = submit_and_silence(c, "fragile", first_worker);
    auto& r = silenced.first;
    const std::string dead = silenced.second;  // a plain variable: lambdas capture it
    const auto id = r.handle.id();
    const auto done = r.handle.wait_for(5s);
    REQUIRE(done);
    REQUIRE(st(done) == "completed");
    REQUIRE(workers_rec.count_worker(oc::event_kind::worker_dead, dead) == 1);

    // The dead worker's heartbeat comes back: refused, counted, announced;
    // the worker stays dead (not listed, not replaced a second time).
    const auto before = c.get_stats().stale_token_refusals;
    c.resume_heartbeats(dead);
    REQUIRE(eventually([&] { return c.get_stats().stale_token_refusals >= before + 1; }));
    CHECK(eventually([&] { return tasks_rec.count_worker(oc::event_kind::stale_token_refused, dead) == 1; }));
    auto ws = c.get_workers();
    CHECK(std::none_of(ws.begin(), ws.end(), [&](const oc::worker_info& w) { return w.id == dead; }));
    CHECK(c.get_stats().workers_died == 1);
    CHECK_THROWS_AS(c.resume_heartbeats("no-such-worker"), oc::error);

    // The first attempt wakes: progress and steering read refused, then its
    // failure is refused too; the task stays completed by attempt 2.
    g.open();
    REQUIRE(eventually([&] { return first_returned.load() == 1; }));
    CHECK(progress_refused.load());
    CHECK(read_refused.load());
    REQUIRE(eventually([&] { return c.get_stats().stale_token_refusals >= before + 4; }));
    CHECK(st(c.get_task(id)) == "completed");
    CHECK(c.get_result(id) == "second");
    CHECK(c.get_stats().failed == 0);
    CHECK(eventually([&] { return tasks_rec.count(oc::event_kind::stale_token_refused, id) == 3; }));
    CHECK(tasks_rec.count(oc::event_kind::task_failed, id) == 0);
    CHECK(tasks_rec.count(oc::event_kind::task_completed, id) == 1);
}

TEST_CASE("coordinator: a worker that dies holding an already fenced attempt leaves a healthy re-run alone",
          "[coordinator][health][fencing]") {
    // Attempt 1 ignores its turn timeout on worker A (fenced, slot still held);
    // attempt 2 runs on worker B. A is then declared dead: only A's own
    // attempts may be affected, so attempt 2 must carry on undisturbed.
    auto o = fast_options(2, 2);
    o.worker_template.heartbeat_interval = 10ms;
    o.worker_timeout = 150ms;
    gate first, second;
    recorder workers_rec;
    std::promise<std::string> a_id, b_id;
    std::atomic<int> returned{0};
    oc::coordinator c{o};
    gate_guard guard1{first};
    gate_guard guard2{second};
    workers_rec.attach(c, oc::event_channel::workers);
    c.register_handler("t", [&](oc::task_context& ctx) {
        if (ctx.attempt() == 1) {
            a_id.set_value(ctx.worker_id());
            first.wait();
            ++returned;
            return std::string("first");
        }
        if (ctx.attempt() == 2) b_id.set_value(ctx.worker_id());
        second.wait();
        return "attempt " + std::to_string(ctx.attempt());
    });
    oc::task_options to;
    to.turn_timeout = 600ms;
    to.max_retries = 1;
    auto r = c.submit_async("t", "", to);
    REQUIRE(r);
    const auto id = r.handle.id();
    auto fa = a_id.get_future();
    auto fb = b_id.get_future();
    REQUIRE(fa.wait_for(5s) == std::future_status::ready);
    REQUIRE(fb.wait_for(5s) == std::future_status::ready);
    const auto a = fa.get();
    const auto b = fb.get();
    REQUIRE(a != b);
    c.suspend_heartbeats(a);
    REQUIRE(eventually([&] { return workers_rec.count_worker(oc::event_kind::worker_dead, a) == 1; }, 3s));

    auto mid = c.get_task(id);
    REQUIRE(mid);
    CHECK(st(mid) == "running");
    CHECK(mid->attempts == 2);
    CHECK(mid->worker_losses == 0);
    CHECK(mid->worker_id == b);

    second.open();
    const auto done = r.handle.wait_for(3s);
    REQUIRE(done);
    CHECK(st(done) == "completed");
    CHECK(done->result == "attempt 2");
    CHECK(done->attempts == 2);
    CHECK(done->worker_losses == 0);
    first.open();
    REQUIRE(eventually([&] { return returned.load() == 1; }));
    CHECK(eventually([&] { return c.get_stats().running == 0; }));
}

TEST_CASE("coordinator: a worker declared dead while its fenced attempt is stuck does not leak a running slot",
          "[coordinator][health][fencing]") {
    auto o = fast_options(2, 2);
    o.worker_template.heartbeat_interval = 10ms;
    o.worker_timeout = 150ms;
    gate g;
    recorder workers_rec;
    std::promise<std::string> wid;
    std::atomic<int> returned{0};
    oc::coordinator c{o};
    gate_guard guard{g};
    workers_rec.attach(c, oc::event_channel::workers);
    c.register_handler("stuck", [&](oc::task_context& ctx) {
        wid.set_value(ctx.worker_id());
        g.wait();
        ++returned;
        return std::string("late");
    });
    oc::task_options to;
    to.turn_timeout = 50ms;
    to.max_retries = 0;
    auto r = c.submit_async("stuck", "", to);
    REQUIRE(r);
    auto fw = wid.get_future();
    REQUIRE(fw.wait_for(5s) == std::future_status::ready);
    const auto w = fw.get();
    REQUIRE(st(r.handle.wait_for(3s)) == "timed_out");
    c.suspend_heartbeats(w);
    REQUIRE(eventually([&] { return workers_rec.count_worker(oc::event_kind::worker_dead, w) == 1; }, 3s));
    g.open();
    REQUIRE(eventually([&] { return returned.load() == 1; }));
    CHECK(eventually([&] { return c.get_stats().running == 0; }, 2s));
    // Nothing is running or waiting, so a graceful stop returns at once.
    const auto t0 = steady::now();
    CHECK(c.stop(oc::stop_mode::graceful, 5s));
    CHECK(steady::now() - t0 < 2s);
}

// ---------------------------------------------------------------------------
// stop
// ---------------------------------------------------------------------------

TEST_CASE("coordinator: graceful stop finishes in-flight tasks and then rejects new ones", "[coordinator][stop]") {
    std::atomic<int> done_count{0};
    recorder rec;
    oc::coordinator c{fast_options(2, 2)};
    rec.attach(c);
    c.register_handler("work", [&](oc::task_context& ctx) {
        std::this_thread::sleep_for(20ms);  // the work itself
        ++done_count;
        return ctx.payload();
    });
    std::vector<std::string> ids;
    for (int i = 0; i < 10; ++i) {
        auto r = c.submit_async("work", std::to_string(i));
        REQUIRE(r);
        ids.push_back(r.handle.id());
    }
    CHECK(c.stop(oc::stop_mode::graceful, 5s));
    CHECK(done_count.load() == 10);
    for (std::size_t i = 0; i < ids.size(); ++i) {
        CHECK(st(c.get_task(ids[i])) == "completed");
        CHECK(c.get_result(ids[i]) == std::to_string(i));
    }
    CHECK(c.get_stats().completed == 10);

    auto late = c.submit_async("work", "late");
    CHECK_FALSE(late.accepted());
    CHECK(late.admission.reason == oc::rejection_reason::closed);
    try {
        (void)c.submit("work", "late");
        FAIL("expected rejected_error");
    } catch (const oc::rejected_error& e) {
        CHECK(e.reason() == oc::rejection_reason::closed);
    }
    CHECK(c.post("work", "late").reason == oc::rejection_reason::closed);
    CHECK(c.stop());  // idempotent
    CHECK_THROWS_AS(c.scale(3), oc::shutdown_error);
    CHECK_THROWS_AS(c.add_worker({}), oc::shutdown_error);
    CHECK(rec.count(oc::event_kind::task_completed) == 10);
}

TEST_CASE("coordinator: stop(abort) cancels queued tasks at once and running ones cooperatively",
          "[coordinator][stop]") {
    std::atomic<int> started{0}, saw_cancel{0};
    recorder rec;
    oc::coordinator c{fast_options(1, 1)};
    rec.attach(c);
    c.register_handler("coop", [&](oc::task_context& ctx) {
        ++started;
        return run_until_cancelled(ctx, saw_cancel);
    });
    auto running = c.submit_async("coop", "");
    REQUIRE(eventually([&] { return started.load() == 1; }));
    std::vector<oc::task_handle> queued;
    for (int i = 0; i < 3; ++i) queued.push_back(c.submit_async("coop", "").handle);
    const auto t0 = steady::now();
    CHECK_FALSE(c.stop(oc::stop_mode::abort, 30s));
    CHECK(steady::now() - t0 < 2s);  // abort does not wait for the deadline
    CHECK(st(c.get_task(running.handle.id())) == "cancelled");
    CHECK(saw_cancel.load() == 1);
    for (auto& h : queued) {
        const auto r = c.get_task(h.id());
        CHECK(st(r) == "cancelled");
        CHECK(r->attempts == 0);
        CHECK(rec.count(oc::event_kind::task_cancelled, h.id()) == 1);
    }
    CHECK(started.load() == 1);
}

TEST_CASE("coordinator: graceful stop past its deadline cancels what is left", "[coordinator][stop]") {
    std::atomic<int> saw_cancel{0};
    oc::coordinator c{fast_options(1, 1)};
    c.register_handler("coop", [&](oc::task_context& ctx) { return run_until_cancelled(ctx, saw_cancel); });
    auto a = c.submit_async("coop", "");
    auto b = c.submit_async("coop", "");
    REQUIRE(eventually([&] { return st(c.get_status(a.handle.id())) == "running"; }));
    CHECK_FALSE(c.stop(oc::stop_mode::graceful, 50ms));
    CHECK(st(c.get_task(a.handle.id())) == "cancelled");
    CHECK(st(c.get_task(b.handle.id())) == "cancelled");
    CHECK(saw_cancel.load() == 1);
}

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

// ---------------------------------------------------------------------------
// TTL, post(), options
// ---------------------------------------------------------------------------

TEST_CASE("coordinator: finished tasks expire after their TTL", "[coordinator][ttl]") {
    auto o = fast_options();
    o.completed_ttl = 50ms;
    o.maintenance_interval = 10ms;
    recorder rec;
    oc::coordinator c{o};
    rec.attach(c);
    c.register_handler("ok", [](oc::task_context&) { return std::string("ok"); });
    c.register_handler("bad", [](oc::task_context&) -> std::string { throw std::runtime_error("bad"); });
    auto good = c.submit_async("ok", "");
    auto bad = c.submit_async("bad", "", with_retries(0));
    REQUIRE(good);
    REQUIRE(bad);
    REQUIRE(st(good.handle.wait_for(5s)) == "completed");
    REQUIRE(st(bad.handle.wait_for(5s)) == "failed");

    REQUIRE(eventually([&] { return !c.get_task(good.handle.id()).has_value(); }, 3s));
    CHECK_FALSE(c.get_result(good.handle.id()).has_value());
    CHECK(c.get_stats().expired == 1);
    // The event is published after the record is gone, outside the lock.
    CHECK(eventually([&] { return rec.count(oc::event_kind::task_expired, good.handle.id()) == 1; }, 3s));
    CHECK(st(c.get_task(bad.handle.id())) == "failed");  // failed_ttl is long
    CHECK(c.get_stats().tracked_tasks == 1);
    CHECK_THROWS_AS(good.handle.wait_for(0ms), oc::error);
    // The id is free again.
    CHECK(c.submit("ok", "", with_id(good.handle.id())) == "ok");
}

TEST_CASE("coordinator: each terminal status expires after its own TTL", "[coordinator][ttl]") {
    auto o = fast_options(1, 1);
    o.completed_ttl = std::chrono::hours(1);
    o.failed_ttl = 40ms;
    o.cancelled_ttl = 40ms;
    o.maintenance_interval = 10ms;
    recorder rec;
    oc::test::gate hold;
    oc::coordinator c{o};
    oc::test::gate_guard open_on_exit{hold};
    rec.attach(c);
    c.register_handler("ok", [](oc::task_context&) { return std::string("ok"); });
    c.register_handler("bad", [](oc::task_context&) -> std::string { throw std::runtime_error("bad"); });
    c.register_handler("hold", [&](oc::task_context&) {
        hold.wait();
        return std::string("held");
    });
    // The one worker is held, so this task is cancelled while queued.
    auto held = c.submit_async("hold", "");
    auto cancelled = c.submit_async("ok", "");
    REQUIRE(held);
    REQUIRE(cancelled);
    REQUIRE(c.cancel(cancelled.handle.id()));
    hold.open();
    REQUIRE(held.handle.get() == "held");
    auto good = c.submit_async("ok", "");
    auto bad = c.submit_async("bad", "", with_retries(0));
    REQUIRE(good);
    REQUIRE(bad);
    REQUIRE(st(good.handle.wait_for(5s)) == "completed");
    REQUIRE(st(bad.handle.wait_for(5s)) == "failed");

    REQUIRE(eventually([&] {
        return !c.get_task(bad.handle.id()).has_value() && !c.get_task(cancelled.handle.id()).has_value();
    }, 3s));
    CHECK(eventually([&] { return rec.count(oc::event_kind::task_expired) == 2; }, 3s));
    CHECK(rec.count(oc::event_kind::task_expired, bad.handle.id()) == 1);
    CHECK(rec.count(oc::event_kind::task_expired, cancelled.handle.id()) == 1);
    CHECK(c.get_stats().expired == 2);
    // completed_ttl is an hour: the completed task is still there.
    CHECK(st(c.get_task(good.handle.id())) == "completed");
    CHECK(st(c.get_task(held.handle.id())) == "completed");
    CHECK(c.get_result(good.handle.id()) == "ok");
    CHECK(c.get_stats().tracked_tasks == 2);
}

TEST_CASE("coordinator: post() failures are recorded and published, never swallowed", "[coordinator][post]") {
    std::promise<oc::event> failed;
    std::atomic<bool> once{false};
    oc::coordinator c{fast_options()};
    auto sub = c.events().subscribe(oc::event_channel::tasks, [&](const oc::event& e) {
        if (e.kind == oc::event_kind::task_failed && !once.exchange(true)) failed.set_value(e);
    });
    c.register_handler("explode", [](oc::task_context&) -> std::string { throw std::runtime_error("kaboom"); });
    const auto adm = c.post("explode", "", with_retries(0));
    REQUIRE(adm.accepted());
    REQUIRE(adm.id);
    auto f = failed.get_future();
    REQUIRE(f.wait_for(5s) == std::future_status::ready);
    const auto e = f.get();
    CHECK(e.task_id == *adm.id);
    CHECK(e.detail == "kaboom");
    CHECK(e.status == oc::task_status::failed);
    const auto rec = c.get_task(*adm.id);
    CHECK(st(rec) == "failed");
    CHECK(rec->error == "kaboom");
    CHECK(c.get_stats().failed == 1);
}

TEST_CASE("coordinator: options validation names the offending field", "[coordinator][options]") {
    auto field_of = [](oc::coordinator_options o) -> std::string {
        try {
            o.validate();
        } catch (const oc::invalid_argument& e) {
            return e.field();
        }
        return "<valid>";
    };
    CHECK(field_of(fast_options()) == "<valid>");
    auto o = fast_options();
    o.worker_timeout = o.worker_template.heartbeat_interval;
    CHECK(field_of(o) == "worker_timeout");
    o = fast_options();
    o.autoscale_interval = 0ms;
    CHECK(field_of(o) == "autoscale_interval");
    o = fast_options();
    o.maintenance_interval = -1ms;
    CHECK(field_of(o) == "maintenance_interval");
    o = fast_options();
    o.completed_ttl = 0ms;
    CHECK(field_of(o) == "completed_ttl");
    o = fast_options();
    o.cancel_grace = -1ms;
    CHECK(field_of(o) == "cancel_grace");
    o = fast_options();
    o.default_max_retries = 1001;
    CHECK(field_of(o) == "default_max_retries");
    o = fast_options(3, 2);
    CHECK(field_of(o) == "autoscale.min_workers");
    o = fast_options();
    o.default_backoff = {.base = 10ms, .cap = 5ms};
    CHECK(field_of(o) == "backoff.cap");
    o = fast_options();
    o.worker_template.max_concurrent = 0;
    CHECK(field_of(o) == "worker.max_concurrent");

    // The constructor validates.
    o = fast_options();
    o.worker_timeout = 1ms;
    CHECK_THROWS_AS(oc::coordinator{o}, oc::invalid_argument);

    // add_worker validates the worker's own options.
    oc::coordinator c{fast_options()};
    oc::worker_options wo;
    wo.max_concurrent = 0;
    try {
        (void)c.add_worker(wo);
        FAIL("expected invalid_argument");
    } catch (const oc::invalid_argument& e) {
        CHECK(e.field() == "worker.max_concurrent");
    }
    // A worker that would heartbeat less often than worker_timeout would
    // be declared dead over and over.
    wo = {};
    wo.heartbeat_interval = 5s;
    try {
        (void)c.add_worker(wo);
        FAIL("expected invalid_argument");
    } catch (const oc::invalid_argument& e) {
        CHECK(e.field() == "worker.heartbeat_interval");
    }
    CHECK(c.get_workers().size() == 2);
}

// ---------------------------------------------------------------------------
// distributed mode over the in-memory backends (the same scenarios run over
// Redis in tests/redis/distributed_test.cpp)
// ---------------------------------------------------------------------------

TEST_CASE("coordinator/distributed: tasks submitted on one node complete on another's workers",
          "[coordinator][distributed]") {
    oc::test::scenario_cross_node_completion(oc::test::memory_backend);
}

TEST_CASE("coordinator/distributed: a coroutine awaits tasks that run on another node",
          "[coordinator][distributed][async_wait]") {
    oc::test::scenario_async_wait_across_nodes(oc::test::memory_backend);
}

TEST_CASE("coordinator/distributed: a duplicate id is rejected across nodes", "[coordinator][distributed]") {
    oc::test::scenario_duplicate_id_across_nodes(oc::test::memory_backend);
}

TEST_CASE("coordinator/distributed: an expired lease is taken over by another node; the late result is refused",
          "[coordinator][distributed][fencing]") {
    oc::test::scenario_lease_takeover(oc::test::memory_backend);
}

TEST_CASE("coordinator/distributed: cancel reaches a waiting task and a task running on another node",
          "[coordinator][distributed][cancel]") {
    oc::test::scenario_cross_node_cancel(oc::test::memory_backend);
}

TEST_CASE("coordinator/distributed: steering from any node reaches the task in order, across turns",
          "[coordinator][distributed][steering]") {
    oc::test::scenario_cross_node_steering(oc::test::memory_backend);
}

TEST_CASE("coordinator/distributed: bulk submission decides each task as if alone; all accepted complete",
          "[coordinator][distributed][bulk]") {
    oc::test::scenario_bulk_submit(oc::test::memory_backend, 1024);
    oc::test::scenario_bulk_submit(
        [] {
            return oc::test::dist_backend{std::make_shared<oc::memory_transport>(oc::transport_options{.capacity = 100}),
                                          std::make_shared<oc::memory_task_store>(),
                                          std::make_shared<oc::memory_worker_registry>()};
        },
        100);
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

TEST_CASE("coordinator/distributed: a stopping node hands its running task back to the queue",
          "[coordinator][distributed][stop]") {
    oc::test::scenario_stop_hands_back(oc::test::memory_backend);
}

TEST_CASE("coordinator/distributed: retries, continuations, timeouts and tags across the shared queue",
          "[coordinator][distributed]") {
    auto b = oc::test::memory_backend();
    auto o = oc::test::node_options(b, 2, "n1");
    oc::coordinator n1{o};
    std::atomic<int> flaky_calls{0};
    n1.register_handler("flaky", [&](oc::task_context& ctx) -> std::string {
        if (++flaky_calls < 3) throw std::runtime_error("boom " + std::to_string(ctx.attempt()));
        return "ok after " + std::to_string(ctx.attempt());
    });
    n1.register_handler("never", [](oc::task_context&) -> std::string { throw oc::non_retryable_error("nope"); });
    n1.register_handler("turns", [](oc::task_context& ctx) -> std::string {
        if (ctx.turn() < 2) ctx.continue_later(1ms);
        return "turn " + std::to_string(ctx.turn());
    });
    n1.register_handler("slow", [](oc::task_context& ctx) -> std::string {
        while (!ctx.cancellation_requested()) std::this_thread::sleep_for(1ms);
        return "late";
    });

    auto flaky = n1.submit_async("flaky", "", with_retries(5));
    REQUIRE(flaky);
    auto f = flaky.handle.wait_for(10s);
    REQUIRE(f);
    CHECK(st(f) == "completed");
    CHECK(f->result == "ok after 3");
    CHECK(f->retries == 2);
    CHECK(f->attempts == 3);

    auto never = n1.submit_async("never", "");
    auto nv = never.handle.wait_for(10s);
    REQUIRE(nv);
    CHECK(st(nv) == "failed");
    CHECK(nv->error == "nope");
    CHECK_THROWS_AS(never.handle.get(), oc::task_failed_error);

    auto turns = n1.submit_async("turns", "");
    auto tr = turns.handle.wait_for(10s);
    REQUIRE(tr);
    CHECK(st(tr) == "completed");
    CHECK(tr->result == "turn 2");
    CHECK(tr->turns == 2);

    oc::task_options slow_o = with_retries(1);
    slow_o.turn_timeout = 50ms;
    auto slow = n1.submit_async("slow", "", slow_o);
    auto sl = slow.handle.wait_for(10s);
    REQUIRE(sl);
    CHECK(st(sl) == "timed_out");
    CHECK(sl->retries == 1);
    CHECK(sl->attempts == 2);

    // A tagged task waits for a node whose workers have the tag; n1 hands
    // it back each time it leases it.
    oc::task_options gpu;
    gpu.tags = {"gpu"};
    auto tagged = n1.submit_async("flaky", "", gpu);
    REQUIRE(tagged);
    std::this_thread::sleep_for(100ms);
    CHECK(n1.get_status(tagged.handle.id()) == oc::task_status::queued);
    auto o2 = oc::test::node_options(b, 0, "n2");
    oc::coordinator n2{o2};
    n2.register_handler("flaky", [](oc::task_context& ctx) { return "gpu@" + ctx.worker_id(); });
    oc::worker_options wo;
    wo.tags = {"gpu"};
    wo.heartbeat_interval = 20ms;
    (void)n2.add_worker(wo);
    auto tg = tagged.handle.wait_for(10s);
    REQUIRE(tg);
    CHECK(st(tg) == "completed");
    REQUIRE_THAT(tg->result, Catch::StartsWith("gpu@n2/"));
    CHECK(n1.get_stats().released >= 1);
}

TEST_CASE("coordinator/distributed: options validation", "[coordinator][distributed][options]") {
    auto b = oc::test::memory_backend();
    auto field_of = [](oc::coordinator_options o) -> std::string {
        try {
            o.validate();
        } catch (const oc::invalid_argument& e) {
            return e.field();
        }
        return "<valid>";
    };
    auto o = oc::test::node_options(b, 0, "p");
    CHECK(field_of(o) == "<valid>");  // producer-only node: 0 workers
    auto local = fast_options(0, 0);
    CHECK(field_of(local) == "autoscale.max_workers");  // only with a transport
    o = oc::test::node_options(b, 1, "p");
    o.scaling.max_workers = 0;
    CHECK(field_of(o) == "autoscale.min_workers");
    o = oc::test::node_options(b, 1, "p");
    o.lease_duration = 0ms;
    CHECK(field_of(o) == "lease_duration");
    o = oc::test::node_options(b, 1, "p");
    o.lease_renew_interval = o.lease_duration;
    CHECK(field_of(o) == "lease_renew_interval");
    o = oc::test::node_options(b, 1, "p");
    o.lease_batch = 0;
    CHECK(field_of(o) == "lease_batch");
    o = oc::test::node_options(b, 1, "p");
    o.policy = oc::queue_policy::priority;  // the transport's is reject_new
    CHECK(field_of(o) == "policy");
    o.policy = oc::queue_policy::fail_fast;
    CHECK(field_of(o) == "<valid>");

    // Generated node ids are distinct; local mode is "local".
    oc::coordinator l{fast_options(1, 1)};
    CHECK(l.node_id() == "local");
    auto g1 = oc::test::node_options(b, 0, "");
    oc::coordinator n1{g1}, n2{g1};
    CHECK(n1.node_id() != n2.node_id());
    CHECK_FALSE(n1.node_id().empty());
}
