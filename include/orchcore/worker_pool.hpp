// Workers and the worker pool: the execution layer.
//
// A worker is a named execution unit with its own threads (one per
// concurrent task slot), tags and counters. The pool holds workers, scales
// them between min and max, and runs callables on them:
//
//   orchcore::worker_pool pool{{.min_workers = 2, .max_workers = 8}};
//   pool.post([] { do_work(); });                 // fire-and-forget
//   auto f = pool.submit([] { return 42; });      // std::future<int>
//   pool.scale(4);
//   pool.stop(orchcore::stop_mode::graceful);     // drains, then joins
//
// Exceptions: an exception escaping a post()ed callable is never swallowed:
// it is counted in stats().unhandled_exceptions and passed to
// pool_options::on_unhandled_exception; without a handler it is written to
// stderr. submit() delivers exceptions through the future instead.
#pragma once

#include <orchcore/autoscale_options.hpp>
#include <orchcore/detail/adaptive_mutex.hpp>
#include <orchcore/detail/spin.hpp>
#include <orchcore/detail/thread_stripe.hpp>
#include <orchcore/detail/submission.hpp>
#include <orchcore/detail/task.hpp>
#include <orchcore/detail/task_ring.hpp>
#include <orchcore/error.hpp>
#include <orchcore/stop_mode.hpp>
#include <orchcore/worker_options.hpp>
#include <orchcore/worker_status.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace orchcore {

class worker;

/// What a worker does with the callables it is given through post(): where
/// escaping exceptions and completions are reported, and where it finds more
/// work when its own queue runs dry (the pool sets it).
struct worker_sink {
    virtual ~worker_sink() = default;
    virtual void on_unhandled(std::exception_ptr e) noexcept = 0;
    /// `n` callables finished (reported per batch, not per callable).
    virtual void on_done(std::uint64_t /*n*/) noexcept {}
    /// Called by a worker whose own queue ran dry: moves callables queued on
    /// another worker into `into` and returns that worker (it keeps the
    /// callables' accounting), or nullptr if there is nothing to take.
    virtual std::shared_ptr<worker> steal_for(const worker& /*thief*/,
                                              std::vector<detail::task>& /*into*/) noexcept {
        return nullptr;
    }
};

/// One worker: its own thread pool, sized to its task slots, or the
/// executor given in worker_options::executor.
///
/// post() does not hand each callable to Asio: callables go into the
/// worker's own queue, and at most max_concurrent "drainers" (Asio
/// handlers) take them out one after another. A burst of posts therefore
/// costs one Asio dispatch per drainer, not one per callable, and a callable
/// that fits std::function's small buffer is never allocated. The executor
/// stays available for other work (the coordinator posts heartbeats and
/// coroutine strands to it).
class worker : public std::enable_shared_from_this<worker> {
public:
    using clock = std::chrono::steady_clock;

    /// `extra_threads` beyond the task slots (the coordinator uses one for
    /// heartbeats, so a worker whose slots are all busy still proves it is alive).
    /// On an executor of the user's, `extra_threads` is ignored. Create it
    /// with std::make_shared (drainers on a user executor keep it alive).
    explicit worker(worker_options o, std::size_t extra_threads = 0, worker_sink* sink = nullptr)
        : options_(std::move(o)), sink_(sink) {
        if (options_.executor) {
            exec_ = *options_.executor;
        } else {
            threads_.emplace(options_.max_concurrent + extra_threads);
            exec_ = threads_->get_executor();
        }
    }

    /// As above, the sink owned jointly: it stays alive as long as the
    /// worker does, even when its creator is gone first.
    worker(worker_options o, std::shared_ptr<worker_sink> sink) : worker(std::move(o), 0, sink.get()) {
        sink_owner_ = std::move(sink);
    }

    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;
    ~worker() {
        if (threads_) threads_->join();
    }

    const std::string& id() const noexcept { return options_.id; }
    const worker_options& options() const noexcept { return options_; }
    /// Its own thread pool's executor, or the user's.
    const boost::asio::any_io_executor& executor() const noexcept { return exec_; }
    /// True if it runs on an executor of the user's (no threads of its own).
    bool on_user_executor() const noexcept { return !threads_.has_value(); }
    /// True on a thread of this worker's own pool, or (user executor) inside
    /// one of its callables: there join() and close() would wait for the
    /// caller itself.
    bool runs_here() noexcept {  // not const: asio hands out executors from a mutable pool
        if (threads_) return threads_->get_executor().running_in_this_thread();
        return current() == this;
    }
    clock::time_point started_at() const noexcept { return started_at_; }

