// Throughput and latency of the orchcore execution engine against peer
// thread pools.
//
// 1. BM_Post<Pool>: fire-and-forget tiny tasks. Each iteration posts
//    kPostTasks callables from the benchmark thread; each callable
//    decrements one shared std::atomic<int> (the last one notifies it). The
//    iteration ends when the counter reaches zero (C++20 atomic wait, i.e. a
//    futex: the benchmark thread is blocked, not polling). items/s, real time.
//    Pools (two executing threads each):
//      OrchcorePool2x1  orchcore::worker_pool, 2 workers x max_concurrent 1
//      OrchcorePool1x2  orchcore::worker_pool, 1 worker  x max_concurrent 2
//      AsioThreadPool   boost::asio::thread_pool(2) + boost::asio::post
//      TbbTaskGroup     tbb::task_group::run + wait inside a
//                       tbb::task_arena(2): TBB's calling thread takes one
//                       of the two slots (it runs tasks while it waits),
//                       so TBB has one worker thread plus the caller
//      MutexCvPool      textbook baseline: 2 threads pop std::function from
//                       a std::deque under std::mutex + condition_variable;
//                       notify_one (after unlocking) on every push
//      BsThreadPool     BS::thread_pool(2)::detach_task, and
//      TaskflowExecutor tf::Executor(2)::silent_async: only when CMake is
//                       pointed at their headers (bench/CMakeLists.txt);
//                       skipped otherwise
//    The headline orchcore figure is the faster of the two orchcore shapes;
//    bench/engine_ratios.py reports both.
//
// 2. BM_Coordinator<...>: the full coordinator path. A coordinator with 2
//    workers (max_concurrent 1), queue capacity >= kCoordinatorTasks and a
//    no-op handler; each iteration admits kCoordinatorTasks tasks and ends
//    when every one has completed: the handler counts down an atomic (as in
//    1), then the benchmark thread polls get_stats().completed until the
//    coordinator's own bookkeeping has caught up (a few microseconds).
//      SubmitAsync  coordinator::submit_async (the handle is dropped)
//      Post         coordinator::post (fire-and-forget)
//    Finished records stay queryable for completed_ttl; the benchmark uses
//    completed_ttl = maintenance_interval = 100ms so the task table stays
//    small across iterations (the expiry work runs on the control thread
//    inside the measurement, as it would in production).
//
// 2b. BM_Tracked<...>: the same full path measured against tracked-task
//    peers, i.e. what a user builds from a peer pool when every task needs a
//    handle to await its result: kCoordinatorTasks tasks, each submitted with
//    a handle (its result is a std::string), then every handle awaited and
//    its result read, in submission order.
//      CoordinatorSubmitAwait  coordinator::submit_async, keep the handle,
//                              then handle.get() on each
//      CoordinatorSubmitMany   coordinator::submit_many in chunks of
//                              kChunk, then handle.get() on each
//      AsioFuture              boost::asio::thread_pool(2) +
//                              std::packaged_task / std::future per task
//      TbbFuture               tbb::task_group in a task_arena(2) +
//                              std::packaged_task / std::future per task
//      MutexCvFuture           the MutexCvPool above + packaged_task/future
//      PoolSubmitFuture        orchcore::worker_pool::submit (2 workers), a
//                              std::future per task
//      BsFuture                BS::thread_pool::submit_task (if configured)
//    A future per task is the nearest a peer pool comes to a tracked task;
//    it has no id, status query, cancellation, retry or timeout, so this is
//    a floor the coordinator's bookkeeping is measured against.
//
// 3. BM_StartLatency<...>: submit-to-start latency at light load. One task
//    at a time: the benchmark thread takes t0 = steady_clock::now(), submits,
//    and waits (atomic wait) until the task has started; the task stores
//    steady_clock::now() when it starts. The next submit follows once the
//    previous task started. kLatencySamples samples per iteration; p50/p99
//    (microseconds, pooled over the iterations of a run) are reported as
//    counters p50_us / p99_us. The same measurement for worker_pool::post
//    and boost::asio::post gives the floor the coordinator adds to.
//
// 4. BM_QueuedBytes<...>: memory per queued tracked task. The pool is made
//    (the coordinator with a queue capacity of kQueuedTasks plus its
//    workers, so that a preallocated queue counts in full), every executing
//    thread is held by a blocking task, then kQueuedTasks tasks are
//    submitted, each with its handle (or future) kept, and stay queued. The
//    counter bytes_per_task is the growth of the heap in use (glibc
//    mallinfo2 over every arena: uordblks + hblkhd, chunk headers
//    included) from before the pool was made, less the caller's vector of
//    handles, over the number of tasks, plus the size of one handle (the
//    pool's fixed costs are spread over the tasks).
//    Then the threads are released and every task awaited (not measured).
//      CoordinatorQueued   coordinator::submit_async, local mode
//      PoolSubmitQueued    worker_pool::submit, a std::future per task
//      AsioFutureQueued    boost::asio::thread_pool + packaged_task/future
//      MutexCvFutureQueued the MutexCvPool above + packaged_task/future
//      BsFutureQueued      BS::thread_pool::submit_task (if configured)
//    TBB is left out: its task objects come from tbbmalloc, which
//    mallinfo2 does not see.
//
// Run (see bench/README.md):
//   orchcore_bench_engine --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true --benchmark_format=json > engine.json
//   python3 bench/engine_ratios.py engine.json
#include <orchcore/coordinator.hpp>
#include <orchcore/worker_pool.hpp>

