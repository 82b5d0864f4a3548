// Throughput of orchcore::admission_queue against peer bounded MPMC queues.
//
// Workload (identical for every queue): capacity 1024, payload a 64-bit
// integer; each benchmark iteration moves kItemsPerIteration items from P
// producers to C consumers (1x1 and 2x2) and ends when every item has been
// consumed (or, for drop-lru, evicted). Reported: items/s (real time) that
// reached a consumer (evicted items do not count).
//
// Harness: one generic harness, templated on an adapter with
//   bool          try_push(std::uint64_t)   // non-blocking; false = retry
//   std::uint64_t pop()                      // the queue's blocking pop, or
//                                            // try-pop + the common backoff
//   std::uint64_t lost() const               // cumulative evictions
// Producer and consumer threads are persistent for one benchmark run and are
// released/collected per iteration by two std::barriers, so thread creation
// is never timed. A producer that finds the queue full (or, for fail-fast, no
// waiting consumer) retries with the same backoff for every queue: a few
// exponentially growing rounds of cpu pause, then std::this_thread::yield.
//
// End of stream: each consumer publishes its running count in its own cache
// line (a plain relaxed store, no shared read-modify-write). The last
// producer to finish its share polls (sleeping ~20us between polls; at most
// ~1024 items are still queued then) until consumed + evicted reaches N, and
// only then pushes one poison value per consumer. Because every real item is
// gone by then, a poison can neither overtake a real item (which matters for
// moodycamel, which is not FIFO across producers) nor be evicted (drop-lru),
// and a consumer blocked in pop() is always woken. A consumer stops at the
// first poison it takes, so each one takes exactly one. The polling adds at
// most one poll interval per iteration, equally for all. The main thread
// stays blocked in the barrier during an iteration: a periodically waking
// poller would preempt workers on a small machine (lock-holder preemption).
//
// Every consumer uses the queue's own blocking pop where it has one, so each
// queue waits with its own strategy: orchcore's pop() polls briefly (a few
// pauses, then a few yields), then sleeps on a futex (reject-new: the ring's
// wake-up word; the locked policies: a handoff record);
// TBB's pop() spins/yields briefly, then sleeps; moodycamel's wait_dequeue
// spins on its lightweight semaphore, then sleeps; the mutex baseline sleeps
// on its condition variable at once.
//
// Queues:
//   Orchcore{RejectNew,DropLru,Priority,FailFast}: admission_queue<uint64_t,P>,
//     try_push at priority normal (generated ids) + pop(). drop-lru evicts when full: evicted
//     items end the iteration like consumed ones (termination reads
//     metrics().evicted) but do not count in items/s; the evicted share is
//     reported as the counter evicted_pct. With equal
//     priorities a full priority queue rejects (the newcomer does not
//     outrank), so it behaves like reject-new. fail-fast admits only while a
//     consumer is blocked in pop(); producers retry on policy_violation.
//   OrchcoreAnyRejectNew: make_admission_queue<uint64_t>("reject-new"), i.e.
//     the type-erased any_admission_queue (one virtual call per operation).
//   TbbBoundedQueue: tbb::concurrent_bounded_queue, set_capacity(1024),
//     try_push + blocking pop.
//   BoostLockfreeQueue: boost::lockfree::queue<uint64_t, capacity<1024>>
//     (fixed-size, holds exactly 1024); push and pop are both non-blocking,
//     so the consumer retries pop with the common backoff.
//   MoodycamelBlockingQueue: moodycamel::BlockingConcurrentQueue (unbounded;
//     implicit producers, no tokens; constructed with 1024 slots
//     preallocated). Bounded for fairness by a check `size_approx() < 1024`
//     before enqueue: the bound is approximate (concurrent producers may
//     overshoot by at most P-1 items), which slightly favours it.
//     Consumers use wait_dequeue.
//   MutexCvDeque: textbook baseline, std::mutex + std::condition_variable +
//     std::deque bounded at 1024; try_push returns false when full and calls
//     notify_one (after unlocking) on every successful push; pop waits on
//     the condition variable.
//   Orchcore{RejectNew,DropLru,Priority}NoWaitTimes: the same with
//     queue_options::wait_time_metrics = false (no clock read per operation).
//   AtomicQueue: atomic_queue::AtomicQueue<uint64_t, 1024> (fixed-size,
//     lock-free; no blocking pop). Built when its headers are found (Debian:
//     libatomic-queue-dev, see scripts/install-deps.sh); skipped otherwise.
//   MutexDequeDropOldest: std::mutex + std::deque; a full queue drops its
//     oldest item (the drop-lru peer; dropped items count as evicted).
//   MutexPriorityQueue: std::mutex + std::priority_queue by (priority,
//     admission order), rejecting when full (the priority peer: with equal
//     priorities orchcore's priority policy rejects when full too).
//
// Two consumer modes, each config run in both:
//   BM_Transfer<...>     consumers use the queue's blocking pop (above);
//   BM_TransferTry<...>  consumers call try_pop and retry with the common
//                        backoff ("try ops": try_push + try_pop everywhere).
// And BM_PushPop<...>: one thread, try_push then try_pop, for every try-ops
// queue (the cost of the operations themselves, deterministic).
//
// Correctness checks: for runs without evictions the sum of consumed values
// must equal the sum of produced values; a mismatch (or over-count) fails the
// benchmark with SkipWithError.
//
// Run (see bench/README.md):
//   orchcore_bench_admission_queue --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true --benchmark_format=json > out.json
//   python3 bench/ratios.py out.json
#include <orchcore/admission_queue.hpp>
#include <orchcore/any_admission_queue.hpp>
#include <orchcore/detail/spin.hpp>

