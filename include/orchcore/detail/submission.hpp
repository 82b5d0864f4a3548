// submission<R, F>: a callable given to worker_pool::submit() together with
// the promise of its std::future, in one allocation. The block holds the
// callable, the promise, and room from which the promise allocates its
// shared state and its result (std::promise's allocator constructor): one
// allocation per submit where a std::promise alone makes two, and a
// packaged_task two. The block is freed when the last of its parts is
// released: the job (after it ran, or dropped unrun), the shared state
// (when the future and the promise are gone) and the result.
//
// submission_handle is what the worker queue holds (a pointer, stored in
// place by detail::task): run, it runs the job; destroyed unrun (an abort
// stop dropped it), the future gets cancelled_error.
#pragma once

#include <orchcore/error.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <future>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace orchcore::detail {

// The block's bookkeeping: references (the job and every allocation served
// from the block) and the bump pointer of its spare room.
class submission_arena {
public:
    // `align`: the block's alignment if it was allocated over-aligned, else 0.
    submission_arena(unsigned char* room, std::size_t size, std::size_t align) noexcept
        : next_(room), end_(room + size), align_(align) {}

    // Storage for a block of `size` bytes aligned to `align`, released by
    // the last release() of the arena constructed at its start.
    static void* allocate_block(std::size_t size, std::size_t align) {
        if (align > __STDCPP_DEFAULT_NEW_ALIGNMENT__) return ::operator new(size, std::align_val_t{align});
        return ::operator new(size);
    }
    static constexpr std::size_t over_alignment(std::size_t align) noexcept {
        return align > __STDCPP_DEFAULT_NEW_ALIGNMENT__ ? align : 0;
    }

    // Room for n bytes, or nullptr (the caller falls back to the heap).
    // Only while the promise is being constructed: single-threaded.
    void* allocate(std::size_t n, std::size_t align) noexcept {
        void* p = next_;
        std::size_t space = static_cast<std::size_t>(end_ - next_);
        if (std::align(align, n, p, space) == nullptr) return nullptr;
        next_ = static_cast<unsigned char*>(p) + n;
        refs_.fetch_add(1, std::memory_order_relaxed);
        return p;
    }
    bool owns(const void* p) const noexcept {
        const auto* b = static_cast<const unsigned char*>(p);
        return b >= reinterpret_cast<const unsigned char*>(this) && b < end_;
    }
    // Drops one reference; the last one frees the block (which starts with
    // this header).
    void release() noexcept {
        if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
        if (align_ != 0) ::operator delete(static_cast<void*>(this), std::align_val_t{align_});
        else ::operator delete(static_cast<void*>(this));
    }

private:
    std::atomic<std::uint32_t> refs_{1};  // the job's
    unsigned char* next_;
    unsigned char* end_;
    std::size_t align_;
};

template <class T>
class submission_allocator {
public:
    using value_type = T;
    explicit submission_allocator(submission_arena* a) noexcept : arena_(a) {}
    template <class U>
    submission_allocator(const submission_allocator<U>& o) noexcept : arena_(o.arena()) {}  // NOLINT

    T* allocate(std::size_t n) {
        if (void* p = arena_->allocate(n * sizeof(T), alignof(T))) return static_cast<T*>(p);
        return std::allocator<T>{}.allocate(n);
    }
    void deallocate(T* p, std::size_t n) noexcept {
        if (arena_->owns(p)) arena_->release();
        else std::allocator<T>{}.deallocate(p, n);
    }
    submission_arena* arena() const noexcept { return arena_; }

    template <class U>
    bool operator==(const submission_allocator<U>& o) const noexcept { return arena_ == o.arena(); }

private:
    submission_arena* arena_;
};

// Bytes of a result value (a reference is stored as a pointer).
template <class R>
inline constexpr std::size_t result_size = sizeof(R);
template <class R>
inline constexpr std::size_t result_size<R&> = sizeof(void*);
template <>
inline constexpr std::size_t result_size<void> = 0;

template <class R, class F>
class submission {
public:
    // Creates the block. The caller owns the job: run() or destroy() it.
    template <class G>
    static submission* create(G&& g) {
        void* raw = submission_arena::allocate_block(sizeof(block), alignof(block));
        auto* b = static_cast<block*>(raw);
        auto* arena = ::new (static_cast<void*>(&b->header))
            submission_arena(b->room, sizeof(b->room), submission_arena::over_alignment(alignof(block)));
        try {
            return ::new (static_cast<void*>(b->job)) submission(arena, std::forward<G>(g));
        } catch (...) {
            arena->release();
            throw;
        }
    }

    std::future<R> get_future() { return promise_.get_future(); }

    /// Runs the callable into the promise, then destroys the job.
    void run() noexcept {
        ran_ = true;
        try {
            if constexpr (std::is_void_v<R>) {
                f_();
                promise_.set_value();
            } else {
                promise_.set_value(f_());
            }
        } catch (...) {
            promise_.set_exception(std::current_exception());
        }
        destroy();
    }

    /// Destroys the job; unrun, its future gets cancelled_error.
    void destroy() noexcept {
        submission_arena* a = arena_;
        this->~submission();
        a->release();
    }

private:
    // Room for the promise's shared state (with its control block) and its
    // result: about 64 + 32 + sizeof(R) bytes in libstdc++ and libc++. A
    // library that needs more gets it from the heap.
    static constexpr std::size_t room_size = 192 + result_size<R>;
    struct block {
        submission_arena header;
        alignas(submission) unsigned char job[sizeof(submission)];
        alignas(std::max_align_t) unsigned char room[room_size];
    };

    template <class G>
    submission(submission_arena* a, G&& g)
        : arena_(a), promise_(std::allocator_arg, submission_allocator<char>(a)), f_(std::forward<G>(g)) {}
    ~submission() {
        if (!ran_)
            promise_.set_exception(std::make_exception_ptr(
                cancelled_error("orchcore: worker_pool stopped (abort) before the callable started")));
    }

    submission_arena* arena_;
    std::promise<R> promise_;
    F f_;
    bool ran_ = false;
};

template <class R, class F>
class submission_handle {
public:
    explicit submission_handle(submission<R, F>* s) noexcept : s_(s) {}
    submission_handle(submission_handle&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
    submission_handle& operator=(submission_handle&&) = delete;
    submission_handle(const submission_handle&) = delete;
    ~submission_handle() {
        if (s_ != nullptr) s_->destroy();
    }
    std::future<R> get_future() { return s_->get_future(); }
    void operator()() noexcept { std::exchange(s_, nullptr)->run(); }

private:
    submission<R, F>* s_;
};

}  // namespace orchcore::detail