    /// Runs `f` in one of this worker's task slots, in posting order (with
    /// max_concurrent > 1, several run at once; in a worker_pool, an idle
    /// worker may take queued ones, see steal_into). Never blocks on running
    /// work.
    void post(detail::task f) {
        bool start_drainer = false;
        {
            std::lock_guard lk(queue_mutex_);
            queue_.push_back(std::move(f));
            queued_.store(queue_.size(), std::memory_order_relaxed);
            // Written only under the lock, so a plain store, not an RMW.
            posted_.store(posted_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
            // Not `drainers_ < queue_.size()`: a running drainer may be busy
            // for long (even waiting for this very callable), so every slot
            // gets a drainer while work is queued.
            if (drainers_ < options_.max_concurrent) {
                ++drainers_;
                start_drainer = true;
            }
        }
        if (start_drainer) start_drainer_or_undo();
    }

    /// Runs `f` on the worker's executor, outside its task slots (the
    /// coordinator sends heartbeats this way: a worker that cannot run them
    /// is not alive). After close(), `f` is dropped unrun.
    void post_control(std::function<void()> f) {
        if (threads_) {
            boost::asio::post(exec_, std::move(f));
            return;
        }
        boost::asio::post(exec_, [self = owner(), f = std::move(f)] {
            if (!self->enter()) return;
            {
                running_here mark(self.get());
                f();
            }
            self->leave();
        });
    }

    /// Waits until every callable posted to this worker has finished. On a
    /// user executor that needs the executor to be running.
    void join() {
        if (threads_) {
            threads_->join();
            return;
        }
        std::unique_lock lk(idle_mutex_);
        idle_cv_.wait(lk, [&] { return executing_ == 0 && queued_.load(std::memory_order_acquire) == 0; });
    }

    /// User executor: stops the worker for good. Callables not started are
    /// dropped unrun (as by discard_pending), nothing posted later runs, and
    /// this waits only for what is executing right now, never for the
    /// executor to get round to queued work, so it cannot hang on an
    /// executor that is no longer run. Own threads: discard_pending + join.
    void close() {
        {
            std::lock_guard lk(idle_mutex_);
            closed_ = true;
        }
        discard_pending();
        if (threads_) {
            threads_->join();
            return;
        }
        std::unique_lock lk(idle_mutex_);
        idle_cv_.wait(lk, [&] { return executing_ == 0; });
    }

    /// Callables given to post() that have not finished yet.
    std::uint64_t pending() const noexcept {
        const auto done = done_.load(std::memory_order_acquire);
        return posted_.load(std::memory_order_acquire) - done;
    }
    /// Callables given to post() so far.
    std::uint64_t posted() const noexcept { return posted_.load(std::memory_order_acquire); }
    /// Callables that returned normally / threw / were discarded unrun.
    std::uint64_t completed() const noexcept {
        return done_.load(std::memory_order_relaxed) - failed_.load(std::memory_order_relaxed) -
               discarded_.load(std::memory_order_relaxed);
    }
    std::uint64_t failed() const noexcept { return failed_.load(std::memory_order_relaxed); }
    std::uint64_t discarded() const noexcept { return discarded_.load(std::memory_order_relaxed); }

    /// Drops every callable that has not started (running ones go on) and
    /// returns how many. Each is destroyed unrun, outside the lock: a
    /// worker_pool::submit() callable then fails its future with
    /// cancelled_error. Used by worker_pool::stop(stop_mode::abort).
    std::size_t discard_pending() {
        detail::task_ring dropped;
        {
            std::lock_guard lk(queue_mutex_);
            dropped.swap(queue_);
            queued_.store(0, std::memory_order_relaxed);
        }
        const std::size_t n = dropped.size();
        dropped.clear();  // destructors may run user code: not under the lock
        if (n > 0) {
            discarded_.fetch_add(n, std::memory_order_relaxed);
            done_.fetch_add(n, std::memory_order_release);
        }
        return n;
    }

    /// True if a callable posted now would find a task slot free: fewer
    /// slots are running callables, and fewer callables wait, than it has
    /// slots (racy).
    bool has_free_slot() const noexcept {
        return busy_.load(std::memory_order_seq_cst) + queued_.load(std::memory_order_relaxed) <
               options_.max_concurrent;
    }
    /// Callables queued and not yet taken by a slot (racy).
    std::size_t queued() const noexcept { return queued_.load(std::memory_order_relaxed); }
    /// As queued(), ordered with the other workers' busy counts (for the
    /// steal/nudge handshake).
    std::size_t queued_now() const noexcept { return queued_.load(std::memory_order_seq_cst); }

    /// Makes a free slot look for work: starts a drainer, or tells a running
    /// one to look again (at other workers too) before it gives its slot
    /// back.
    void nudge() {
        {
            std::lock_guard lk(queue_mutex_);
            if (drainers_ >= options_.max_concurrent) {
                steal_hint_ = true;
                return;
            }
            ++drainers_;
        }
        start_drainer_or_undo();
    }

    /// Moves about half of the queued callables (at least one, oldest
    /// first, at most the room left in `into`'s batch) into `into`, for
    /// another worker to run; returns how many. Their completions must then
    /// be counted on this worker (the thief does: see run_batch).
    std::size_t steal_into(std::vector<detail::task>& into) noexcept {
        std::lock_guard lk(queue_mutex_);
        const std::size_t room = into.size() < max_batch ? max_batch - into.size() : 0;
        const std::size_t take = std::min(std::max<std::size_t>(queue_.size() / 2, 1), room);
        if (queue_.empty() || take == 0) return 0;
        move_front(into, take);
        return take;
    }

private:
    // An idle drainer waits a moment before it gives its slot back: in a
    // stream of posts the next one is usually microseconds away, and
    // restarting a drainer costs an Asio dispatch and a thread wake-up.
    // Bounded (pauses, then two yields): the Asio scheduler, where the
    // slot goes back, sleeps on a condition variable.
    void linger() const noexcept {
        for (detail::bounded_backoff<64, 2> b; queued_.load(std::memory_order_relaxed) == 0;) {
            if (!b.pause()) return;
        }
    }

    // A drainer was counted in drainers_: start it.
    void start_drainer_or_undo() {
        try {
            start_drainer_now();
        } catch (...) {
            // Not owned by a shared_ptr on a user executor: every post says so.
            std::lock_guard lk(queue_mutex_);
            --drainers_;
            throw;
        }
    }

    void start_drainer_now() {
        if (threads_) {
            // Own threads: join() waits for the pool, so `this` outlives it.
            // The pool's own executor type: no type-erased dispatch here.
            boost::asio::post(threads_->get_executor(), [this] { drain(); });
            return;
        }
        boost::asio::post(exec_, [self = owner()] {
            if (!self->enter()) {
                std::lock_guard lk(self->queue_mutex_);
                --self->drainers_;
                return;
            }
            {
                running_here mark(self.get());
                self->drain();
            }
            self->leave();
        });
    }

    // User executor: what the executor's handlers hold on to, since nothing
    // joins them.
    std::shared_ptr<worker> owner() {
        auto self = weak_from_this().lock();
        if (!self)
            throw invalid_argument("worker", "\"" + options_.id + "\"",
                                   "a worker on a user executor must be owned by a std::shared_ptr (std::make_shared)");
        return self;
    }

    // The worker whose callable runs on this thread (user executor), for
    // runs_here().
    static const worker*& current() noexcept {
        thread_local const worker* w = nullptr;
        return w;
    }
    // Marks this thread as running one of `w`'s callables while it lives.
    struct running_here {
        const worker* outer = current();
        explicit running_here(const worker* w) noexcept { current() = w; }
        ~running_here() { current() = outer; }
        running_here(const running_here&) = delete;
        running_here& operator=(const running_here&) = delete;
    };

    // User executor: counts what executes on it, so close() and join() can
    // wait for exactly that.
    bool enter() {
        std::lock_guard lk(idle_mutex_);
        if (closed_) return false;
        ++executing_;
        return true;
    }
    void leave() {
        {
            std::lock_guard lk(idle_mutex_);
            --executing_;
        }
        idle_cv_.notify_all();
    }

    using batch_type = std::vector<detail::task>;
    static constexpr std::size_t max_batch = 32;

    // Takes callables in batches (half a fair share of what is queued, at
    // most 32) so that a burst costs one lock round trip per batch. When its own
    // queue runs dry it takes work queued on a busy sibling (through the
    // sink) before it gives its slot back.
    void drain() {
        batch_type batch;
        batch.reserve(max_batch);
        for (;;) {
            if (queued_.load(std::memory_order_relaxed) == 0) linger();
            if (take_batch(batch)) {
                run_batch(batch, *this);
                continue;
            }
            if (sink_) {
                if (auto victim = sink_->steal_for(*this, batch)) {
                    run_batch(batch, *victim);
                    continue;
                }
            }
            if (release_slot_if_idle()) return;
        }
    }

    bool take_batch(batch_type& batch) {
        std::lock_guard lk(queue_mutex_);
        if (queue_.empty()) return false;
        // Half of a fair share: the rest stays where an idle worker can take it.
        const std::size_t take = std::clamp<std::size_t>(queue_.size() / (2 * drainers_), 1, max_batch);
        move_front(batch, take);
        return true;
    }

    // queue_mutex_ held
    void move_front(batch_type& batch, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) batch.push_back(queue_.pop_front());
        queued_.store(queue_.size(), std::memory_order_relaxed);
    }