#include <benchmark/benchmark.h>
#include <boost/lockfree/queue.hpp>
#include <concurrentqueue/blockingconcurrentqueue.h>
#include <tbb/concurrent_queue.h>
#if ORCHCORE_BENCH_HAVE_ATOMIC_QUEUE
#include <atomic_queue/atomic_queue.h>
#endif

#include <atomic>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

constexpr std::size_t kCapacity = 1024;
constexpr std::uint64_t kItemsPerIteration = 100'000;
constexpr std::uint64_t kPoison = ~std::uint64_t{0};  // real items are 1..N


/// The one retry policy used by every producer on a full queue and by
/// consumers of queues without a blocking pop: 1, 2, 4, ..., 32 pauses
/// (63 in all), then yield on every further try.
class backoff {
public:
    void pause() noexcept {
        if (round_ < kSpinRounds) {
            for (unsigned i = 0; i < (1u << round_); ++i) orchcore::detail::cpu_relax();
            ++round_;
        } else {
            std::this_thread::yield();
        }
    }

private:
    static constexpr unsigned kSpinRounds = 6;
    unsigned round_ = 0;
};

// ---------------------------------------------------------------------------
// Adapters

template <class Policy, bool WaitTimes = true>
class orchcore_adapter {
public:
    static constexpr bool may_evict = Policy::on_full != orchcore::policy::when_full::reject;
    bool try_push(std::uint64_t v) { return q_.try_push(std::uint64_t{v}).accepted(); }
    std::uint64_t pop() { return q_.pop().value; }
    bool try_pop(std::uint64_t& v) {
        auto e = q_.try_pop();
        if (e) v = e->value;
        return e.has_value();
    }
    std::uint64_t lost() const {
        if constexpr (may_evict) return q_.metrics().evicted;
        else return 0;
    }

private:
    orchcore::admission_queue<std::uint64_t, Policy> q_{
        orchcore::queue_options{.capacity = kCapacity, .wait_time_metrics = WaitTimes}};
};

struct OrchcoreRejectNew : orchcore_adapter<orchcore::policy::reject_new> {
    static constexpr const char* name = "OrchcoreRejectNew";
};
struct OrchcoreRejectNewNoWaitTimes : orchcore_adapter<orchcore::policy::reject_new, false> {
    static constexpr const char* name = "OrchcoreRejectNewNoWaitTimes";
};
struct OrchcoreDropLru : orchcore_adapter<orchcore::policy::drop_lru> {
    static constexpr const char* name = "OrchcoreDropLru";
};
struct OrchcorePriority : orchcore_adapter<orchcore::policy::priority> {
    static constexpr const char* name = "OrchcorePriority";
};
struct OrchcoreDropLruNoWaitTimes : orchcore_adapter<orchcore::policy::drop_lru, false> {
    static constexpr const char* name = "OrchcoreDropLruNoWaitTimes";
};
struct OrchcorePriorityNoWaitTimes : orchcore_adapter<orchcore::policy::priority, false> {
    static constexpr const char* name = "OrchcorePriorityNoWaitTimes";
};
struct OrchcoreFailFast : orchcore_adapter<orchcore::policy::fail_fast> {
    static constexpr const char* name = "OrchcoreFailFast";
};

