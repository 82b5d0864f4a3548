// Local mode: coordinator::get_outcomes (how tasks ended, without the rest
// of their records), get_status, and watch_finished's notifications, which
// do not go through the event bus.
#include <orchcore/coordinator.hpp>
#include <orchcore/task_store.hpp>
#include <orchcore/transport.hpp>

#include <catch2/catch.hpp>

#include "distributed_scenarios.hpp"
#include "support/sync_helpers.hpp"

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace oc = orchcore;
using namespace std::chrono_literals;

namespace {

oc::coordinator_options one_worker() {
    oc::coordinator_options o;
    o.scaling.min_workers = 1;
    o.scaling.max_workers = 1;
    o.worker_template.max_concurrent = 1;
    o.default_max_retries = 0;
    return o;
}

void register_ops(oc::coordinator& c) {
    c.register_handler("ok", [](oc::task_context& ctx) { return "done:" + ctx.payload(); });
    c.register_handler("bad", [](oc::task_context&) -> std::string { throw oc::non_retryable_error("broken"); });
}

// On a coordinator of one worker: a task that holds the worker, and one
// queued behind it that is cancelled; returns once the first completed.
std::pair<oc::task_handle, oc::task_handle> hold_and_cancel_one(oc::coordinator& c) {
    auto release = std::make_shared<std::atomic<bool>>(false);
    c.register_handler("hold", [release](oc::task_context&) {
        while (!release->load()) std::this_thread::sleep_for(1ms);
        return std::string{};
    });
    auto held = c.submit_async("hold", "").handle;
    auto queued = c.submit_async("ok", "q").handle;  // waits behind `held`
    REQUIRE(c.cancel(queued.id()));
    release->store(true);
    (void)held.wait();
    return {std::move(held), std::move(queued)};
}

void check_same(const oc::task_outcome& o, const oc::task_record& r) {
    CHECK(o.status == r.status);
    CHECK(o.created_at == r.created_at);
    CHECK(o.started_at == r.started_at);
    CHECK(o.finished_at == r.finished_at);
    CHECK(o.result == r.result);
    CHECK(o.error == r.error);
}

void outcomes_match_records(oc::coordinator_options opts) {
    oc::coordinator c{std::move(opts)};
    register_ops(c);
    const auto good = c.submit_async("ok", "x").handle;
    const auto failed = c.submit_async("bad", "y").handle;
    (void)good.wait();
    (void)failed.wait();
    oc::task_options meta;
    meta.metadata["k"] = "v";
    const auto with_meta = c.submit_async("ok", "z", meta).handle;
    (void)with_meta.wait();

    const std::vector<std::string> ids{good.id(), "no-such-task", failed.id(), with_meta.id()};
    const auto outcomes = c.get_outcomes(ids);
    const auto records = c.get_tasks(ids);
    REQUIRE(outcomes.size() == ids.size());
    CHECK_FALSE(outcomes[1].has_value());
    for (const std::size_t i : {0u, 2u, 3u}) {
        REQUIRE(outcomes[i].has_value());
        REQUIRE(records[i].has_value());
        check_same(*outcomes[i], *records[i]);
    }
    CHECK(outcomes[0]->status == oc::task_status::completed);
    CHECK(outcomes[0]->result == "done:x");
    CHECK(outcomes[2]->status == oc::task_status::failed);
    CHECK(outcomes[2]->error == "broken");
    CHECK(c.get_status(good.id()) == oc::task_status::completed);
    CHECK(c.get_status(failed.id()) == oc::task_status::failed);
    CHECK_FALSE(c.get_status("no-such-task").has_value());
    c.stop(oc::stop_mode::graceful);
}

}  // namespace

TEST_CASE("get_outcomes: how each task ended, as its record says", "[coordinator][outcomes]") {
    SECTION("the built-in store") { outcomes_match_records(one_worker()); }
    SECTION("a store of the user's, written through") {
        auto o = one_worker();
        o.store = std::make_shared<oc::memory_task_store>();
        outcomes_match_records(std::move(o));
    }
}

TEST_CASE("get_outcomes: many ids at once, in order, some unknown", "[coordinator][outcomes]") {
    oc::coordinator c{one_worker()};
    register_ops(c);
    std::vector<std::string> ids;
    for (int i = 0; i < 200; ++i) {
        if (i % 7 == 3) {
            ids.push_back("unknown-" + std::to_string(i));
            continue;
        }
        ids.push_back(c.submit_async("ok", std::to_string(i)).handle.id());
    }
    for (const auto& id : ids)
        if (!id.starts_with("unknown-")) (void)c.wait_for(id, 10s);
    const auto outcomes = c.get_outcomes(ids);
    REQUIRE(outcomes.size() == ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
        if (ids[i].starts_with("unknown-")) {
            CHECK_FALSE(outcomes[i].has_value());
            continue;
        }
        REQUIRE(outcomes[i].has_value());
        CHECK(outcomes[i]->result == "done:" + std::to_string(i));
    }
    c.stop(oc::stop_mode::graceful);
}