    bool release_slot_if_idle() {
        std::lock_guard lk(queue_mutex_);
        if (!queue_.empty()) return false;
        if (steal_hint_) {
            steal_hint_ = false;  // nudged: look once more
            return false;
        }
        --drainers_;
        return true;
    }

    // Runs a batch taken from `owner`'s queue (this worker's, or a sibling's
    // when stolen): completions and failures are counted where the
    // callables were posted.
    void run_batch(batch_type& batch, worker& owner) {
        busy_.fetch_add(1, std::memory_order_relaxed);
        for (auto& f : batch) {
            try {
                f();
            } catch (...) {
                owner.failed_.fetch_add(1, std::memory_order_relaxed);
                if (sink_) sink_->on_unhandled(std::current_exception());
            }
            f = nullptr;  // destroy captures before the completion is counted
        }
        // Before this slot looks for more work (ordered with the poster's
        // fence in worker_pool::nudge_idle_sibling).
        busy_.fetch_sub(1, std::memory_order_seq_cst);
        // Counted per batch, on a cache line the producer does not write.
        if (sink_) sink_->on_done(batch.size());
        owner.done_.fetch_add(batch.size(), std::memory_order_release);
        batch.clear();
    }

    worker_options options_;
    std::optional<boost::asio::thread_pool> threads_;  // empty on a user executor
    boost::asio::any_io_executor exec_;
    clock::time_point started_at_ = clock::now();
    // User executor only: what executes on it now, and whether it is closed.
    std::mutex idle_mutex_;
    std::condition_variable idle_cv_;
    std::size_t executing_ = 0;
    bool closed_ = false;
    worker_sink* sink_ = nullptr;
    std::shared_ptr<worker_sink> sink_owner_;  // set by the shared-sink constructor
    // Held for a push or for taking a batch: a short spin, then a futex
    // sleep (see detail/adaptive_mutex.hpp).
    detail::adaptive_mutex queue_mutex_;
    detail::task_ring queue_;
    std::size_t drainers_ = 0;
    bool steal_hint_ = false;  // queue_mutex_; see nudge()
    std::atomic<std::size_t> queued_{0};  // queue_.size(), readable without the lock
    // Written by posting threads (under the lock) / by draining threads:
    // kept apart so that a stream of posts does not bounce one cache line
    // between the two.
    alignas(64) std::atomic<std::uint64_t> posted_{0};
    alignas(64) std::atomic<std::uint64_t> done_{0};
    std::atomic<std::size_t> busy_{0};  // slots running a batch now
    std::atomic<std::uint64_t> failed_{0};
    std::atomic<std::uint64_t> discarded_{0};
};