#include <benchmark/benchmark.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>
#if ORCHCORE_BENCH_HAVE_BS_THREAD_POOL
#include <BS_thread_pool.hpp>
#endif
#if ORCHCORE_BENCH_HAVE_TASKFLOW
#include <taskflow/taskflow.hpp>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

constexpr int kPostTasks = 200'000;
constexpr int kCoordinatorTasks = 20'000;
constexpr int kLatencySamples = 2'000;
constexpr int kThreads = 2;
constexpr std::size_t kChunk = 256;
constexpr int kQueuedTasks = 20'000;

using steady = std::chrono::steady_clock;

/// Blocks until `remaining` is zero.
void wait_zero(std::atomic<int>& remaining) {
    for (int v = remaining.load(std::memory_order_acquire); v != 0; v = remaining.load(std::memory_order_acquire))
        remaining.wait(v, std::memory_order_acquire);
}

/// The tiny task: one atomic decrement; the last one wakes the waiter.
struct tiny_task {
    std::atomic<int>* remaining;
    void operator()() const {
        if (remaining->fetch_sub(1, std::memory_order_acq_rel) == 1) remaining->notify_all();
    }
};

// ---------------------------------------------------------------------------
// Pools for BM_Post. Each runs `n` tiny tasks counting down `remaining` and
// returns when all have run.

template <std::size_t Workers, std::size_t Slots>
class orchcore_pool {
public:
    void run(int n, std::atomic<int>& remaining) {
        for (int i = 0; i < n; ++i) pool_.post(tiny_task{&remaining});
        wait_zero(remaining);
    }

private:
    orchcore::worker_pool pool_{orchcore::pool_options{
        .min_workers = Workers, .max_workers = Workers, .worker_template = {.max_concurrent = Slots}}};
};

struct OrchcorePool2x1 : orchcore_pool<2, 1> {
    static constexpr const char* name = "OrchcorePool2x1";
};
struct OrchcorePool1x2 : orchcore_pool<1, 2> {
    static constexpr const char* name = "OrchcorePool1x2";
};

class AsioThreadPool {
public:
    static constexpr const char* name = "AsioThreadPool";
    ~AsioThreadPool() { pool_.join(); }
    void run(int n, std::atomic<int>& remaining) {
        for (int i = 0; i < n; ++i) boost::asio::post(pool_, tiny_task{&remaining});
        wait_zero(remaining);
    }

private:
    boost::asio::thread_pool pool_{kThreads};
};

class TbbTaskGroup {
public:
    static constexpr const char* name = "TbbTaskGroup";
    void run(int n, std::atomic<int>& remaining) {
        arena_.execute([&] {
            tbb::task_group tg;
            for (int i = 0; i < n; ++i) tg.run(tiny_task{&remaining});
            tg.wait();
        });
        wait_zero(remaining);  // already zero: tg.wait() returned
    }

private:
    tbb::task_arena arena_{kThreads};
};

