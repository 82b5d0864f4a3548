// Resources and placement: fits, holds and releases, best fit, impossible
// requests, session affinity.
#include <orchcore/workflow/placement.hpp>

#include <orchcore/error.hpp>

#include <catch2/catch.hpp>

#include <string>

namespace wf = orchcore::workflow;

namespace {

wf::resource_inventory machine(std::uint64_t cpu, std::uint64_t mem, std::vector<wf::gpu_device> gpus = {},
                               std::vector<std::string> labels = {}) {
    return {cpu, mem, std::move(gpus), std::move(labels)};
}

wf::resource_request ask(std::uint64_t cpu, std::uint64_t mem, wf::gpu_request gpu = {},
                         std::vector<std::string> labels = {}) {
    return {cpu, mem, std::move(gpu), std::move(labels)};
}

}  // namespace

TEST_CASE("fits compares CPU, memory, labels and GPUs matched by exact type and memory",
          "[workflow][placement]") {
    const auto box = machine(4000, 8192, {{"a100", 40000}, {"a100-80g", 80000}, {"t4", 16000}}, {"zone=eu", "ssd"});
    CHECK(wf::fits(box, ask(4000, 8192)));
    CHECK_FALSE(wf::fits(box, ask(4001, 1)));
    CHECK_FALSE(wf::fits(box, ask(1, 8193)));
    CHECK(wf::fits(box, ask(1, 1, {}, {"ssd"})));
    CHECK_FALSE(wf::fits(box, ask(1, 1, {}, {"ssd", "zone=us"})));
    CHECK(wf::fits(box, ask(0, 0, {1, "a100", 0})));
    CHECK_FALSE(wf::fits(box, ask(0, 0, {2, "a100", 0})));  // "a100-80g" is not an "a100"
    CHECK_FALSE(wf::fits(box, ask(0, 0, {1, "a10", 0})));   // no substring matching
    CHECK(wf::fits(box, ask(0, 0, {3, "", 0})));            // any type
    CHECK(wf::fits(box, ask(0, 0, {2, "", 30000})));
    CHECK_FALSE(wf::fits(box, ask(0, 0, {3, "", 30000})));
}

TEST_CASE("a worker holds resources up to its inventory and a release returns exactly the hold",
          "[workflow][placement]") {
    wf::worker_resources w(machine(4000, 1000, {{"t4", 16000}, {"t4", 8000}}));
    const auto a = w.hold(ask(3000, 600, {1, "t4", 10000}));
    REQUIRE(a);
    CHECK(w.held(*a) == wf::allocation{3000, 600, {0}});
    CHECK_FALSE(w.hold(ask(1001, 1)));
    CHECK_FALSE(w.hold(ask(0, 0, {1, "t4", 10000})));  // the 16 GB GPU is taken
    const auto b = w.hold(ask(1000, 400, {1, "t4", 0}));
    REQUIRE(b);
    CHECK(w.free() == machine(0, 0));
    CHECK(w.release(*a) == wf::allocation{3000, 600, {0}});
    CHECK_FALSE(w.release(*a));
    CHECK(w.free() == machine(3000, 600, {{"t4", 16000}}));
    CHECK(w.release(*b));
    CHECK(w.free() == w.inventory());
    CHECK(w.hold_count() == 0);
}

TEST_CASE("a worker takes the smallest matching GPUs, keeping large ones free", "[workflow][placement]") {
    wf::worker_resources w(machine(0, 0, {{"x", 80}, {"x", 20}, {"x", 40}}));
    const auto h = w.hold(ask(0, 0, {2, "x", 10}));
    REQUIRE(h);
    CHECK(w.held(*h)->gpu_indices == std::vector<std::size_t>{1, 2});
}

TEST_CASE("placement picks the best fit and rejects what no worker could ever hold", "[workflow][placement]") {
    wf::placement_table t;
    t.add_worker("big", machine(16000, 65536, {{"a100", 40000}}));
    t.add_worker("small", machine(2000, 4096));
    t.add_worker("medium", machine(8000, 16384));
    CHECK(t.place(ask(1000, 1024))->worker == "small");       // no spare GPU, least spare memory
    CHECK(t.place(ask(1000, 8192))->worker == "medium");
    CHECK(t.place(ask(1000, 0, {1, "a100", 0}))->worker == "big");
    CHECK_FALSE(t.place(ask(1000, 0, {1, "a100", 0})));       // busy now...
    CHECK(t.could_ever_place(ask(1000, 0, {1, "a100", 0})));  // ...but possible later
    CHECK_FALSE(t.could_ever_place(ask(1000, 0, {1, "h100", 0})));
    CHECK_FALSE(t.could_ever_place(ask(32000, 0)));
    CHECK_THROWS_AS(t.add_worker("small", machine(1, 1)), orchcore::invalid_argument);
    CHECK_THROWS_AS(t.add_worker("", machine(1, 1)), orchcore::invalid_argument);
}

TEST_CASE("a session stays on its worker while it lives and has room, and moves when it is gone",
          "[workflow][placement]") {
    wf::placement_table t;
    t.add_worker("w1", machine(2000, 1000));
    t.add_worker("w2", machine(2000, 1000));
    const auto first = t.place(ask(1000, 100), "sess-1");
    REQUIRE(first);
    const auto home = first->worker;
    const auto other = home == "w1" ? "w2" : "w1";
    CHECK(t.session_worker("sess-1") == home);
    CHECK(t.place(ask(1000, 100), "sess-1")->worker == home);
    const auto spill = t.place(ask(1000, 100), "sess-1");  // home is full
    REQUIRE(spill);
    CHECK(spill->worker == other);
    CHECK(t.session_worker("sess-1") == home);
    CHECK(t.release(*first));
    CHECK(t.place(ask(1000, 100), "sess-1")->worker == home);  // back home once there is room

    CHECK(t.remove_worker(home));
    CHECK_FALSE(t.session_worker("sess-1"));
    CHECK_FALSE(t.release(*first));
    CHECK(t.release(*spill));
    const auto moved = t.place(ask(1000, 100), "sess-1");
    REQUIRE(moved);
    CHECK(moved->worker == other);
    CHECK(t.session_worker("sess-1") == other);
}