struct pool_options {
    /// 0 is allowed: the pool then starts with no workers, and post()
    /// refuses work until scale() adds one.
    std::size_t min_workers = 1;
    std::size_t max_workers = 4;
    worker_options worker_template{};  ///< options of workers the pool creates (id ignored)
    /// Receives exceptions escaping post()ed callables (on the worker thread).
    std::function<void(std::exception_ptr)> on_unhandled_exception{};

    void validate() const {
        if (max_workers == 0) throw invalid_argument("pool.max_workers", "0", "must be at least 1");
        if (max_workers > max_worker_count)
            throw invalid_argument("pool.max_workers", std::to_string(max_workers),
                                   "must be at most " + std::to_string(max_worker_count));
        if (min_workers > max_workers)
            throw invalid_argument("pool.min_workers", std::to_string(min_workers),
                                   "must be <= max_workers (" + std::to_string(max_workers) + ")");
        worker_template.validate();
    }
};

struct pool_stats {
    std::size_t workers = 0;
    std::uint64_t posted = 0;
    std::uint64_t completed = 0;
    std::uint64_t unhandled_exceptions = 0;
    std::uint64_t rejected_after_stop = 0;
    std::uint64_t cancelled = 0;  ///< posted but dropped unrun by stop(stop_mode::abort)
};

