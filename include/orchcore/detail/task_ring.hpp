// task_ring: a worker's FIFO of queued tasks. A ring buffer that doubles
// when full and keeps its storage, so a steady stream of posts allocates
// nothing (std::deque allocates and frees a block every few elements).
// Not thread-safe: the worker locks.
#pragma once

#include <orchcore/detail/task.hpp>

#include <cstddef>
#include <utility>
#include <vector>

namespace orchcore::detail {

class task_ring {
public:
    bool empty() const noexcept { return size_ == 0; }
    std::size_t size() const noexcept { return size_; }

    void push_back(task t) {
        if (size_ == slots_.size()) grow();
        slots_[(head_ + size_) & (slots_.size() - 1)] = std::move(t);
        ++size_;
    }

    /// Removes the oldest task; precondition: not empty.
    task pop_front() noexcept {
        task t = std::move(slots_[head_]);
        head_ = (head_ + 1) & (slots_.size() - 1);
        --size_;
        return t;
    }

    void swap(task_ring& o) noexcept {
        slots_.swap(o.slots_);
        std::swap(head_, o.head_);
        std::swap(size_, o.size_);
    }

    /// Destroys every queued task (in order).
    void clear() noexcept {
        while (size_ > 0) (void)pop_front();
    }

private:
    void grow() {
        std::vector<task> bigger(slots_.empty() ? 16 : slots_.size() * 2);
        for (std::size_t i = 0; i < size_; ++i) bigger[i] = std::move(slots_[(head_ + i) & (slots_.size() - 1)]);
        slots_.swap(bigger);
        head_ = 0;
    }

    std::vector<task> slots_;  // size 0 or a power of two
    std::size_t head_ = 0;
    std::size_t size_ = 0;
};

}  // namespace orchcore::detail