TEST_CASE("watch_finished (local mode): every task that ends, once, with no event subscriber",
          "[coordinator][watch_finished]") {
    auto o = one_worker();
    o.queue.capacity = 16;
    oc::coordinator c{o};
    register_ops(c);
    std::mutex m;
    std::map<std::string, int> told;
    auto watch = c.watch_finished([&](const std::string& id) {
        std::lock_guard lk(m);
        ++told[id];
    });
    REQUIRE(watch);
    auto throwing = c.watch_finished([](const std::string&) { throw std::runtime_error("watcher failed"); });
    // An empty watcher would never be told anything: refused.
    CHECK_THROWS_AS(c.watch_finished({}), oc::invalid_argument);
    CHECK_THROWS_AS(c.watch_finished_many({}), oc::invalid_argument);

    const auto [held, queued] = hold_and_cancel_one(c);
    const auto good = c.submit_async("ok", "g").handle;
    const auto failed = c.submit_async("bad", "").handle;
    (void)good.wait();
    (void)failed.wait();
    // Without event subscribers a wait may return before the watchers were told.
    CHECK(oc::test::eventually([&] {
        std::lock_guard lk(m);
        return told.size() == 4;
    }));
    {
        std::lock_guard lk(m);
        CHECK(told == std::map<std::string, int>{{held.id(), 1}, {queued.id(), 1}, {good.id(), 1}, {failed.id(), 1}});
    }
    CHECK_FALSE(c.events().has_subscribers());

    watch.reset();
    (void)c.submit_async("ok", "after").handle.wait();
    {
        std::lock_guard lk(m);
        CHECK(told.size() == 4);
    }
    c.stop(oc::stop_mode::graceful);
}

TEST_CASE("watch_finished_many (local mode): the ids of the tasks that ended, in batches, each once",
          "[coordinator][watch_finished]") {
    auto o = one_worker();
    o.queue.capacity = 64;
    oc::coordinator c{o};
    register_ops(c);
    std::mutex m;
    std::map<std::string, int> told;
    std::vector<std::string> told_one_by_one;
    std::size_t calls = 0;
    auto watch = c.watch_finished_many([&](std::span<const std::string> ids) {
        std::lock_guard lk(m);
        CHECK_FALSE(ids.empty());
        ++calls;
        for (const auto& id : ids) ++told[id];
    });
    REQUIRE(watch);
    // A watcher of single ids that throws is still told every other id of a batch.
    auto throwing = c.watch_finished([&](const std::string& id) {
        {
            std::lock_guard lk(m);
            told_one_by_one.push_back(id);
        }
        throw std::runtime_error("watcher failed");
    });
    std::vector<oc::task_handle> handles;
    for (int i = 0; i < 20; ++i) handles.push_back(c.submit_async(i % 5 == 4 ? "bad" : "ok", std::to_string(i)).handle);
    for (const auto& h : handles) (void)h.wait();
    // Without event subscribers a wait may return before the watchers were told.
    REQUIRE(oc::test::eventually([&] {
        std::lock_guard lk(m);
        return told.size() == 20 && told_one_by_one.size() == 20;
    }));
    {
        std::lock_guard lk(m);
        for (const auto& h : handles) CHECK(told.at(h.id()) == 1);
        CHECK(calls >= 1);
        CHECK(calls <= 20);
        CHECK(told_one_by_one.size() == 20);
    }
    c.stop(oc::stop_mode::graceful);
}

TEST_CASE("watch_outcomes (local mode): every task that ends, once, with the outcome its record holds",
          "[coordinator][watch_finished]") {
    auto o = one_worker();
    o.queue.capacity = 64;
    oc::coordinator c{o};
    register_ops(c);
    std::mutex m;
    std::map<std::string, std::vector<oc::task_outcome>> told;
    auto watch = c.watch_outcomes([&](std::span<const oc::finished_task> ended) {
        std::lock_guard lk(m);
        CHECK_FALSE(ended.empty());
        for (const auto& f : ended) told[f.id].push_back(f.outcome);
    });
    REQUIRE(watch);
    // A watcher that throws does not keep the others from being told.
    auto throwing = c.watch_outcomes([](std::span<const oc::finished_task>) { throw std::runtime_error("failed"); });
    CHECK_THROWS_AS(c.watch_outcomes({}), oc::invalid_argument);

    const auto [held, queued] = hold_and_cancel_one(c);
    std::vector<oc::task_handle> handles;
    for (int i = 0; i < 20; ++i) handles.push_back(c.submit_async(i % 5 == 4 ? "bad" : "ok", std::to_string(i)).handle);
    for (const auto& h : handles) (void)h.wait();
    handles.push_back(held);
    handles.push_back(queued);
    REQUIRE(oc::test::eventually([&] {
        std::lock_guard lk(m);
        return told.size() == handles.size();
    }));
    std::lock_guard lk(m);
    for (const auto& h : handles) {
        const auto& notes = told.at(h.id());
        REQUIRE(notes.size() == 1);
        const auto rec = c.get_task(h.id());
        REQUIRE(rec);
        check_same(notes.front(), *rec);
    }
    CHECK(told.at(queued.id()).front().status == oc::task_status::cancelled);
    CHECK(told.at(handles[4].id()).front().status == oc::task_status::failed);
    CHECK(told.at(handles[4].id()).front().error == "broken");
    CHECK(told.at(handles[3].id()).front().result == "done:3");
    CHECK_FALSE(c.events().has_subscribers());
}

TEST_CASE("watch_outcomes: none in distributed mode, where tasks end on other nodes", "[coordinator][watch_finished]") {
    const auto b = oc::test::memory_backend();
    oc::coordinator c{oc::test::node_options(b, 1, "n1")};
    CHECK(c.watch_outcomes([](std::span<const oc::finished_task>) {}) == nullptr);
    c.stop(oc::stop_mode::graceful);
}