class worker_pool {
public:
    explicit worker_pool(pool_options o = {}) : options_(std::move(o)) {
        options_.validate();
        auto initial = std::make_unique<worker_list>();
        for (std::size_t i = 0; i < options_.min_workers; ++i) initial->push_back(make_worker());
        current_.store(initial.get(), std::memory_order_release);
        list_ = std::move(initial);
        sink_->pool.store(this, std::memory_order_seq_cst);
    }

    worker_pool(const worker_pool&) = delete;
    worker_pool& operator=(const worker_pool&) = delete;
    /// stop(graceful) on its own threads. On a user executor, stop(abort):
    /// a destructor must not wait for an executor that may no longer be run.
    /// Run by one of the pool's own callables (its last owner dropped
    /// there), it cannot wait for that callable: a thread of its own waits
    /// for the workers instead, and the callable goes on to its end.
    ~worker_pool() {
        sink_->detach_pool();
        const bool inside = [&] {
            std::lock_guard lk(scale_mutex_);
            return runs_here_locked();
        }();
        stop(options_.worker_template.executor ? stop_mode::abort : stop_mode::graceful);
        if (inside) join_elsewhere();
    }

    /// Runs `f` on some worker: the next one in the posting thread's round
    /// robin if it has a free task slot, otherwise another one that has, and
    /// the next one in turn when all are busy. A worker whose queue runs dry
    /// takes work queued on a busy one, so an idle worker does not wait while
    /// another has a backlog. Never blocks. Throws shutdown_error after
    /// stop(), and error(errc::rejected) while the pool has no workers
    /// (min_workers = 0 and not scaled up): nothing could run `f`.
    template <class F>
    void post(F&& f) {
        // The reader section keeps the worker list (and the workers on it)
        // from being retired under this call; it costs two uncontended
        // atomic increments on the calling thread's own cache line.
        reader_gate::section in(gate_);
        const worker_list* list = current_.load(std::memory_order_seq_cst);
        if (stopped_.load(std::memory_order_seq_cst)) {
            in.leave();
            rejected_after_stop_.fetch_add(1, std::memory_order_relaxed);
            throw shutdown_error("orchcore: worker_pool::post after stop()");
        }
        if (list->empty()) {
            in.leave();
            throw error(errc::rejected,
                        "orchcore: worker_pool::post: the pool has no workers (min_workers = 0: scale() it up first)");
        }
        worker& w = pick_worker(*list);
        const bool behind_busy = !w.has_free_slot();
        w.post(detail::task(std::forward<F>(f)));
        if (behind_busy) nudge_idle_sibling(*list, w);
    }

    /// Runs `f` on some worker; its result or exception arrives through the
    /// future. If stop(stop_mode::abort) drops it before it starts, the
    /// future holds orchcore::cancelled_error (never a broken promise).
    template <class F>
    auto submit(F&& f) -> std::future<std::invoke_result_t<std::decay_t<F>&>> {
        using R = std::invoke_result_t<std::decay_t<F>&>;
        using job = detail::submission<R, std::decay_t<F>>;
        // One allocation: the callable, the promise and the future's shared
        // state share a block; the queue holds a pointer to it.
        detail::submission_handle<R, std::decay_t<F>> handle(job::create(std::forward<F>(f)));
        auto fut = handle.get_future();
        post(std::move(handle));
        return fut;
    }

    /// Sets the number of workers, clamped to [min_workers, max_workers].
    /// Removed workers finish what they were given (in the background of
    /// the next scale() or stop()). Returns the new count.
    std::size_t scale(std::size_t n) {
        std::lock_guard lk(scale_mutex_);
        if (stopped_.load(std::memory_order_acquire)) throw shutdown_error("orchcore: worker_pool::scale after stop()");
        n = std::clamp(n, options_.min_workers, options_.max_workers);
        auto next = std::make_unique<worker_list>(*list_);
        while (next->size() < n) next->push_back(make_worker());
        std::vector<std::shared_ptr<worker>> removed;
        while (next->size() > n) {
            removed.push_back(next->back());
            next->pop_back();
        }
        current_.store(next.get(), std::memory_order_seq_cst);
        // After this, no post() can still be reading the old list or be
        // about to give work to a removed worker.
        gate_.wait_for_readers();
        list_ = std::move(next);
        retired_.insert(retired_.end(), removed.begin(), removed.end());
        reap_retired_locked();
        return n;
    }

