// task: the move-only void() callable that worker queues hold. A callable
// of up to inline_size bytes that moves without throwing is stored in place
// (a std::function<void()>, a lambda capturing a few pointers or a
// shared_ptr), larger ones on the heap. Unlike std::function it never
// copies, so move-only callables are fine, and it stores callables in place
// that are not trivially copyable (libstdc++'s std::function allocates for
// those).
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace orchcore::detail {

class task {
public:
    static constexpr std::size_t inline_size = 32;

    task() noexcept = default;

    template <class F>
        requires(!std::is_same_v<std::decay_t<F>, task> && std::is_invocable_v<std::decay_t<F>&>)
    task(F&& f) {  // NOLINT(google-explicit-constructor): any void() callable is a task
        using D = std::decay_t<F>;
        if constexpr (stored_in_place<D>) {
            ::new (static_cast<void*>(buf_)) D(std::forward<F>(f));
            ops_ = &in_place_ops<D>::table;
        } else {
            ::new (static_cast<void*>(buf_)) D*(new D(std::forward<F>(f)));
            ops_ = &on_heap_ops<D>::table;
        }
    }

    task(task&& o) noexcept { take(o); }
    task& operator=(task&& o) noexcept {
        if (this != &o) {
            reset();
            take(o);
        }
        return *this;
    }
    /// Destroys the callable (and what it captured).
    task& operator=(std::nullptr_t) noexcept {
        reset();
        return *this;
    }
    task(const task&) = delete;
    task& operator=(const task&) = delete;
    ~task() { reset(); }

    explicit operator bool() const noexcept { return ops_ != nullptr; }

    /// Runs the callable; precondition: not empty.
    void operator()() { ops_->invoke(buf_); }

    template <class F>
    static constexpr bool stored_in_place = sizeof(F) <= inline_size && alignof(F) <= alignof(std::max_align_t) &&
                                            std::is_nothrow_move_constructible_v<F>;

private:
    struct ops {
        void (*invoke)(void*);
        void (*relocate)(void* from, void* to) noexcept;  // move-construct at `to`, destroy `from`
        void (*destroy)(void*) noexcept;
    };
    template <class F>
    struct in_place_ops {
        static void invoke(void* p) { (*static_cast<F*>(p))(); }
        static void relocate(void* from, void* to) noexcept {
            ::new (to) F(std::move(*static_cast<F*>(from)));
            static_cast<F*>(from)->~F();
        }
        static void destroy(void* p) noexcept { static_cast<F*>(p)->~F(); }
        static constexpr ops table{&invoke, &relocate, &destroy};
    };
    template <class F>
    struct on_heap_ops {
        static void invoke(void* p) { (**static_cast<F**>(p))(); }
        static void relocate(void* from, void* to) noexcept { ::new (to) F*(*static_cast<F**>(from)); }
        static void destroy(void* p) noexcept { delete *static_cast<F**>(p); }
        static constexpr ops table{&invoke, &relocate, &destroy};
    };

    void take(task& o) noexcept {
        if (o.ops_ == nullptr) return;
        o.ops_->relocate(o.buf_, buf_);
        ops_ = o.ops_;
        o.ops_ = nullptr;
    }
    void reset() noexcept {
        if (ops_ == nullptr) return;
        const ops* o = ops_;
        ops_ = nullptr;
        o->destroy(buf_);
    }

    alignas(std::max_align_t) unsigned char buf_[inline_size];
    const ops* ops_ = nullptr;
};

}  // namespace orchcore::detail
