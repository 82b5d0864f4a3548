// The event outbox: ordered events, delivery, waiters.
#include "coordinator_impl.hpp"

namespace orchcore::detail {

// Lock held.
void coordinator_impl::emit(event e) {
    outbox.push_back(std::move(e));
    ++emitted;
    outbox_nonempty.store(true, std::memory_order_relaxed);
}

// Lock held. A task event; not even built when nobody listens and
// nothing is waiting to be published (so the sequence numbers that
// wait_for() relies on stay in order: it counts as delivered at once).
void coordinator_impl::emit_task(event_kind k, const task_entry& t, std::string detail) {
    if (outbox.empty() && !bus.has_subscribers()) {
        ++emitted;
        ++delivered;
        return;
    }
    emit(make_event(k, t, std::move(detail)));
}

// Lock held. A task ended: its watchers are told once the events emitted
// so far went out.
void coordinator_impl::emit_finished(const task_entry& t) {
    const bool ids = finish_watch.any(), notes = outcome_watch.any();
    if (!ids && !notes) return;
    const auto& r = t.rec;
    if (ids) finished_ids.push_back(r.id);
    if (notes) {
        finished_notes.push_back(
            {r.id, {r.status, r.created_at, r.started_at.get(), r.finished_at.get(), r.result(), r.error()}});
    }
    outbox_nonempty.store(true, std::memory_order_relaxed);
}

// Lock held. Whether events up to `seq` reached the subscribers, or cannot
// be waited for from this thread (a subscriber calling back).
bool coordinator_impl::delivered_up_to(std::uint64_t seq) const {
    return delivered >= seq || (publishing && publisher == std::this_thread::get_id());
}

// Publishes the outbox outside the lock. One thread drains at a time and
// takes events in outbox order, so subscribers see each task's changes
// in the order they happened even when several threads cause them. A
// subscriber that calls back into the coordinator only appends; the
// draining thread publishes those too before it returns.
void coordinator_impl::flush_events() {
    // Whoever emits calls apply() after releasing the lock, so it sees
    // its own event here; an empty outbox needs no lock round trip.
    if (!outbox_nonempty.load(std::memory_order_relaxed)) return;
    std::unique_lock lk(mu);
    if (publishing) return;
    publishing = true;
    publisher = std::this_thread::get_id();
    while (!outbox.empty() || !finished_ids.empty() || !finished_notes.empty()) {
        std::deque<event> batch;
        batch.swap(outbox);
        std::vector<std::string> ended;
        ended.swap(finished_ids);
        std::vector<finished_task> notes;
        notes.swap(finished_notes);
        outbox_nonempty.store(false, std::memory_order_relaxed);
        lk.unlock();
        for (const auto& e : batch) bus.publish(e);  // never throws: the bus catches subscriber errors
        finish_watch.notify(ended);                   // nor do these
        outcome_watch.notify(notes);
        lk.lock();
        delivered += batch.size();
        if (!async_waiters.empty()) wake_async_waiters();
        done_cv.notify_all();  // wait_for returns only once the terminal event is out
    }
    publishing = false;
    publisher = {};
}

// Outside the lock: the store and registry calls decided so far. Store
// writes land before the events that announce them go out. A call that
// throws raises its error here, as it did when it ran under the lock.
// Waiters look for their task's last store write (task_entry::store_seq),
// so whoever carries out store writes wakes them.
void coordinator_impl::carry_out_io() {
    std::size_t stored = 0, registered = 0;
    auto err = store_io.drain(mu, stored);
    if (auto reg = registry_io.drain(mu, registered); !err) err = reg;
    if (stored > 0) wake_waiters();
    if (err) std::rethrow_exception(err);
}

void coordinator_impl::wake_waiters() {
    done_cv.notify_all();
    if (async_waiter_count.load(std::memory_order_relaxed) != 0) {
        std::lock_guard lk(mu);
        wake_async_waiters();
    }
}

void coordinator_impl::apply(effects& fx) {
    std::exception_ptr io_error;
    try {
        carry_out_io();
    } catch (...) {
        io_error = std::current_exception();
    }
    if (fx.wake_waiters) wake_waiters();
    // Events first: task.started must not trail its own task.completed.
    flush_events();
    for (auto& ln : fx.launches) {
        if (ln.async) run_async(ln); else run_sync(ln);
    }
    if (io_error) std::rethrow_exception(io_error);
}

// Lock held.
void coordinator_impl::add_async_waiter(const std::string& id, std::shared_ptr<async_waiter> w) {
    async_waiters.emplace(id, std::move(w));
    async_waiter_count.store(async_waiters.size(), std::memory_order_relaxed);
}

// Lock held. Returns the next entry.
coordinator_impl::async_waiter_map::iterator coordinator_impl::erase_async_waiter(async_waiter_map::iterator it) {
    it = async_waiters.erase(it);
    async_waiter_count.store(async_waiters.size(), std::memory_order_relaxed);
    return it;
}

// Lock held. Wakes the awaiters the engine says are due.
void coordinator_impl::wake_async_waiters() {
    for (auto it = async_waiters.begin(); it != async_waiters.end();) {
        if (!eng->async_waiter_due(it->first)) {
            ++it;
            continue;
        }
        it->second->wake();
        it = erase_async_waiter(it);
    }
}

// Woken or timed out: no longer waiting (a waker erased it already).
void coordinator_impl::drop_async_waiter(const std::string& id, const std::shared_ptr<async_waiter>& w) {
    std::lock_guard lk(mu);
    auto [b, e] = async_waiters.equal_range(id);
    for (auto it = b; it != e; ++it) {
        if (it->second == w) {
            erase_async_waiter(it);
            return;
        }
    }
}

}  // namespace orchcore::detail