class OrchcoreAnyRejectNew {
public:
    static constexpr const char* name = "OrchcoreAnyRejectNew";
    bool try_push(std::uint64_t v) { return q_->try_push(std::uint64_t{v}).accepted(); }
    std::uint64_t pop() { return q_->pop().value; }
    bool try_pop(std::uint64_t& v) {
        auto e = q_->try_pop();
        if (e) v = e->value;
        return e.has_value();
    }
    std::uint64_t lost() const { return 0; }

private:
    std::unique_ptr<orchcore::any_admission_queue<std::uint64_t>> q_ =
        orchcore::make_admission_queue<std::uint64_t>("reject-new", orchcore::queue_options{.capacity = kCapacity});
};

class TbbBoundedQueue {
public:
    static constexpr const char* name = "TbbBoundedQueue";
    TbbBoundedQueue() { q_.set_capacity(static_cast<std::ptrdiff_t>(kCapacity)); }
    bool try_push(std::uint64_t v) { return q_.try_push(v); }
    std::uint64_t pop() {
        std::uint64_t v = 0;
        q_.pop(v);
        return v;
    }
    bool try_pop(std::uint64_t& v) { return q_.try_pop(v); }
    std::uint64_t lost() const { return 0; }

private:
    tbb::concurrent_bounded_queue<std::uint64_t> q_;
};

class BoostLockfreeQueue {
public:
    static constexpr const char* name = "BoostLockfreeQueue";
    bool try_push(std::uint64_t v) { return q_.push(v); }  // fixed-size: false when full
    std::uint64_t pop() {
        std::uint64_t v = 0;
        for (backoff b; !q_.pop(v);) b.pause();
        return v;
    }
    bool try_pop(std::uint64_t& v) { return q_.pop(v); }
    std::uint64_t lost() const { return 0; }

private:
    boost::lockfree::queue<std::uint64_t, boost::lockfree::capacity<kCapacity>> q_;
};

class MoodycamelBlockingQueue {
public:
    static constexpr const char* name = "MoodycamelBlockingQueue";
    bool try_push(std::uint64_t v) {
        if (q_.size_approx() >= kCapacity) return false;  // approximate bound, see the header
        return q_.enqueue(v);
    }
    std::uint64_t pop() {
        std::uint64_t v = 0;
        q_.wait_dequeue(v);
        return v;
    }
    bool try_pop(std::uint64_t& v) { return q_.try_dequeue(v); }
    std::uint64_t lost() const { return 0; }

private:
    moodycamel::BlockingConcurrentQueue<std::uint64_t> q_{kCapacity};
};

class MutexCvDeque {
public:
    static constexpr const char* name = "MutexCvDeque";
    bool try_push(std::uint64_t v) {
        {
            std::lock_guard<std::mutex> lock(m_);
            if (d_.size() >= kCapacity) return false;
            d_.push_back(v);
        }
        cv_.notify_one();
        return true;
    }
    std::uint64_t pop() {
        std::unique_lock<std::mutex> lock(m_);
        cv_.wait(lock, [this] { return !d_.empty(); });
        const std::uint64_t v = d_.front();
        d_.pop_front();
        return v;
    }
    bool try_pop(std::uint64_t& v) {
        std::lock_guard<std::mutex> lock(m_);
        if (d_.empty()) return false;
        v = d_.front();
        d_.pop_front();
        return true;
    }
    std::uint64_t lost() const { return 0; }

private:
    std::mutex m_;
    std::condition_variable cv_;
    std::deque<std::uint64_t> d_;
};