class MutexCvPool {
public:
    static constexpr const char* name = "MutexCvPool";
    MutexCvPool() {
        for (int i = 0; i < kThreads; ++i) threads_.emplace_back([this] { loop(); });
    }
    ~MutexCvPool() {
        {
            std::lock_guard lk(m_);
            stop_ = true;
        }
        cv_.notify_all();
        for (auto& t : threads_) t.join();
    }
    void post(std::function<void()> f) {
        {
            std::lock_guard lk(m_);
            q_.push_back(std::move(f));
        }
        cv_.notify_one();
    }
    void run(int n, std::atomic<int>& remaining) {
        for (int i = 0; i < n; ++i) post(tiny_task{&remaining});
        wait_zero(remaining);
    }

private:
    void loop() {
        for (;;) {
            std::function<void()> f;
            {
                std::unique_lock lk(m_);
                cv_.wait(lk, [this] { return stop_ || !q_.empty(); });
                if (q_.empty()) return;  // stop_ and drained
                f = std::move(q_.front());
                q_.pop_front();
            }
            f();
        }
    }

    std::mutex m_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> q_;
    bool stop_ = false;
    std::vector<std::thread> threads_;
};

#if ORCHCORE_BENCH_HAVE_BS_THREAD_POOL
class BsThreadPool {
public:
    static constexpr const char* name = "BsThreadPool";
    void run(int n, std::atomic<int>& remaining) {
        for (int i = 0; i < n; ++i) pool_.detach_task(tiny_task{&remaining});
        wait_zero(remaining);
    }

private:
    BS::thread_pool pool_{static_cast<std::size_t>(kThreads)};
};
#endif

#if ORCHCORE_BENCH_HAVE_TASKFLOW
class TaskflowExecutor {
public:
    static constexpr const char* name = "TaskflowExecutor";
    void run(int n, std::atomic<int>& remaining) {
        for (int i = 0; i < n; ++i) executor_.silent_async(tiny_task{&remaining});
        wait_zero(remaining);
    }

private:
    tf::Executor executor_{static_cast<std::size_t>(kThreads)};
};
#endif

template <class Pool>
void BM_Post(benchmark::State& state) {
    auto pool = std::make_unique<Pool>();
    std::atomic<int> remaining{0};
    for (auto _ : state) {
        remaining.store(kPostTasks, std::memory_order_relaxed);
        pool->run(kPostTasks, remaining);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kPostTasks);
    pool.reset();  // joins outside the measurement
}

// ---------------------------------------------------------------------------
// Coordinator

orchcore::coordinator_options coordinator_opts(std::size_t capacity,
                                               std::chrono::milliseconds completed_ttl = std::chrono::milliseconds(100)) {
    orchcore::coordinator_options o;
    o.queue.capacity = capacity;
    o.worker_template.max_concurrent = 1;
    o.scaling.min_workers = kThreads;
    o.scaling.max_workers = kThreads;
    o.completed_ttl = completed_ttl;
    o.maintenance_interval = std::chrono::milliseconds(100);
    return o;
}

enum class submit_kind { submit_async, post };

template <submit_kind Kind>
void BM_Coordinator(benchmark::State& state) {
    orchcore::coordinator c{coordinator_opts(2 * kCoordinatorTasks)};
    std::atomic<int> remaining{0};
    c.register_handler("noop", [&remaining](orchcore::task_context&) {
        tiny_task{&remaining}();
        return std::string{};
    });
    std::uint64_t expected = 0, rejected = 0;
    for (auto _ : state) {
        remaining.store(kCoordinatorTasks, std::memory_order_relaxed);
        for (int i = 0; i < kCoordinatorTasks; ++i) {
            bool ok;
            if constexpr (Kind == submit_kind::submit_async) ok = c.submit_async("noop", std::string{}).accepted();
            else ok = c.post("noop", std::string{}).accepted();
            if (!ok) {
                ++rejected;
                tiny_task{&remaining}();
            }
        }
        expected += kCoordinatorTasks;
        wait_zero(remaining);
        // The handlers have returned; wait for the coordinator to record the
        // last completions (finish_attempt runs after the handler).
        while (c.get_stats().completed + rejected < expected) std::this_thread::yield();
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kCoordinatorTasks);
    if (rejected != 0) state.SkipWithError("admissions were rejected (queue too small?)");
    c.stop(orchcore::stop_mode::graceful);
}

// ---------------------------------------------------------------------------
// Tracked tasks: submit with a handle, await every handle, read its result.

/// The tracked tiny task's body: the same atomic decrement, and a result.
std::string tracked_body(std::atomic<int>* remaining) {
    tiny_task{remaining}();
    return std::string{};
}

