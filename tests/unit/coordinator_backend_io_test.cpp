// Local mode with a user's store or registry: a slow or hanging backend
// call never holds the coordinator's lock, and the store sees each task's
// writes in the order the coordinator decided them.
#include "unit/coordinator_test_support.hpp"

namespace {

// Blocks the first armed call on a gate until the test opens it.
struct call_gate {
    std::atomic<bool> armed{false};
    std::atomic<bool> entered{false};
    gate g;
    void pass() {
        if (!armed.exchange(false)) return;
        entered = true;
        g.wait(30s);
    }
};

// A memory store whose updates can be held on a gate.
class gated_store final : public oc::task_store {
public:
    call_gate updates;
    bool create(const oc::task_record& r) override { return inner_.create(r); }
    std::optional<oc::task_record> get(const std::string& id) const override { return inner_.get(id); }
    bool update(const oc::task_record& r, oc::task_status expected) override {
        updates.pass();
        return inner_.update(r, expected);
    }
    bool erase(const std::string& id) override { return inner_.erase(id); }
    std::vector<oc::task_record> list(const oc::task_filter& f) const override { return inner_.list(f); }
    std::vector<std::string> expire(std::chrono::system_clock::time_point now, std::chrono::milliseconds done,
                                    std::chrono::milliseconds failed, std::chrono::milliseconds cancelled) override {
        return inner_.expire(now, done, failed, cancelled);
    }
    std::size_t size() const override { return inner_.size(); }

private:
    oc::memory_task_store inner_;
};

// A memory registry whose heartbeats can be held on a gate.
class gated_registry final : public oc::worker_registry {
public:
    call_gate beats;
    void upsert(const oc::worker_record& w) override { inner_.upsert(w); }
    bool heartbeat(const std::string& id, std::chrono::system_clock::time_point at) override {
        beats.pass();
        return inner_.heartbeat(id, at);
    }
    bool set_status(const std::string& id, oc::worker_status s) override { return inner_.set_status(id, s); }
    std::optional<oc::worker_record> get(const std::string& id) const override { return inner_.get(id); }
    std::vector<oc::worker_record> list(const oc::worker_filter& f) const override { return inner_.list(f); }
    std::vector<std::string> reap_stale(std::chrono::system_clock::time_point now,
                                        std::chrono::milliseconds timeout) override {
        return inner_.reap_stale(now, timeout);
    }
    bool remove(const std::string& id) override { return inner_.remove(id); }
    std::vector<std::string> purge_silent(std::chrono::system_clock::time_point now,
                                          std::chrono::milliseconds after) override {
        return inner_.purge_silent(now, after);
    }

private:
    oc::memory_worker_registry inner_;
};

// Calls that must not wait for a blocked backend call: each runs on its
// own thread and must finish within a generous bound.
bool others_proceed(oc::coordinator& c, const std::string& done_id, const std::string& new_id) {
    auto stats = std::async(std::launch::async, [&] { return c.get_stats().workers; });
    auto status = std::async(std::launch::async, [&] { return c.get_status(done_id); });
    auto submit = std::async(std::launch::async, [&] {
        oc::task_options o;
        o.id = new_id;
        return c.submit_async("echo", "x", o).admission.is_accepted;
    });
    const auto until = steady::now() + 15s;
    bool ok = stats.wait_until(until) == std::future_status::ready &&
              status.wait_until(until) == std::future_status::ready &&
              submit.wait_until(until) == std::future_status::ready;
    if (!ok) return false;
    ok = status.get() == oc::task_status::completed && submit.get();
    auto cancel = std::async(std::launch::async, [&] { return c.cancel(new_id); });
    if (cancel.wait_until(steady::now() + 15s) != std::future_status::ready) return false;
    (void)cancel.get();  // cancelled or already over, depending on a free worker
    return ok;
}

}  // namespace

TEST_CASE("a blocked store write holds no coordinator call", "[coordinator][store]") {
    auto store = std::make_shared<gated_store>();
    auto o = fast_options(1, 1);
    o.store = store;
    oc::coordinator c(o);
    c.register_handler("echo", [](oc::task_context& ctx) { return std::string(ctx.payload()); });
    oc::task_options done;
    done.id = "done";
    REQUIRE(c.submit("echo", "a", done) == "a");

    store->updates.armed = true;
    oc::task_options held;
    held.id = "held";
    auto submitted = std::async(std::launch::async, [&] { return c.submit_async("echo", "b", held); });
    const bool entered = eventually([&] { return store->updates.entered.load(); }, 15s);
    const bool proceeded = entered && others_proceed(c, "done", "other");
    store->updates.g.open();
    REQUIRE(entered);
    REQUIRE(proceeded);
    REQUIRE(submitted.get().admission.is_accepted);
    REQUIRE(c.wait_for("held", 30s).has_value());
    REQUIRE(eventually([&] { return st(store->get("held")) == "completed"; }, 15s));
}