/// Drop-oldest peer of drop-lru: std::mutex + std::deque; a push on a full
/// queue drops the front (the least recently admitted) and counts it.
class MutexDequeDropOldest {
public:
    static constexpr const char* name = "MutexDequeDropOldest";
    static constexpr bool may_evict = true;
    bool try_push(std::uint64_t v) {
        std::lock_guard<std::mutex> lock(m_);
        if (d_.size() >= kCapacity) {
            d_.pop_front();
            lost_.store(lost_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        }
        d_.push_back(v);
        return true;
    }
    bool try_pop(std::uint64_t& v) {
        std::lock_guard<std::mutex> lock(m_);
        if (d_.empty()) return false;
        v = d_.front();
        d_.pop_front();
        return true;
    }
    std::uint64_t pop() {
        std::uint64_t v = 0;
        for (backoff b; !try_pop(v);) b.pause();
        return v;
    }
    std::uint64_t lost() const { return lost_.load(std::memory_order_relaxed); }

private:
    std::mutex m_;
    std::deque<std::uint64_t> d_;
    std::atomic<std::uint64_t> lost_{0};
};

/// Priority peer: std::mutex + std::priority_queue ordered by (priority,
/// admission order). Every item here has the same priority, and a full
/// priority queue rejects a newcomer that does not outrank anything, so it
/// rejects when full, as orchcore's priority policy does on this workload.
class MutexPriorityQueue {
public:
    static constexpr const char* name = "MutexPriorityQueue";
    bool try_push(std::uint64_t v) {
        std::lock_guard<std::mutex> lock(m_);
        if (q_.size() >= kCapacity) return false;
        q_.push(item{orchcore::priority::normal, ++seq_, v});
        return true;
    }
    bool try_pop(std::uint64_t& v) {
        std::lock_guard<std::mutex> lock(m_);
        if (q_.empty()) return false;
        v = q_.top().value;
        q_.pop();
        return true;
    }
    std::uint64_t pop() {
        std::uint64_t v = 0;
        for (backoff b; !try_pop(v);) b.pause();
        return v;
    }
    std::uint64_t lost() const { return 0; }

private:
    struct item {
        int priority;
        std::uint64_t seq;
        std::uint64_t value;
        // Highest priority first, then the earliest admitted.
        bool operator<(const item& o) const { return priority != o.priority ? priority < o.priority : seq > o.seq; }
    };
    std::mutex m_;
    std::priority_queue<item> q_;
    std::uint64_t seq_ = 0;
};

#if ORCHCORE_BENCH_HAVE_ATOMIC_QUEUE
/// atomic_queue::AtomicQueue<uint64_t, 1024>: the fixed-size lock-free
/// queue (0 is its empty marker; items here are never 0). No blocking pop:
/// consumers retry try_pop with the common backoff.
class AtomicQueue {
public:
    static constexpr const char* name = "AtomicQueue";
    bool try_push(std::uint64_t v) { return q_.try_push(v); }
    bool try_pop(std::uint64_t& v) { return q_.try_pop(v); }
    std::uint64_t pop() {
        std::uint64_t v = 0;
        for (backoff b; !q_.try_pop(v);) b.pause();
        return v;
    }
    std::uint64_t lost() const { return 0; }

private:
    atomic_queue::AtomicQueue<std::uint64_t, kCapacity> q_;
};
#endif

// ---------------------------------------------------------------------------
// Harness

struct alignas(128) consumer_slot {
    std::atomic<std::uint64_t> count{0};  // items taken this iteration; written by its consumer only
    std::uint64_t sum = 0;                // sum of values taken, all iterations
};

struct alignas(128) producer_slot {
    std::uint64_t failed_pushes = 0;  // try_push calls that returned false, all iterations
};

// Adapters that can lose items to eviction declare `static constexpr bool may_evict = true`.
template <class Adapter>
constexpr bool may_evict_v = requires { requires Adapter::may_evict; };

/// Pushes v, retrying with the common backoff; returns the number of failed tries.
template <class Adapter>
std::uint64_t push_retrying(Adapter& q, std::uint64_t v) {
    std::uint64_t failed = 0;
    for (backoff b; !q.try_push(v); ++failed) b.pause();
    return failed;
}

/// How consumers take items: the queue's blocking pop, or try_pop retried
/// with the common backoff (the try-ops rows).
enum class consume { blocking, try_ops };

template <class Adapter, consume Mode>
std::uint64_t take(Adapter& q) {
    if constexpr (Mode == consume::blocking) {
        return q.pop();
    } else {
        std::uint64_t v = 0;
        for (backoff b; !q.try_pop(v);) b.pause();
        return v;
    }
}

template <class Adapter, consume Mode>
void BM_Transfer(benchmark::State& state, int producers, int consumers) {
    const std::uint64_t n = kItemsPerIteration;
    const std::uint64_t per_producer = n / static_cast<std::uint64_t>(producers);
    if (per_producer * static_cast<std::uint64_t>(producers) != n) {
        state.SkipWithError("items per iteration must divide evenly among producers");
        return;
    }

    auto q = std::make_unique<Adapter>();
    auto slots = std::make_unique<consumer_slot[]>(static_cast<std::size_t>(consumers));
    auto pslots = std::make_unique<producer_slot[]>(static_cast<std::size_t>(producers));
    const auto parties = static_cast<std::ptrdiff_t>(producers + consumers + 1);
    std::barrier<> start(parties), done(parties);
    std::atomic<bool> stop{false};

    // End of stream, run by the last producer to finish (its own pushes are
    // done, so it has nothing else to do): wait until every item is consumed
    // or evicted, then push one poison per consumer.
    std::atomic<int> producers_left{0};
    std::uint64_t lost_before = 0, lost_total = 0;  // touched by the finisher only (and main when parked)
    bool overcount = false;
    auto finish_iteration = [&] {
        std::uint64_t accounted = 0, lost = 0;
        for (;;) {
            accounted = 0;
            for (int c = 0; c < consumers; ++c)
                accounted += slots[static_cast<std::size_t>(c)].count.load(std::memory_order_relaxed);
            lost = q->lost() - lost_before;
            accounted += lost;
            if (accounted >= n) break;
            std::this_thread::sleep_for(std::chrono::microseconds(20));
        }
        overcount = overcount || accounted != n;
        lost_total += lost;
        for (int c = 0; c < consumers; ++c) push_retrying(*q, kPoison);
    };

    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p) {
        threads.emplace_back([&, p] {
            const std::uint64_t first = 1 + static_cast<std::uint64_t>(p) * per_producer;
            for (;;) {
                start.arrive_and_wait();
                if (stop.load(std::memory_order_relaxed)) return;
                std::uint64_t failed = 0;
                for (std::uint64_t v = first; v < first + per_producer; ++v) failed += push_retrying(*q, v);
                pslots[static_cast<std::size_t>(p)].failed_pushes += failed;
                if (producers_left.fetch_sub(1, std::memory_order_acq_rel) == 1) finish_iteration();
                done.arrive_and_wait();
            }
        });
    }
    for (int c = 0; c < consumers; ++c) {
        threads.emplace_back([&, c] {
            consumer_slot& slot = slots[static_cast<std::size_t>(c)];
            for (;;) {
                start.arrive_and_wait();
                if (stop.load(std::memory_order_relaxed)) return;
                std::uint64_t count = 0, sum = 0;
                for (;;) {
                    const std::uint64_t v = take<Adapter, Mode>(*q);
                    if (v == kPoison) break;
                    sum += v;
                    slot.count.store(++count, std::memory_order_relaxed);
                }
                slot.sum += sum;
                done.arrive_and_wait();
            }
        });
    }