struct CoordinatorSubmitAwait {
    static constexpr const char* name = "CoordinatorSubmitAwait";
    CoordinatorSubmitAwait() {
        c.register_handler("noop", [this](orchcore::task_context&) { return tracked_body(remaining); });
    }
    ~CoordinatorSubmitAwait() { c.stop(orchcore::stop_mode::graceful); }
    /// Returns the number of results read (== n unless something was rejected).
    int run(int n, std::atomic<int>& left) {
        remaining = &left;
        handles.clear();
        for (int i = 0; i < n; ++i) handles.push_back(c.submit_async("noop", std::string{}).handle);
        return await_all();
    }
    int await_all() {
        int read = 0;
        for (const auto& h : handles) {
            if (!h.valid()) continue;
            benchmark::DoNotOptimize(h.get());
            ++read;
        }
        return read;
    }
    std::atomic<int>* remaining = nullptr;
    std::vector<orchcore::task_handle> handles;
    // A result stays readable for completed_ttl: long enough here for the
    // first task's result to outlive the submission of the other 19,999.
    orchcore::coordinator c{coordinator_opts(2 * kCoordinatorTasks, std::chrono::seconds(2))};
};

struct CoordinatorSubmitMany : CoordinatorSubmitAwait {
    static constexpr const char* name = "CoordinatorSubmitMany";
    int run(int n, std::atomic<int>& left) {
        remaining = &left;
        handles.clear();
        std::vector<orchcore::task_request> chunk;
        for (int i = 0; i < n;) {
            chunk.clear();
            for (std::size_t k = 0; k < kChunk && i < n; ++k, ++i) chunk.push_back({"noop", std::string{}, {}});
            for (auto& r : c.submit_many(std::move(chunk))) handles.push_back(std::move(r.handle));
        }
        return await_all();
    }
};

/// A peer pool with a std::packaged_task / std::future per task.
template <class Post>
int run_futures(int n, std::atomic<int>& left, std::vector<std::future<std::string>>& futures, Post&& post) {
    futures.clear();
    for (int i = 0; i < n; ++i) {
        std::packaged_task<std::string()> t([r = &left] { return tracked_body(r); });
        futures.push_back(t.get_future());
        post(std::move(t));
    }
    int read = 0;
    for (auto& f : futures) {
        benchmark::DoNotOptimize(f.get());
        ++read;
    }
    return read;
}

struct AsioFuture {
    static constexpr const char* name = "AsioFuture";
    ~AsioFuture() { pool.join(); }
    int run(int n, std::atomic<int>& left) {
        return run_futures(n, left, futures, [this](std::packaged_task<std::string()> t) {
            boost::asio::post(pool, std::move(t));
        });
    }
    std::vector<std::future<std::string>> futures;
    boost::asio::thread_pool pool{kThreads};
};

struct TbbFuture {
    static constexpr const char* name = "TbbFuture";
    int run(int n, std::atomic<int>& left) {
        int read = 0;
        arena.execute([&] {
            tbb::task_group tg;
            // task_group::run wants a copyable callable: the packaged_task
            // lives in a shared_ptr.
            read = run_futures(n, left, futures, [&tg](std::packaged_task<std::string()> t) {
                tg.run([p = std::make_shared<std::packaged_task<std::string()>>(std::move(t))] { (*p)(); });
            });
            tg.wait();
        });
        return read;
    }
    std::vector<std::future<std::string>> futures;
    tbb::task_arena arena{kThreads};
};

struct MutexCvFuture {
    static constexpr const char* name = "MutexCvFuture";
    int run(int n, std::atomic<int>& left) {
        // std::function needs a copyable callable, as with TBB.
        return run_futures(n, left, futures, [this](std::packaged_task<std::string()> t) {
            pool.post([p = std::make_shared<std::packaged_task<std::string()>>(std::move(t))] { (*p)(); });
        });
    }
    std::vector<std::future<std::string>> futures;
    MutexCvPool pool;
};

/// worker_pool::submit: a std::future per task from the pool itself.
struct PoolSubmitFuture {
    static constexpr const char* name = "PoolSubmitFuture";
    int run(int n, std::atomic<int>& left) {
        futures.clear();
        for (int i = 0; i < n; ++i) futures.push_back(pool.submit([r = &left] { return tracked_body(r); }));
        int read = 0;
        for (auto& f : futures) {
            benchmark::DoNotOptimize(f.get());
            ++read;
        }
        return read;
    }
    std::vector<std::future<std::string>> futures;
    orchcore::worker_pool pool{orchcore::pool_options{.min_workers = kThreads, .max_workers = kThreads}};
};

