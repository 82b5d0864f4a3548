// Property: whatever the workers' inventories and the tasks' resource
// requests, a coordinator runs a task only on a worker whose inventory
// covers its request, the requests of the attempts running at once on a
// worker never exceed its inventory, every task some worker could hold runs
// to completion, and every other one is refused at submission.
#include <orchcore/coordinator.hpp>

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace oc = orchcore;
using namespace std::chrono_literals;

namespace {

const std::vector<std::string> gpu_types{"a100", "a100-80g", "t4"};
const std::vector<std::string> label_pool{"ssd", "eu"};

rc::Gen<oc::resource_inventory> gen_inventory() {
    return rc::gen::exec([] {
        oc::resource_inventory inv;
        inv.cpu_millis = *rc::gen::inRange<std::uint64_t>(0, 5) * 1000;
        inv.memory_mb = *rc::gen::inRange<std::uint64_t>(0, 5) * 1000;
        const auto gpus = *rc::gen::inRange(0, 4);
        for (int i = 0; i < gpus; ++i)
            inv.gpus.push_back({*rc::gen::elementOf(gpu_types), *rc::gen::elementOf(std::vector<std::uint64_t>{16000, 40000, 80000})});
        for (const auto& l : label_pool)
            if (*rc::gen::arbitrary<bool>()) inv.labels.push_back(l);
        return inv;
    });
}

rc::Gen<oc::resource_request> gen_request() {
    return rc::gen::exec([] {
        oc::resource_request r;
        r.cpu_millis = *rc::gen::inRange<std::uint64_t>(0, 4) * 1000;
        r.memory_mb = *rc::gen::inRange<std::uint64_t>(0, 4) * 1000;
        r.gpu.count = *rc::gen::inRange<std::uint32_t>(0, 3);
        if (r.gpu.count > 0) {
            if (*rc::gen::arbitrary<bool>()) r.gpu.type = *rc::gen::elementOf(gpu_types);
            r.gpu.memory_mb = *rc::gen::elementOf(std::vector<std::uint64_t>{0, 20000, 60000});
        }
        if (*rc::gen::inRange(0, 4) == 0) r.labels.push_back(*rc::gen::elementOf(label_pool));
        return r;
    });
}

// What the handlers see: the requests running on each worker right now.
struct ledger {
    std::mutex m;
    std::map<std::string, oc::resource_inventory> inventory;
    std::map<std::string, std::vector<oc::resource_request>> running;
    std::vector<std::string> violations;

    void enter(const std::string& worker, const oc::resource_request& r) {
        std::lock_guard lk(m);
        const auto& inv = inventory.at(worker);
        if (!oc::fits(inv, r)) violations.push_back("runs where it does not fit: " + oc::to_string(r) + " on " + worker);
        auto& now = running[worker];
        now.push_back(r);
        std::uint64_t cpu = 0, mem = 0, gpus = 0;
        for (const auto& x : now) {
            cpu += x.cpu_millis;
            mem += x.memory_mb;
            gpus += x.gpu.count;
        }
        if (cpu > inv.cpu_millis || mem > inv.memory_mb || gpus > inv.gpus.size())
            violations.push_back("held exceeds the inventory of " + worker);
    }
    void leave(const std::string& worker, const oc::resource_request& r) {
        std::lock_guard lk(m);
        auto& now = running[worker];
        now.erase(std::find(now.begin(), now.end(), r));
    }
};

}  // namespace

TEST_CASE("placement property: fits, never over-held, every satisfiable task runs", "[prop][placement]") {
    rc::prop("placement through the coordinator", [] {
        const auto inventories = *rc::gen::container<std::vector<oc::resource_inventory>>(
            static_cast<std::size_t>(*rc::gen::inRange(1, 4)), gen_inventory());
        const auto requests = *rc::gen::container<std::vector<oc::resource_request>>(
            static_cast<std::size_t>(*rc::gen::inRange(1, 16)), gen_request());
        oc::coordinator_options o;
        o.scaling = {.min_workers = 0, .max_workers = 4};
        o.worker_template.heartbeat_interval = 20ms;
        o.worker_timeout = 5000ms;
        oc::coordinator c{o};
        ledger book;
        for (std::size_t i = 0; i < inventories.size(); ++i) {
            oc::worker_options w;
            w.id = "w" + std::to_string(i);
            w.max_concurrent = 1 + i % 3;
            w.heartbeat_interval = 20ms;
            w.resources = inventories[i];
            book.inventory[w.id] = inventories[i];
            c.add_worker(w);
        }
        std::map<std::string, oc::resource_request> asked;
        c.register_handler("t", [&](oc::task_context& ctx) {
            oc::resource_request r;
            {
                std::lock_guard lk(book.m);
                r = asked.at(ctx.id());
            }
            book.enter(ctx.worker_id(), r);
            std::this_thread::sleep_for(1ms);
            book.leave(ctx.worker_id(), r);
            return std::string("ok");
        });
        std::vector<oc::task_handle> admitted;
        for (std::size_t i = 0; i < requests.size(); ++i) {
            const auto& r = requests[i];
            const bool satisfiable = std::any_of(inventories.begin(), inventories.end(),
                                                 [&](const auto& inv) { return oc::fits(inv, r); });
            oc::task_options t;
            t.id = "t" + std::to_string(i);
            t.resources = r;
            {
                std::lock_guard lk(book.m);
                asked[*t.id] = r;
            }
            try {
                auto s = c.submit_async("t", "", t);
                RC_ASSERT(s.accepted());
                RC_ASSERT(satisfiable);
                admitted.push_back(s.handle);
            } catch (const oc::unplaceable_error&) {
                RC_ASSERT(!satisfiable);
            }
        }
        for (auto& h : admitted) {
            const auto rec = h.wait_for(20s);
            RC_ASSERT(rec.has_value());
            RC_ASSERT(rec->status == oc::task_status::completed);
        }
        c.stop();
        std::lock_guard lk(book.m);
        RC_ASSERT(book.violations.empty());
    });
}