TEST_CASE("a blocked registry call holds no coordinator call", "[coordinator][store]") {
    auto registry = std::make_shared<gated_registry>();
    auto o = fast_options(1, 1);
    o.worker_timeout = 60s;
    o.registry = registry;
    oc::coordinator c(o);
    c.register_handler("echo", [](oc::task_context& ctx) { return std::string(ctx.payload()); });
    oc::task_options done;
    done.id = "done";
    REQUIRE(c.submit("echo", "a", done) == "a");

    registry->beats.armed = true;  // the next heartbeat blocks
    const bool entered = eventually([&] { return registry->beats.entered.load(); }, 15s);
    const bool proceeded = entered && others_proceed(c, "done", "other");
    registry->beats.g.open();
    REQUIRE(entered);
    REQUIRE(proceeded);
}

namespace {

// A memory store that records every write, and checks each task's
// sequence: created first (queued), every update expecting the status the
// previous write left, nothing after a terminal status.
class recording_store final : public oc::task_store {
public:
    bool create(const oc::task_record& r) override {
        note(r.id, r.status, std::nullopt);
        return inner_.create(r);
    }
    std::optional<oc::task_record> get(const std::string& id) const override { return inner_.get(id); }
    bool update(const oc::task_record& r, oc::task_status expected) override {
        note(r.id, r.status, expected);
        return inner_.update(r, expected);
    }
    bool erase(const std::string& id) override { return inner_.erase(id); }
    std::vector<oc::task_record> list(const oc::task_filter& f) const override { return inner_.list(f); }
    std::vector<std::string> expire(std::chrono::system_clock::time_point now, std::chrono::milliseconds done,
                                    std::chrono::milliseconds failed, std::chrono::milliseconds cancelled) override {
        return inner_.expire(now, done, failed, cancelled);
    }
    std::size_t size() const override { return inner_.size(); }

    std::vector<std::string> faults() const {
        std::lock_guard lk(m_);
        return faults_;
    }
    std::optional<oc::task_status> last(const std::string& id) const {
        std::lock_guard lk(m_);
        auto it = last_.find(id);
        if (it == last_.end()) return std::nullopt;
        return it->second;
    }

private:
    void note(const std::string& id, oc::task_status s, std::optional<oc::task_status> expected) {
        std::lock_guard lk(m_);
        auto it = last_.find(id);
        if (!expected && it != last_.end()) faults_.push_back(id + ": created twice");
        if (!expected && s != oc::task_status::queued) faults_.push_back(id + ": created " + st(s));
        if (expected && it == last_.end()) faults_.push_back(id + ": updated before its create");
        if (expected && it != last_.end() && it->second != *expected)
            faults_.push_back(id + ": update expects " + st(expected) + " after " + st(it->second));
        if (expected && it != last_.end() && oc::is_terminal(it->second))
            faults_.push_back(id + ": written after its terminal " + st(it->second));
        last_[id] = s;
    }

    mutable std::mutex m_;
    std::map<std::string, oc::task_status> last_;
    std::vector<std::string> faults_;
    oc::memory_task_store inner_;
};

}  // namespace

TEST_CASE("the store sees each task's writes in order under concurrent submits", "[coordinator][store]") {
    auto store = std::make_shared<recording_store>();
    auto o = fast_options(2, 2);
    o.store = store;
    oc::coordinator c(o);
    // Every third task fails its first attempt and is retried.
    c.register_handler("work", [](oc::task_context& ctx) {
        if (ctx.payload() == "flaky" && ctx.attempt() == 1) throw std::runtime_error("first attempt fails");
        return std::string(ctx.payload());
    });
    constexpr int threads = 4, per_thread = 30;
    std::vector<std::string> ids;
    std::mutex ids_m;
    std::vector<std::thread> submitters;
    for (int th = 0; th < threads; ++th) {
        submitters.emplace_back([&, th] {
            for (int i = 0; i < per_thread; ++i) {
                auto r = c.submit_async("work", i % 3 == 0 ? "flaky" : "ok");
                if (!r.admission.is_accepted) continue;
                const std::string id = *r.admission.id;
                if (i % 5 == th % 5) (void)c.cancel(id);  // some are cancelled, queued or running
                std::lock_guard lk(ids_m);
                ids.push_back(id);
            }
        });
    }
    for (auto& t : submitters) t.join();
    REQUIRE_FALSE(ids.empty());
    for (const auto& id : ids) {
        REQUIRE(c.wait_for(id, 30s).has_value());
        const auto status = c.get_status(id);
        REQUIRE(status.has_value());
        REQUIRE(oc::is_terminal(*status));
        INFO(id);
        REQUIRE(eventually([&] { return store->last(id) == status; }, 15s));
    }
    INFO((store->faults().empty() ? std::string() : store->faults().front()));
    REQUIRE(store->faults().empty());
    REQUIRE(c.get_stats().store_conflicts == 0);
    REQUIRE(c.get_stats().retried > 0);
}
