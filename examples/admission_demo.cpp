// admission_demo: the four admission policies side by side, in memory.
//
// Each scenario fills a small queue past its capacity and prints what the
// queue decided for every task: accepted (with its position), evicted to
// make room, or rejected (with the reason and a retry-after hint).
#include <orchcore/orchcore.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

namespace oc = orchcore;
using namespace std::chrono_literals;

namespace {

const char* priority_name(int p) {
    switch (p) {
        case oc::priority::low: return "LOW";
        case oc::priority::normal: return "NORMAL";
        case oc::priority::high: return "HIGH";
        case oc::priority::critical: return "CRITICAL";
        default: return "custom";
    }
}

template <class Queue>
void offer(Queue& q, const std::string& id, int prio = oc::priority::normal) {
    auto r = q.try_push("payload of " + id, {.id = id, .priority = prio});
    if (r.accepted()) {
        std::printf("  %-8s %-8s -> accepted at position %zu", id.c_str(), priority_name(prio), r.position);
        if (r.evicted) std::printf(", evicted %s", r.evicted->id.c_str());
        std::printf("\n");
    } else {
        std::printf("  %-8s %-8s -> rejected: %s (%.*s), retry after %lld ms\n", id.c_str(), priority_name(prio),
                    std::string(oc::to_string(r.reason)).c_str(), static_cast<int>(r.detail.size()), r.detail.data(),
                    static_cast<long long>(r.retry_after.count()));
    }
}

template <class Queue>
void print_state(const Queue& q) {
    const auto m = q.metrics();
    std::printf("  queue now:");
    for (const auto& id : q.ids_in_dequeue_order()) std::printf(" %s", id.c_str());
    std::printf("\n  metrics: depth %zu/%zu, accepted %llu, rejected %llu (full %llu, invalid %llu, policy %llu), "
                "evicted %llu, dequeued %llu\n\n",
                m.depth, m.capacity, static_cast<unsigned long long>(m.accepted),
                static_cast<unsigned long long>(m.rejected_total()),
                static_cast<unsigned long long>(m.rejected(oc::rejection_reason::queue_full)),
                static_cast<unsigned long long>(m.rejected(oc::rejection_reason::invalid_request)),
                static_cast<unsigned long long>(m.rejected(oc::rejection_reason::policy_violation)),
                static_cast<unsigned long long>(m.evicted), static_cast<unsigned long long>(m.dequeued));
}

void reject_new() {
    std::printf("== reject-new (capacity 3): when full, the newcomer is turned away\n");
    oc::reject_new_queue<std::string, std::string> q{{.capacity = 3}};
    for (auto id : {"a", "b", "c", "d"}) offer(q, id);
    offer(q, "a");  // duplicate id
    // A consumer takes two tasks; the queue learns its dequeue rate, which
    // the retry-after hint is derived from.
    (void)q.try_pop();
    std::this_thread::sleep_for(20ms);
    (void)q.try_pop();
    offer(q, "e");
    offer(q, "f");
    offer(q, "g");
    print_state(q);
}

void drop_lru() {
    std::printf("== drop-lru (capacity 3): when full, the longest-waiting task of the lowest priority is evicted\n");
    oc::drop_lru_queue<std::string, std::string> q{
        {.capacity = 3}, [](const auto& e) { std::printf("  [eviction handler] tell the owner of %s\n", e.id.c_str()); }};
    offer(q, "a", oc::priority::high);
    offer(q, "b");
    offer(q, "c");
    offer(q, "d");  // evicts b: oldest among the lowest priority present (a is HIGH)
    offer(q, "e");  // evicts c
    print_state(q);
}

void fail_fast() {
    std::printf("== fail-fast: admitted only if a consumer is waiting to take it right now\n");
    oc::fail_fast_queue<std::string, std::string> q{{.capacity = 0}};
    offer(q, "a");  // nobody waiting
    std::thread consumer([&] {
        auto e = q.pop();
        std::printf("  consumer took %s (\"%s\")\n", e.id.c_str(), e.value.c_str());
    });
    while (q.waiting_consumers() == 0) std::this_thread::yield();
    offer(q, "b");  // handed straight to the waiting consumer
    consumer.join();
    offer(q, "c");  // the consumer is gone again
    print_state(q);
}

void priority() {
    std::printf("== priority (capacity 3): highest first, FIFO within a priority; a newcomer evicts only what it outranks\n");
    oc::priority_queue<std::string, std::string> q{{.capacity = 3}};
    offer(q, "a", oc::priority::low);
    offer(q, "b", oc::priority::normal);
    offer(q, "c", oc::priority::low);
    offer(q, "d", oc::priority::critical);  // evicts c: the newest LOW task
    offer(q, "e", oc::priority::low);       // outranks nothing: rejected
    offer(q, "f", 42);                      // priority out of range
    print_state(q);
    std::printf("  dequeue order:");
    while (auto e = q.try_pop()) std::printf(" %s(%s)", e->id.c_str(), priority_name(e->priority));
    std::printf("\n\n");
}

void runtime_choice() {
    std::printf("== choosing the policy from configuration at run time\n");
    for (const char* name : {"reject-new", "drop-lru", "priority", "lifo"}) {
        try {
            auto q = oc::make_admission_queue<int>(name, {.capacity = 1});
            q->try_push(1);
            auto r = q->try_push(2);
            std::printf("  %-10s second push into a full queue: %s\n", name,
                        r.accepted() ? (r.evicted ? "accepted, evicted the first" : "accepted")
                                     : std::string(oc::to_string(r.reason)).c_str());
        } catch (const oc::invalid_argument& e) {
            std::printf("  %-10s error: %s\n", name, e.what());
        }
    }
}

}  // namespace

int main() {
    std::printf("orchcore %s admission demo\n\n", oc::version_string);
    reject_new();
    drop_lru();
    fail_fast();
    priority();
    runtime_choice();
    return 0;
}
