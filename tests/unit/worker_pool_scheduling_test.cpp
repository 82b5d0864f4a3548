// worker_pool scheduling: which worker runs a posted callable. Parallelism is
// proven by rendezvous (each task waits, bounded, for the other to arrive),
// never by timing.
#include <orchcore/worker_pool.hpp>

#include "support/sync_helpers.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

namespace oc = orchcore;
using namespace std::chrono_literals;

namespace {

// Each arrival waits (bounded) until `expected` tasks have arrived: true if
// they all did, i.e. that many tasks were running at the same time.
class rendezvous {
public:
    explicit rendezvous(int expected) : expected_(expected) {}
    bool arrive_and_wait(std::chrono::milliseconds max = 10s) {
        std::unique_lock lk(m_);
        ++arrived_;
        cv_.notify_all();
        return cv_.wait_for(lk, max, [&] { return arrived_ >= expected_; });
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    int arrived_ = 0;
    const int expected_;
};

}  // namespace

TEST_CASE("worker_pool: two callables of different types posted in a row run at the same time on two workers",
          "[worker_pool][scheduling]") {
    rendezvous both(2);
    std::atomic<int> met{0};
    {
        oc::worker_pool pool{{.min_workers = 2, .max_workers = 2}};
        // Two distinct closure types: each must go to a different worker.
        pool.post([&] { met += both.arrive_and_wait() ? 1 : 0; });
        pool.post([&, unused = 0] {
            (void)unused;
            met += both.arrive_and_wait() ? 1 : 0;
        });
        pool.stop(oc::stop_mode::graceful);
    }
    CHECK(met.load() == 2);
}

TEST_CASE("worker_pool: a callable queued behind a long one runs on an idle worker", "[worker_pool][scheduling]") {
    oc::test::gate ran_behind;
    std::atomic<bool> long_saw_it{false};
    std::atomic<int> quick_done{0};
    {
        oc::worker_pool pool{{.min_workers = 2, .max_workers = 2}};
        oc::test::gate_guard open_on_exit{ran_behind};
        auto task = [&](int kind) {
            if (kind == 0) long_saw_it = ran_behind.wait();  // holds its worker until `behind` ran
            else if (kind == 1) ++quick_done;
            else ran_behind.open();
        };
        // One closure type throughout. The long task occupies one worker;
        // whichever worker the later posts land on, the last one must run
        // while the long task still waits for it.
        pool.post([&] { task(0); });
        for (int i = 0; i < 5; ++i) pool.post([&] { task(1); });
        pool.post([&] { task(2); });
        REQUIRE(oc::test::eventually([&] { return long_saw_it.load(); }, 15s));
        pool.stop(oc::stop_mode::graceful);
    }
    CHECK(long_saw_it.load());
    CHECK(quick_done.load() == 5);
}

TEST_CASE("worker_pool: a worker whose queue runs dry takes work queued on a busy one",
          "[worker_pool][scheduling]") {
    // Given to one worker directly, the second callable can only run
    // elsewhere if another worker takes it from that worker's queue.
    oc::test::gate released;
    std::atomic<bool> started{false};
    std::atomic<bool> long_saw_it{false};
    {
        oc::worker_pool pool{{.min_workers = 2, .max_workers = 2}};
        oc::test::gate_guard open_on_exit{released};
        auto ws = pool.workers();
        REQUIRE(ws.size() == 2u);
        ws[0]->post([&] {
            started = true;
            long_saw_it = released.wait();
        });
        REQUIRE(oc::test::eventually([&] { return started.load(); }, 15s));
        ws[0]->post([&] { released.open(); });  // queued behind the long one
        ws[1]->post([] {});                       // worker 1 runs, then looks for more
        REQUIRE(oc::test::eventually([&] { return long_saw_it.load(); }, 15s));
        pool.stop(oc::stop_mode::graceful);
        CHECK(pool.stats().completed == 3u);
        CHECK(ws[0]->completed() == 2u);  // counted where it was posted
    }
    CHECK(long_saw_it.load());
}