    std::size_t size() const {
        std::lock_guard lk(scale_mutex_);
        return list_->size();
    }

    /// Snapshot of the current workers.
    std::vector<std::shared_ptr<worker>> workers() const {
        std::lock_guard lk(scale_mutex_);
        return *list_;
    }

    pool_stats stats() const {
        pool_stats s;
        {
            std::lock_guard lk(scale_mutex_);
            s.workers = list_->size();
            s.posted = posted_by_reaped_;
            for (const auto& w : *list_) s.posted += w->posted();
            for (const auto& w : retired_) s.posted += w->posted();
            s.cancelled = cancelled_;
        }
        s.completed = sink_->completed.load(std::memory_order_relaxed);
        s.unhandled_exceptions = sink_->unhandled.load(std::memory_order_relaxed);
        s.rejected_after_stop = rejected_after_stop_.load(std::memory_order_relaxed);
        return s;
    }

    /// Stops taking work (post() then throws shutdown_error). graceful:
    /// waits for everything posted to finish (on a user executor, that
    /// needs the executor to be running). abort: drops what has not
    /// started (counted in stats().cancelled; submit() futures get
    /// cancelled_error) and waits for the callables already running, which
    /// cannot be interrupted (the coordinator's tasks are the cooperatively
    /// cancellable kind). Idempotent; a later call waits as the first did.
    /// Called from one of the pool's own callables, it stops taking work
    /// (and drops, for abort) but returns without waiting, since it cannot
    /// wait for its caller: the destructor or a stop() from another thread
    /// waits.
    void stop(stop_mode mode = stop_mode::graceful) {
        std::lock_guard lk(scale_mutex_);
        if (!stopped_.exchange(true, std::memory_order_seq_cst)) {
            // A post() that did not see stopped_ finishes handing over its
            // callable before the workers are joined, so none is left behind.
            gate_.wait_for_readers();
            if (mode == stop_mode::abort) {
                for (auto& w : *list_) cancelled_ += w->discard_pending();
                for (auto& w : retired_) cancelled_ += w->discard_pending();
            }
        }
        if (runs_here_locked()) return;
        for (auto& w : *list_) w->join();
        for (auto& w : retired_) w->join();
    }

    bool stopped() const noexcept { return stopped_.load(std::memory_order_acquire); }

private:
    using worker_list = std::vector<std::shared_ptr<worker>>;

    using reader_gate = detail::reader_gate<16>;

    // Per-thread round robin (one counter for every callable type: a
    // counter per type would send each type's first post to worker 0).
    static std::size_t next_round_robin() noexcept {
        thread_local std::size_t next = 0;
        return next++;
    }

    // Inside a reader section; `list` is not empty.
    static worker& pick_worker(const worker_list& list) noexcept {
        const std::size_t n = list.size();
        const std::size_t first = next_round_robin() % n;
        for (std::size_t k = 0; k < n; ++k) {
            worker& w = *list[(first + k) % n];
            if (w.has_free_slot()) return w;
        }
        return *list[first];
    }

    // The callable just queued on `busy` waits behind running work: a
    // sibling that has a free slot is told to take it. The fence pairs with
    // the busy count a finishing slot lowers before it looks for work to
    // take (see worker::steal_into): either that slot sees the queued
    // callable, or this sees the free slot.
    static void nudge_idle_sibling(const worker_list& list, const worker& busy) {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        for (const auto& w : list) {
            if (w.get() != &busy && w->has_free_slot()) {
                w->nudge();
                return;
            }
        }
    }

    // A drained worker of the current list takes work from the worker with
    // the most queued callables (a retired worker takes none: it is waiting
    // to be joined).
    std::shared_ptr<worker> steal_for(const worker& thief, std::vector<detail::task>& into) noexcept {
        reader_gate::section in(gate_);
        const worker_list* list = current_.load(std::memory_order_seq_cst);
        bool member = false;
        const std::shared_ptr<worker>* victim = nullptr;
        std::size_t most = 0;
        for (const auto& w : *list) {
            if (w.get() == &thief) {
                member = true;
            } else if (const std::size_t q = w->queued_now(); q > most) {
                most = q;
                victim = &w;
            }
        }
        if (!member || victim == nullptr || (*victim)->steal_into(into) == 0) return nullptr;
        return *victim;
    }

