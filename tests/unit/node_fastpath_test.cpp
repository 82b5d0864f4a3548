// The node engine on composed_node_backend over the memory backend: the
// distributed scenarios and the fast-path ones (node_fastpath_scenarios.hpp).
#include "unit/node_fastpath_scenarios.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <memory>

using namespace orchcore;

namespace {

test::dist_backend memory_fast() {
    auto b = test::memory_backend();
    b.nb = std::make_shared<composed_node_backend>(b.tp, b.store);
    return b;
}

}  // namespace

TEST_CASE("node fast path (memory): cross-node completion, async waits, duplicates", "[coordinator][node_fastpath]") {
    test::scenario_cross_node_completion(memory_fast);
    test::scenario_async_wait_across_nodes(memory_fast);
    test::scenario_duplicate_id_across_nodes(memory_fast);
}

TEST_CASE("node fast path (memory): lease takeover and fencing", "[coordinator][node_fastpath][fencing]") {
    test::scenario_lease_takeover(memory_fast);
}

TEST_CASE("node fast path (memory): cancel, steering, stop hand-back", "[coordinator][node_fastpath]") {
    test::scenario_cross_node_cancel(memory_fast);
    test::scenario_cross_node_steering(memory_fast);
    test::scenario_stop_hands_back(memory_fast);
}

TEST_CASE("node fast path (memory): bulk submission and many tasks through one node", "[coordinator][node_fastpath]") {
    test::scenario_bulk_submit(memory_fast, 1024);
    test::scenario_fastpath_throughput(memory_fast);
}

TEST_CASE("node fast path (memory): retries, turns, timeouts and tags", "[coordinator][node_fastpath]") {
    test::scenario_fastpath_lifecycle(memory_fast);
}

TEST_CASE("node fast path: node_backend must be built on the node's transport and store",
          "[coordinator][node_fastpath][options]") {
    auto b = memory_fast();
    auto o = test::node_options(b, 1, "n");
    o.store = std::make_shared<memory_task_store>();
    CHECK_THROWS_AS(coordinator{o}, invalid_argument);
    o = test::node_options(b, 1, "n");
    o.node->backend = std::make_shared<composed_node_backend>(std::make_shared<memory_transport>(), b.store);
    CHECK_THROWS_AS(coordinator{o}, invalid_argument);
    coordinator_options local;
    local.node = orchcore::node_options{.backend = b.nb};  // no transport
    CHECK_THROWS_AS(coordinator{local}, invalid_argument);
}

namespace {

// composed_node_backend that counts its calls.
class counting_node_backend final : public node_backend {
public:
    counting_node_backend(std::shared_ptr<orchcore::transport> t, std::shared_ptr<task_store> s) : inner_(t, s) {}
    std::vector<node_task> lease_and_start(const start_spec& s, std::size_t max, time_point now) override {
        ++calls;
        return inner_.lease_and_start(s, max, now);
    }
    node_batch finish_and_fetch(std::span<const node_outcome> o, const start_spec& s, std::size_t max,
                                time_point now) override {
        ++calls;
        return inner_.finish_and_fetch(o, s, max, now);
    }
    const std::shared_ptr<orchcore::transport>& transport() const noexcept override { return inner_.transport(); }
    const std::shared_ptr<task_store>& store() const noexcept override { return inner_.store(); }
    std::atomic<int> calls{0};

private:
    composed_node_backend inner_;
};

// memory_transport whose make_node_backend offers a counting_node_backend
// for one store (as redis_transport offers redis_node_backend).
class offering_transport final : public transport, public std::enable_shared_from_this<offering_transport> {
public:
    explicit offering_transport(std::shared_ptr<task_store> s) : store_(std::move(s)) {}
    std::shared_ptr<node_backend> make_node_backend(const std::shared_ptr<task_store>& s) override {
        if (s != store_) return nullptr;
        offered = std::make_shared<counting_node_backend>(shared_from_this(), s);
        return offered;
    }
    transport_admission admit(const transport_request& r) override { return m_.admit(r); }
    std::vector<transport_lease> lease(std::string_view w, std::size_t max, std::chrono::milliseconds d,
                                       time_point now) override {
        return m_.lease(w, max, d, now);
    }
    bool ack(const std::string& id, std::uint64_t t) override { return m_.ack(id, t); }
    bool nack(const std::string& id, std::uint64_t t, std::chrono::milliseconds d, time_point now) override {
        return m_.nack(id, t, d, now);
    }
    bool extend(const std::string& id, std::uint64_t t, std::chrono::milliseconds d, time_point now) override {
        return m_.extend(id, t, d, now);
    }
    bool cancel(const std::string& id) override { return m_.cancel(id); }
    std::vector<transport_lease> recover_expired(time_point now, std::size_t max) override {
        return m_.recover_expired(now, max);
    }
    bool wait_for_work(std::chrono::milliseconds timeout) override { return m_.wait_for_work(timeout); }
    void interrupt_waits() override { m_.interrupt_waits(); }
    std::size_t size_approx() override { return m_.size_approx(); }
    std::size_t leased_count() override { return m_.leased_count(); }
    transport_stats stats() override { return m_.stats(); }
    const transport_options& options() const noexcept override { return m_.options(); }

    std::shared_ptr<counting_node_backend> offered;

private:
    memory_transport m_;
    std::shared_ptr<task_store> store_;
};

}  // namespace

TEST_CASE("node fast path: a node uses the node_backend its transport offers unless one is given",
          "[coordinator][node_fastpath][options]") {
    auto store = std::make_shared<memory_task_store>();
    auto tp = std::make_shared<offering_transport>(store);
    test::dist_backend b{tp, store, std::make_shared<memory_worker_registry>()};
    {
        coordinator node{test::node_options(b, 1, "n")};
        node.register_handler("echo", [](task_context& ctx) { return ctx.payload(); });
        REQUIRE(tp->offered);
        const auto done = node.submit_async("echo", "x").handle.wait_for(std::chrono::seconds(30));
        REQUIRE(done);
        CHECK(done->result == "x");
        CHECK(tp->offered->calls > 0);
    }
    // An explicit node_backend wins: the transport's is not asked for.
    tp->offered.reset();
    b.nb = std::make_shared<composed_node_backend>(tp, store);
    coordinator node{test::node_options(b, 1, "n")};
    node.register_handler("echo", [](task_context& ctx) { return ctx.payload(); });
    const auto done = node.submit_async("echo", "y").handle.wait_for(std::chrono::seconds(30));
    REQUIRE(done);
    CHECK(done->result == "y");
    CHECK_FALSE(tp->offered);
}
