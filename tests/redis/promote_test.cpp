// coordinator::promote and transport::promote over Redis: the scenarios of
// tests/unit/promote_scenarios.hpp against the private redis-server of the
// test binary; and tasks delayed by a finish or a nack coming due for the
// node backend's leases.
#include <orchcore/redis/redis.hpp>

#include "redis/node_backend_support.hpp"
#include "redis/redis_server_fixture.hpp"
#include "unit/promote_scenarios.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace orchcore;
using namespace std::chrono_literals;

namespace {
test::dist_backend redis_backend() {
    auto client = orchcore::test::shared_redis_server().client("promote");
    return {std::make_shared<redis_transport>(client, "q"), std::make_shared<redis_task_store>(client, "q"),
            std::make_shared<redis_worker_registry>(client, "q")};
}
}  // namespace

TEST_CASE("redis/promote: a delayed task becomes waiting at once", "[redis][promote]") {
    test::scenario_transport_promote(redis_backend);
}

TEST_CASE("redis/promote: a task continued for an hour runs at once when promoted", "[redis][promote][distributed]") {
    auto b = redis_backend();
    coordinator c{test::node_options(b, 1, "n1")};
    test::scenario_coordinator_promote(c);
}

namespace {

struct delay_fixture {
    std::shared_ptr<redis_client> client = orchcore::test::shared_redis_server().client("due");
    std::shared_ptr<redis_transport> tp = std::make_shared<redis_transport>(client, "q");
    std::shared_ptr<redis_task_store> store = std::make_shared<redis_task_store>(client, "q");
    redis_node_backend nb{tp, store};
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now();
    start_spec spec = [] {
        start_spec s;
        s.worker = "w";
        return s;
    }();

    void submit(const std::string& id) { orchcore::test::create_and_admit(*store, *tp, id, now); }
    // Leases one task through the node backend at now + `at`: its id or "".
    std::string lease_at(std::chrono::milliseconds at) {
        const auto got = nb.lease_and_start(spec, 1, now + at);
        return got.empty() ? "" : got[0].lease.task_id;
    }
    // Runs task `id` again after `delay` through the node backend's finish,
    // at now + `at`.
    void nack_at(const node_task& t, std::chrono::milliseconds delay, std::chrono::milliseconds at) {
        auto rec = *t.record;
        rec.status = task_status::queued;
        const std::vector<node_outcome> outs{{rec, task_status::running, t.lease.token, delay}};
        REQUIRE(nb.finish_and_fetch(outs, spec, 0, now + at).settled ==
                std::vector<node_batch::fate>{node_batch::fate::recorded});
    }
};

}  // namespace

TEST_CASE("redis/promote: a task delayed by a finish comes due on time for the node backend",
          "[redis][promote][node_backend]") {
    delay_fixture f;
    f.submit("a");
    auto got = f.nb.lease_and_start(f.spec, 1, f.now);
    REQUIRE(got.size() == 1);
    f.nack_at(got[0], 500ms, 0ms);
    CHECK(f.lease_at(10ms).empty());
    CHECK(f.lease_at(499ms).empty());
    CHECK(f.lease_at(500ms) == "a");
}

TEST_CASE("redis/promote: a task delayed by the transport's nack comes due on time for the node backend",
          "[redis][promote][node_backend]") {
    delay_fixture f;
    f.submit("a");
    auto got = f.nb.lease_and_start(f.spec, 1, f.now);
    REQUIRE(got.size() == 1);
    REQUIRE(f.tp->nack("a", got[0].lease.token, 300ms, f.now + 2ms));
    CHECK(f.lease_at(3ms).empty());
    CHECK(f.lease_at(301ms).empty());
    CHECK(f.lease_at(302ms) == "a");
}

TEST_CASE("redis/promote: a task delayed for less than one delayed before it comes due first",
          "[redis][promote][node_backend]") {
    delay_fixture f;
    f.submit("late");
    f.submit("soon");
    auto late = f.nb.lease_and_start(f.spec, 1, f.now);
    REQUIRE(late.size() == 1);
    REQUIRE(late[0].lease.task_id == "late");
    f.nack_at(late[0], 10min, 0ms);
    auto soon = f.nb.lease_and_start(f.spec, 1, f.now + 1ms);
    REQUIRE(soon.size() == 1);
    REQUIRE(soon[0].lease.task_id == "soon");
    f.nack_at(soon[0], 50ms, 2ms);
    CHECK(f.lease_at(51ms).empty());
    CHECK(f.lease_at(52ms) == "soon");
    CHECK(f.lease_at(10min - 1ms).empty());
    CHECK(f.lease_at(10min) == "late");
}

TEST_CASE("redis/promote: a retry with a backoff runs on the node backend", "[redis][promote][distributed]") {
    auto client = orchcore::test::shared_redis_server().client("backoff");
    auto tp = std::make_shared<redis_transport>(client, "q");
    auto store = std::make_shared<redis_task_store>(client, "q");
    test::dist_backend b{tp, store, std::make_shared<redis_worker_registry>(client, "q"), tp->make_node_backend(store)};
    REQUIRE(b.nb);
    coordinator c{test::node_options(b, 1, "n1")};
    std::atomic<int> calls{0};
    c.register_handler("flaky", [&](task_context& ctx) -> std::string {
        if (++calls < 3) throw std::runtime_error("boom " + std::to_string(ctx.attempt()));
        return "ok after " + std::to_string(ctx.attempt());
    });
    task_options o;
    o.max_retries = 3;
    o.backoff = backoff_policy{.base = 200ms, .cap = 200ms, .jitter = false};
    const auto r = c.submit_async("flaky", "", o).handle.wait_for(20s);
    REQUIRE(r);
    CHECK(test::status_of(r) == "completed");
    CHECK(r->result == "ok after 3");
    CHECK(r->retries == 2);
}