#if ORCHCORE_BENCH_HAVE_BS_THREAD_POOL
/// BS::thread_pool::submit_task: its own std::future per task.
struct BsFuture {
    static constexpr const char* name = "BsFuture";
    int run(int n, std::atomic<int>& left) {
        futures.clear();
        for (int i = 0; i < n; ++i) futures.push_back(pool.submit_task([r = &left] { return tracked_body(r); }));
        int read = 0;
        for (auto& f : futures) {
            benchmark::DoNotOptimize(f.get());
            ++read;
        }
        return read;
    }
    std::vector<std::future<std::string>> futures;
    BS::thread_pool pool{static_cast<std::size_t>(kThreads)};
};
#endif

template <class Target>
void BM_Tracked(benchmark::State& state) {
    auto target = std::make_unique<Target>();
    std::atomic<int> remaining{0};
    bool short_read = false;
    for (auto _ : state) {
        remaining.store(kCoordinatorTasks, std::memory_order_relaxed);
        if (target->run(kCoordinatorTasks, remaining) != kCoordinatorTasks) short_read = true;
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kCoordinatorTasks);
    if (short_read) state.SkipWithError("some tasks were rejected (queue too small?)");
    target.reset();
}

// ---------------------------------------------------------------------------
// Submit-to-start latency

/// One sample at a time: the task publishes its start time, the submitter
/// waits for it.
struct start_probe {
    std::atomic<int> started{0};
    steady::time_point at{};
    void mark() {
        at = steady::now();
        started.store(1, std::memory_order_release);
        started.notify_one();
    }
    steady::duration wait_since(steady::time_point t0) {
        while (started.load(std::memory_order_acquire) == 0) started.wait(0, std::memory_order_acquire);
        started.store(0, std::memory_order_relaxed);
        return at - t0;
    }
};

struct CoordinatorLatency {
    static constexpr const char* name = "Coordinator";
    explicit CoordinatorLatency(start_probe& p) {
        c.register_handler("probe", [&p](orchcore::task_context&) {
            p.mark();
            return std::string{};
        });
    }
    void submit() { c.submit_async("probe", std::string{}); }
    orchcore::coordinator c{coordinator_opts(1024)};
};

struct OrchcorePoolLatency {
    static constexpr const char* name = "OrchcorePool2x1";
    explicit OrchcorePoolLatency(start_probe& p) : probe(&p) {}
    void submit() {
        pool.post([p = probe] { p->mark(); });
    }
    start_probe* probe;
    orchcore::worker_pool pool{orchcore::pool_options{.min_workers = 2, .max_workers = 2}};
};

struct AsioLatency {
    static constexpr const char* name = "AsioThreadPool";
    explicit AsioLatency(start_probe& p) : probe(&p) {}
    ~AsioLatency() { pool.join(); }
    void submit() {
        boost::asio::post(pool, [p = probe] { p->mark(); });
    }
    start_probe* probe;
    boost::asio::thread_pool pool{kThreads};
};

double percentile_us(std::vector<steady::duration>& v, double q) {
    if (v.empty()) return 0.0;
    const auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return std::chrono::duration<double, std::micro>(v[k]).count();
}

// ---------------------------------------------------------------------------
// Memory per queued tracked task.

/// Holds executing threads until released.
struct thread_gate {
    std::atomic<int> held{0};
    std::atomic<bool> open{false};
    void block() {
        held.fetch_add(1, std::memory_order_acq_rel);
        held.notify_all();
        while (!open.load(std::memory_order_acquire)) open.wait(false, std::memory_order_acquire);
    }
    void wait_held(int n) {
        for (int v = held.load(std::memory_order_acquire); v < n; v = held.load(std::memory_order_acquire))
            held.wait(v, std::memory_order_acquire);
    }
    void release() {
        open.store(true, std::memory_order_release);
        open.notify_all();
    }
};

/// Heap bytes in use (every arena, chunk headers included); 0 without glibc.
std::size_t heap_in_use() {
#if defined(__GLIBC__)
    const auto m = mallinfo2();
    return m.uordblks + m.hblkhd;
#else
    return 0;
#endif
}