    // The main thread only releases the workers and waits (blocked, so it
    // does not take a core from them while the iteration runs).
    for (auto _ : state) {
        // Every worker is parked at `start`: safe to reset.
        for (int c = 0; c < consumers; ++c) slots[static_cast<std::size_t>(c)].count.store(0, std::memory_order_relaxed);
        producers_left.store(producers, std::memory_order_relaxed);
        lost_before = q->lost();
        start.arrive_and_wait();
        done.arrive_and_wait();
    }

    stop.store(true, std::memory_order_relaxed);
    start.arrive_and_wait();
    for (auto& t : threads) t.join();

    // The score counts items that reached a consumer: an evicted item was
    // not delivered, so a queue cannot score by evicting fast.
    const auto iterations = static_cast<std::uint64_t>(state.iterations());
    state.SetItemsProcessed(static_cast<std::int64_t>(iterations * n - lost_total));
    if (may_evict_v<Adapter>)
        state.counters["evicted_pct"] =
            100.0 * static_cast<double>(lost_total) / static_cast<double>(iterations * n);

    // Failed try_push calls per item moved: how often producers found the
    // queue full (or, for fail-fast, no consumer waiting). A diagnostic of
    // the regime each queue runs in, not a score.
    std::uint64_t failures = 0;
    for (int p = 0; p < producers; ++p) failures += pslots[static_cast<std::size_t>(p)].failed_pushes;
    state.counters["push_retries_per_item"] =
        static_cast<double>(failures) / static_cast<double>(iterations * n);