    std::shared_ptr<worker> make_worker() {
        worker_options o = options_.worker_template;
        o.id = "worker-" + std::to_string(++worker_seq_);
        return std::make_shared<worker>(std::move(o), sink_);
    }

    // scale_mutex_ held. Whether the calling thread is one of the workers'.
    bool runs_here_locked() const {
        auto here = [](const std::shared_ptr<worker>& w) { return w->runs_here(); };
        return std::any_of(list_->begin(), list_->end(), here) || std::any_of(retired_.begin(), retired_.end(), here);
    }

    // The destructor on one of the pool's own threads: the workers (and the
    // sink they report to) are handed to a thread that waits for them.
    void join_elsewhere() {
        std::vector<std::shared_ptr<worker>> all;
        {
            std::lock_guard lk(scale_mutex_);
            all = *list_;
            all.insert(all.end(), retired_.begin(), retired_.end());
        }
        std::thread([all = std::move(all)] {
            for (const auto& w : all) w->join();
        }).detach();
    }

    void reap_retired_locked() {
        // A retired worker gets no new work (scale() waited out the posts
        // that could still reach it); join it (quick) once its work is done,
        // otherwise leave it for a later scale() or stop().
        std::erase_if(retired_, [this](const std::shared_ptr<worker>& w) {
            if (w->pending() != 0) return false;
            w->join();
            posted_by_reaped_ += w->posted();
            return true;
        });
    }

    // Where the workers report; shared with them, so that it outlives a
    // pool destroyed on one of its own threads.
    struct sink final : worker_sink {
        std::function<void(std::exception_ptr)> on_unhandled_exception;
        alignas(64) std::atomic<std::uint64_t> completed{0};
        std::atomic<std::uint64_t> unhandled{0};
        explicit sink(std::function<void(std::exception_ptr)> f) : on_unhandled_exception(std::move(f)) {}
        void on_unhandled(std::exception_ptr e) noexcept override { report(*this, e); }
        void on_done(std::uint64_t n) noexcept override { completed.fetch_add(n, std::memory_order_relaxed); }
        // Stealing goes through the pool while it exists; its destructor
        // clears `pool` and waits out the steals in progress.
        std::atomic<worker_pool*> pool{nullptr};
        reader_gate steal_gate;
        std::shared_ptr<worker> steal_for(const worker& thief,
                                          std::vector<detail::task>& into) noexcept override {
            reader_gate::section in(steal_gate);
            worker_pool* p = pool.load(std::memory_order_seq_cst);
            return p ? p->steal_for(thief, into) : nullptr;
        }
        void detach_pool() noexcept {
            pool.store(nullptr, std::memory_order_seq_cst);
            steal_gate.wait_for_readers();
        }
    };

    static void report(sink& s, std::exception_ptr e) noexcept {
        s.unhandled.fetch_add(1, std::memory_order_relaxed);
        if (s.on_unhandled_exception) {
            try {
                s.on_unhandled_exception(e);
                return;
            } catch (...) {
            }
        }
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            std::fprintf(stderr, "orchcore: unhandled exception in posted task: %s\n", ex.what());
        } catch (...) {
            std::fprintf(stderr, "orchcore: unhandled non-standard exception in posted task\n");
        }
    }

    pool_options options_;
    std::shared_ptr<sink> sink_ = std::make_shared<sink>(options_.on_unhandled_exception);
    // post() reads current_ inside a reader section; scale() and stop()
    // replace or retire under scale_mutex_ and wait for readers.
    std::atomic<const worker_list*> current_{nullptr};
    std::unique_ptr<worker_list> list_;  // what current_ points to; scale_mutex_
    std::vector<std::shared_ptr<worker>> retired_;
    std::uint64_t posted_by_reaped_ = 0;  // scale_mutex_
    mutable std::mutex scale_mutex_;
    reader_gate gate_;
    std::atomic<bool> stopped_{false};
    std::atomic<std::uint64_t> rejected_after_stop_{0};
    std::uint64_t worker_seq_ = 0;
    std::uint64_t cancelled_ = 0;  // scale_mutex_
};

}  // namespace orchcore