struct CoordinatorQueued {
    static constexpr const char* name = "CoordinatorQueued";
    using handle_type = orchcore::task_handle;
    CoordinatorQueued() {
        c.register_handler("block", [this](orchcore::task_context&) {
            gate.block();
            return std::string{};
        });
        c.register_handler("noop", [](orchcore::task_context&) { return std::string{}; });
        for (int i = 0; i < kThreads; ++i) held.push_back(c.submit_async("block", std::string{}).handle);
    }
    void queue(int n) {
        for (int i = 0; i < n; ++i) handles.push_back(c.submit_async("noop", std::string{}).handle);
    }
    void release() {
        gate.release();
        for (const auto& h : held) (void)h.get();
        for (const auto& h : handles)
            if (h.valid()) (void)h.get();
        c.stop(orchcore::stop_mode::graceful);
    }
    thread_gate gate;
    std::vector<orchcore::task_handle> held, handles;
    orchcore::coordinator c{coordinator_opts(kQueuedTasks + kThreads, std::chrono::seconds(10))};
};

/// A peer with a future per task: `post(callable)` returns its future.
template <class Derived>
struct future_queued {
    using handle_type = std::future<std::string>;
    void hold() {
        for (int i = 0; i < kThreads; ++i)
            held.push_back(self().post([g = &gate] {
                g->block();
                return std::string{};
            }));
    }
    void queue(int n) {
        for (int i = 0; i < n; ++i) handles.push_back(self().post([] { return std::string{}; }));
    }
    void release() {
        gate.release();
        for (auto& f : held) (void)f.get();
        for (auto& f : handles) (void)f.get();
    }
    Derived& self() { return static_cast<Derived&>(*this); }
    thread_gate gate;
    std::vector<std::future<std::string>> held, handles;
};

/// A packaged_task and its future, posted through `post(std::function<void()>)`-like pools.
template <class F, class Post>
std::future<std::string> post_packaged(F f, Post&& post) {
    auto t = std::make_shared<std::packaged_task<std::string()>>(std::move(f));
    auto fut = t->get_future();
    post([t] { (*t)(); });
    return fut;
}

struct PoolSubmitQueued : future_queued<PoolSubmitQueued> {
    static constexpr const char* name = "PoolSubmitQueued";
    PoolSubmitQueued() { hold(); }
    template <class F>
    std::future<std::string> post(F f) { return pool.submit(std::move(f)); }
    orchcore::worker_pool pool{orchcore::pool_options{.min_workers = kThreads, .max_workers = kThreads}};
};

struct AsioFutureQueued : future_queued<AsioFutureQueued> {
    static constexpr const char* name = "AsioFutureQueued";
    AsioFutureQueued() { hold(); }
    ~AsioFutureQueued() { pool.join(); }
    template <class F>
    std::future<std::string> post(F f) {
        std::packaged_task<std::string()> t(std::move(f));
        auto fut = t.get_future();
        boost::asio::post(pool, std::move(t));
        return fut;
    }
    boost::asio::thread_pool pool{kThreads};
};

struct MutexCvFutureQueued : future_queued<MutexCvFutureQueued> {
    static constexpr const char* name = "MutexCvFutureQueued";
    MutexCvFutureQueued() { hold(); }
    template <class F>
    std::future<std::string> post(F f) {
        return post_packaged(std::move(f), [this](auto fn) { pool.post(std::move(fn)); });
    }
    MutexCvPool pool;
};

#if ORCHCORE_BENCH_HAVE_BS_THREAD_POOL
struct BsFutureQueued : future_queued<BsFutureQueued> {
    static constexpr const char* name = "BsFutureQueued";
    BsFutureQueued() { hold(); }
    template <class F>
    std::future<std::string> post(F f) { return pool.submit_task(std::move(f)); }
    BS::thread_pool pool{static_cast<std::size_t>(kThreads)};
};
#endif

