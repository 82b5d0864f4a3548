// The node engine on composed_node_backend over the memory backend: the
// distributed scenarios and the fast-path ones (node_fastpath_scenarios.hpp).
#include "unit/node_fastpath_scenarios.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

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

// A memory transport whose make_node_backend offers a counting_node_backend
// for one store (as redis_transport offers redis_node_backend).
// A transport that forwards every call to a memory_transport; the test
// transports below change one or two of them.
class forwarding_transport : public transport {
public:
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

protected:
    memory_transport m_;
};

class offering_transport final : public forwarding_transport,
                                 public std::enable_shared_from_this<offering_transport> {
public:
    explicit offering_transport(std::shared_ptr<task_store> s) : store_(std::move(s)) {}
    std::shared_ptr<node_backend> make_node_backend(const std::shared_ptr<task_store>& s) override {
        if (s != store_) return nullptr;
        offered = std::make_shared<counting_node_backend>(shared_from_this(), s);
        return offered;
    }

    std::shared_ptr<counting_node_backend> offered;

private:
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

namespace {

// memory_transport whose wait_for_work is edge-triggered, as Redis's wake
// tokens are: each admission leaves one token, a wait takes one or times
// out (counted), and a lease does not give tokens back.
class token_transport final : public forwarding_transport {
public:
    transport_admission admit(const transport_request& r) override {
        auto a = m_.admit(r);
        if (a.accepted()) {
            std::lock_guard lk(mu_);
            ++tokens_;
            cv_.notify_all();
        }
        return a;
    }
    bool wait_for_work(std::chrono::milliseconds timeout) override {
        std::unique_lock lk(mu_);
        ++blocked_;
        cv_.notify_all();
        const bool woken = cv_.wait_for(lk, timeout, [&] { return tokens_ > 0 || interrupted_; });
        --blocked_;
        if (!woken) {
            ++timeouts;
            return false;
        }
        if (tokens_ > 0) --tokens_;
        ++taken_;
        cv_.notify_all();
        return true;
    }
    void interrupt_waits() override {
        std::lock_guard lk(mu_);
        interrupted_ = true;
        cv_.notify_all();
    }
    // Waits until a consumer is blocked with no token left; the number of
    // tokens taken so far.
    std::size_t until_blocked_dry() {
        std::unique_lock lk(mu_);
        cv_.wait_for(lk, std::chrono::seconds(10), [&] { return blocked_ > 0 && tokens_ == 0; });
        return taken_;
    }
    // Waits until more than `taken` tokens were taken.
    bool until_taken(std::size_t taken) {
        std::unique_lock lk(mu_);
        return cv_.wait_for(lk, std::chrono::seconds(10), [&] { return taken_ > taken; });
    }

    std::atomic<int> timeouts{0};

private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::size_t tokens_ = 0, taken_ = 0, blocked_ = 0;
    bool interrupted_ = false;
};

// composed_node_backend whose next finish_and_fetch, once armed, does its
// work and then holds its reply until released: a reply still on the wire.
class held_reply_backend final : public node_backend {
public:
    held_reply_backend(std::shared_ptr<orchcore::transport> t, std::shared_ptr<task_store> s) : inner_(t, s) {}
    std::vector<node_task> lease_and_start(const start_spec& s, std::size_t max, time_point now) override {
        return inner_.lease_and_start(s, max, now);
    }
    node_batch finish_and_fetch(std::span<const node_outcome> o, const start_spec& s, std::size_t max,
                                time_point now) override {
        auto out = inner_.finish_and_fetch(o, s, max, now);
        std::unique_lock lk(mu_);
        if (armed_) {
            armed_ = false;
            holding_ = true;
            cv_.notify_all();
            cv_.wait_for(lk, std::chrono::seconds(10), [&] { return !holding_; });
        }
        return out;
    }
    const std::shared_ptr<orchcore::transport>& transport() const noexcept override { return inner_.transport(); }
    const std::shared_ptr<task_store>& store() const noexcept override { return inner_.store(); }

    void arm() {
        std::lock_guard lk(mu_);
        armed_ = true;
    }
    bool until_holding() {
        std::unique_lock lk(mu_);
        return cv_.wait_for(lk, std::chrono::seconds(10), [&] { return holding_; });
    }
    void release() {
        std::lock_guard lk(mu_);
        holding_ = false;
        cv_.notify_all();
    }

private:
    composed_node_backend inner_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool armed_ = false, holding_ = false;
};

}  // namespace

TEST_CASE("node fast path: a task admitted while a finish's reply is in flight starts without waiting out the idle wait",
          "[coordinator][node_fastpath][wakeup]") {
    // One worker of two slots (so a lease that gets one task leaves the
    // node waiting for work). Task a finishes; its finish_and_fetch found
    // nothing to fetch, and its reply is held. Task b is admitted and the
    // node's waiter takes b's wake token while every free slot is still
    // reserved by that call. When the reply arrives the node must lease
    // again, not wait for a token that was already taken.
    auto store = std::make_shared<memory_task_store>();
    auto tp = std::make_shared<token_transport>();
    auto nb = std::make_shared<held_reply_backend>(tp, store);
    test::dist_backend b{tp, store, std::make_shared<memory_worker_registry>(), nb};
    auto wo = test::node_options(b, 1, "workers");
    wo.worker_template.max_concurrent = 2;
    coordinator node{wo};
    std::atomic<int> timeouts_when_b_ran{-1};
    node.register_handler("a", [](task_context&) { return std::string{}; });
    node.register_handler("b", [&](task_context&) {
        timeouts_when_b_ran = tp->timeouts.load();
        return std::string{};
    });
    coordinator producer{test::node_options(b, 0, "producer")};

    nb->arm();
    auto a = producer.submit_async("a", "");
    REQUIRE(a);
    REQUIRE(nb->until_holding());
    const auto taken = tp->until_blocked_dry();
    const int timeouts_before = tp->timeouts.load();
    auto bsub = producer.submit_async("b", "");
    REQUIRE(bsub);
    REQUIRE(tp->until_taken(taken));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the woken lease finds no free slot
    nb->release();
    const auto done = bsub.handle.wait_for(std::chrono::seconds(30));
    REQUIRE(done);
    CHECK(done->status == task_status::completed);
    CHECK(timeouts_when_b_ran.load() == timeouts_before);
}