    std::uint64_t sum = 0;
    for (int c = 0; c < consumers; ++c) sum += slots[static_cast<std::size_t>(c)].sum;
    if (overcount) {
        state.SkipWithError("consumed + evicted exceeded the items produced");
    } else if (lost_total == 0 && sum != iterations * (n * (n + 1) / 2)) {
        state.SkipWithError("checksum mismatch: items lost or duplicated");
    }
}

/// One thread, try_push then try_pop on the same queue: no contention and no
/// waiting, so the row is the instruction cost of an admission plus a
/// dequeue (count them with valgrind --tool=callgrind). Items moved per second.
template <class Adapter>
void BM_PushPop(benchmark::State& state) {
    // glibc locks a std::mutex without atomic instructions while the process
    // has never had a second thread; the queues here are for threads, so
    // start one first.
    std::thread([] {}).join();
    auto q = std::make_unique<Adapter>();
    std::uint64_t v = 0, sum = 0, next = 1;
    for (auto _ : state) {
        q->try_push(next++);
        if (q->try_pop(v)) sum += v;
    }
    benchmark::DoNotOptimize(sum);
    if (sum != (next - 1) * next / 2) state.SkipWithError("checksum mismatch: items lost or duplicated");
    state.SetItemsProcessed(state.iterations());
}

// ---------------------------------------------------------------------------
// Registration: one config at a time, so peers are listed side by side.

template <class... Adapters>
struct adapter_list {};

// Blocking-pop rows (each queue's own waiting strategy).
using blocking_adapters = adapter_list<OrchcoreRejectNew, OrchcoreRejectNewNoWaitTimes, TbbBoundedQueue, MutexCvDeque,
                                       BoostLockfreeQueue, MoodycamelBlockingQueue, OrchcoreAnyRejectNew,
                                       OrchcorePriority, OrchcoreDropLru, OrchcoreFailFast>;
// Try-ops rows: try_push + try_pop for every queue, each policy next to
// the peers that do the same thing (fail-fast has no try-ops meaning).
using try_adapters = adapter_list<OrchcoreRejectNew, OrchcoreRejectNewNoWaitTimes,
#if ORCHCORE_BENCH_HAVE_ATOMIC_QUEUE
                                  AtomicQueue,
#endif
                                  BoostLockfreeQueue, MoodycamelBlockingQueue, TbbBoundedQueue, MutexCvDeque,
                                  OrchcoreDropLru, OrchcoreDropLruNoWaitTimes, MutexDequeDropOldest, OrchcorePriority,
                                  OrchcorePriorityNoWaitTimes, MutexPriorityQueue>;

template <consume Mode, class Adapter>
void register_one(int producers, int consumers) {
    const std::string name = std::string(Mode == consume::blocking ? "BM_Transfer<" : "BM_TransferTry<") +
                             Adapter::name + ">/threads:" + std::to_string(producers) + "x" +
                             std::to_string(consumers);
    benchmark::RegisterBenchmark(name.c_str(), BM_Transfer<Adapter, Mode>, producers, consumers)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
}

template <consume Mode, class... Adapters>
void register_all(adapter_list<Adapters...>) {
    constexpr std::pair<int, int> configs[] = {{1, 1}, {2, 2}};
    for (const auto& [producers, consumers] : configs) (register_one<Mode, Adapters>(producers, consumers), ...);
}

template <class... Adapters>
void register_push_pop(adapter_list<Adapters...>) {
    (benchmark::RegisterBenchmark((std::string("BM_PushPop<") + Adapters::name + ">").c_str(), BM_PushPop<Adapters>),
     ...);
}

[[maybe_unused]] const bool registered = [] {
    register_all<consume::blocking>(blocking_adapters{});
    register_all<consume::try_ops>(try_adapters{});
    register_push_pop(try_adapters{});
    return true;
}();

}  // namespace