template <class Target>
void BM_QueuedBytes(benchmark::State& state) {
#if !defined(__GLIBC__)
    state.SkipWithError("needs glibc's mallinfo2");
    return;
#endif
    using handle_type = typename Target::handle_type;
    double bytes = 0;
    bool short_queue = false;
    for (auto _ : state) {
        const std::size_t before = heap_in_use();
        auto target = std::make_unique<Target>();
        target->gate.wait_held(kThreads);
        target->handles.reserve(kQueuedTasks);
        target->queue(kQueuedTasks);
        const std::size_t after = heap_in_use();
        const std::size_t vector_bytes = target->handles.capacity() * sizeof(handle_type);
        bytes = static_cast<double>(after - before - vector_bytes) / kQueuedTasks + sizeof(handle_type);
        for (const auto& h : target->handles) short_queue = short_queue || !h.valid();
        target->release();
    }
    state.counters["bytes_per_task"] = bytes;
    if (short_queue) state.SkipWithError("some tasks were rejected (queue too small?)");
}

template <class Target>
void BM_StartLatency(benchmark::State& state) {
    start_probe probe;
    auto target = std::make_unique<Target>(probe);
    std::vector<steady::duration> samples;
    samples.reserve(static_cast<std::size_t>(kLatencySamples) * 8);
    for (auto _ : state) {
        for (int i = 0; i < kLatencySamples; ++i) {
            const auto t0 = steady::now();
            target->submit();
            samples.push_back(probe.wait_since(t0));
        }
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kLatencySamples);
    state.counters["p50_us"] = percentile_us(samples, 0.50);
    state.counters["p99_us"] = percentile_us(samples, 0.99);
    target.reset();
}

// ---------------------------------------------------------------------------
// Registration: peers side by side.

template <class... Pools>
void register_post() {
    (benchmark::RegisterBenchmark((std::string("BM_Post<") + Pools::name + ">/tasks:" + std::to_string(kPostTasks)).c_str(),
                                  BM_Post<Pools>)
         ->UseRealTime()
         ->Unit(benchmark::kMillisecond),
     ...);
}

template <class... Targets>
void register_tracked() {
    (benchmark::RegisterBenchmark(
         (std::string("BM_Tracked<") + Targets::name + ">/tasks:" + std::to_string(kCoordinatorTasks)).c_str(),
         BM_Tracked<Targets>)
         ->UseRealTime()
         ->Unit(benchmark::kMillisecond),
     ...);
}

template <class... Targets>
void register_latency() {
    (benchmark::RegisterBenchmark(
         (std::string("BM_StartLatency<") + Targets::name + ">/samples:" + std::to_string(kLatencySamples)).c_str(),
         BM_StartLatency<Targets>)
         ->UseRealTime()
         ->Unit(benchmark::kMillisecond)
         ->Iterations(3),
     ...);
}

template <class... Targets>
void register_queued_bytes() {
    (benchmark::RegisterBenchmark(
         (std::string("BM_QueuedBytes<") + Targets::name + ">/tasks:" + std::to_string(kQueuedTasks)).c_str(),
         BM_QueuedBytes<Targets>)
         ->UseRealTime()
         ->Unit(benchmark::kMillisecond)
         ->Iterations(1),
     ...);
}

[[maybe_unused]] const bool registered = [] {
    register_post<OrchcorePool2x1, OrchcorePool1x2, AsioThreadPool, TbbTaskGroup, MutexCvPool>();
#if ORCHCORE_BENCH_HAVE_BS_THREAD_POOL
    register_post<BsThreadPool>();
#endif
#if ORCHCORE_BENCH_HAVE_TASKFLOW
    register_post<TaskflowExecutor>();
#endif
    const std::string suffix = ">/tasks:" + std::to_string(kCoordinatorTasks);
    benchmark::RegisterBenchmark(("BM_Coordinator<SubmitAsync" + suffix).c_str(),
                                 BM_Coordinator<submit_kind::submit_async>)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("BM_Coordinator<Post" + suffix).c_str(), BM_Coordinator<submit_kind::post>)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    register_tracked<CoordinatorSubmitAwait, CoordinatorSubmitMany, PoolSubmitFuture, AsioFuture, TbbFuture,
                     MutexCvFuture>();
#if ORCHCORE_BENCH_HAVE_BS_THREAD_POOL
    register_tracked<BsFuture>();
#endif
    register_latency<CoordinatorLatency, OrchcorePoolLatency, AsioLatency>();
    register_queued_bytes<CoordinatorQueued, PoolSubmitQueued, AsioFutureQueued, MutexCvFutureQueued>();
#if ORCHCORE_BENCH_HAVE_BS_THREAD_POOL
    register_queued_bytes<BsFutureQueued>();
#endif
    return true;
}();

}  // namespace
