// any_admission_queue<T, Id>: one run-time interface over every policy, for
// code that chooses the policy from configuration:
//
//   auto q = orchcore::make_admission_queue<Job>(cfg.at("policy"), {.capacity = 512});
//   auto r = q->try_push(job);
//
// The typed admission_queue<T, Policy, Id> is the faster choice when the
// policy is known at compile time; this interface adds one virtual call.
#pragma once

#include <orchcore/detail/saturating.hpp>
#include <orchcore/admission_queue.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace orchcore {

template <class T, class Id = job_id>
class any_admission_queue {
public:
    using value_type = T;
    using id_type = Id;
    using entry_type = queue_entry<T, Id>;
    using result_type = admission_result<T, Id>;
    using request_type = admission_request<Id>;
    using clock = std::chrono::steady_clock;
    using eviction_handler = std::function<void(const entry_type&)>;

    virtual ~any_admission_queue() = default;

    virtual queue_policy policy() const noexcept = 0;
    virtual result_type try_push(T&& value, const request_type& req = {}) = 0;
    result_type try_push(const T& value, const request_type& req = {}) {
        T copy(value);
        return try_push(std::move(copy), req);
    }
    virtual std::optional<entry_type> try_pop() = 0;
    virtual entry_type pop() = 0;
    virtual std::optional<entry_type> pop_until(clock::time_point deadline) = 0;
    template <class Rep, class Period>
    std::optional<entry_type> pop_for(const std::chrono::duration<Rep, Period>& timeout) {
        return pop_until(detail::deadline_after(timeout));
    }
    virtual std::vector<entry_type> try_pop_batch(std::size_t max) = 0;
    virtual std::vector<entry_type> pop_batch(std::size_t max) = 0;
    virtual std::vector<entry_type> pop_batch_until(std::size_t max, clock::time_point deadline) = 0;
    template <class Rep, class Period>
    std::vector<entry_type> pop_batch_for(std::size_t max, const std::chrono::duration<Rep, Period>& timeout) {
        return pop_batch_until(max, detail::deadline_after(timeout));
    }
    virtual std::optional<entry_type> cancel(const Id& id) = 0;
    virtual std::optional<std::size_t> position_of(const Id& id) const = 0;
    virtual bool contains(const Id& id) const = 0;
    virtual std::vector<Id> ids_in_dequeue_order() const = 0;
    virtual void close() = 0;
    virtual bool is_closed() const noexcept = 0;
    virtual std::size_t size() const = 0;
    virtual std::size_t size_approx() const noexcept = 0;
    virtual std::size_t capacity() const noexcept = 0;
    virtual std::size_t waiting_consumers() const = 0;
    virtual queue_metrics metrics() const = 0;
};

namespace detail {

template <class T, class Policy, class Id>
class erased_admission_queue final : public any_admission_queue<T, Id> {
    using base = any_admission_queue<T, Id>;

public:
    erased_admission_queue(queue_policy kind, queue_options options, typename base::eviction_handler on_evict)
        : kind_(kind), q_(options, std::move(on_evict)) {}

    using base::try_push;
    using base::pop_for;
    using base::pop_batch_for;

    queue_policy policy() const noexcept override { return kind_; }
    typename base::result_type try_push(T&& v, const typename base::request_type& r) override {
        return q_.try_push(std::move(v), r);
    }
    std::optional<typename base::entry_type> try_pop() override { return q_.try_pop(); }
    typename base::entry_type pop() override { return q_.pop(); }
    std::optional<typename base::entry_type> pop_until(typename base::clock::time_point d) override {
        return q_.pop_until(d);
    }
    std::vector<typename base::entry_type> try_pop_batch(std::size_t max) override { return q_.try_pop_batch(max); }
    std::vector<typename base::entry_type> pop_batch(std::size_t max) override { return q_.pop_batch(max); }
    std::vector<typename base::entry_type> pop_batch_until(std::size_t max, typename base::clock::time_point d) override {
        return q_.pop_batch_until(max, d);
    }
    std::optional<typename base::entry_type> cancel(const Id& id) override { return q_.cancel(id); }
    std::optional<std::size_t> position_of(const Id& id) const override { return q_.position_of(id); }
    bool contains(const Id& id) const override { return q_.contains(id); }
    std::vector<Id> ids_in_dequeue_order() const override { return q_.ids_in_dequeue_order(); }
    void close() override { q_.close(); }
    bool is_closed() const noexcept override { return q_.is_closed(); }
    std::size_t size() const override { return q_.size(); }
    std::size_t size_approx() const noexcept override { return q_.size_approx(); }
    std::size_t capacity() const noexcept override { return q_.capacity(); }
    std::size_t waiting_consumers() const override { return q_.waiting_consumers(); }
    queue_metrics metrics() const override { return q_.metrics(); }

private:
    queue_policy kind_;
    admission_queue<T, Policy, Id> q_;
};

}  // namespace detail

/// Creates a queue with the built-in policy `kind`.
template <class T, class Id = job_id>
std::unique_ptr<any_admission_queue<T, Id>> make_admission_queue(
    queue_policy kind, queue_options options = {},
    typename any_admission_queue<T, Id>::eviction_handler on_evict = {}) {
    switch (kind) {
        case queue_policy::reject_new:
            return std::make_unique<detail::erased_admission_queue<T, policy::reject_new, Id>>(kind, options,
                                                                                            std::move(on_evict));
        case queue_policy::drop_lru:
            return std::make_unique<detail::erased_admission_queue<T, policy::drop_lru, Id>>(kind, options,
                                                                                          std::move(on_evict));
        case queue_policy::fail_fast:
            return std::make_unique<detail::erased_admission_queue<T, policy::fail_fast, Id>>(kind, options,
                                                                                           std::move(on_evict));
        case queue_policy::priority:
            return std::make_unique<detail::erased_admission_queue<T, policy::priority, Id>>(kind, options,
                                                                                          std::move(on_evict));
    }
    throw invalid_argument("policy", std::to_string(static_cast<int>(kind)), "not a queue_policy value");
}

/// Creates a queue from a policy name ("reject-new", "drop-lru", "fail-fast",
/// "priority"); an unknown name throws orchcore::invalid_argument.
template <class T, class Id = job_id>
std::unique_ptr<any_admission_queue<T, Id>> make_admission_queue(
    std::string_view policy_name, queue_options options = {},
    typename any_admission_queue<T, Id>::eviction_handler on_evict = {}) {
    return make_admission_queue<T, Id>(parse_queue_policy(policy_name), options, std::move(on_evict));
}

}  // namespace orchcore
