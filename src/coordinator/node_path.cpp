// Distributed mode: the node's feed and flush steps (node_path), plain or
// through a node_backend (node_options::backend, else the one
// the transport offers: transport::make_node_backend). With one, a feed is
// one lease_and_start call, and a flush of finished attempts one
// finish_and_fetch call that also leases for the slots they freed. What the
// backend leased but did not start goes the plain way (feed_leased);
// outcomes it did not record (a record changed by someone else, or one it
// refused) go through run_ops.
#include "node_engine.hpp"

#include <algorithm>
#include <string>
#include <unordered_map>

namespace orchcore::detail {

class node_plain_path final : public node_path {
public:
    explicit node_plain_path(node_engine& e) : e_(e) {}
    bool feed_once() override { return e_.feed_once(); }
    void flush(std::vector<dist_op>& ops) override { e_.run_ops(ops); }
    bool flush_fetches() const noexcept override { return false; }

private:
    node_engine& e_;
};

class node_fast_path final : public node_path {
public:
    node_fast_path(node_engine& e, std::shared_ptr<node_backend> nb) : e_(e), c_(e.c), nb_(std::move(nb)) {}
    bool feed_once() override;
    void flush(std::vector<dist_op>& ops) override;
    bool flush_fetches() const noexcept override { return true; }

private:
    using fate = node_engine::fate;
    std::pair<worker_entry*, std::size_t> reserve();
    start_spec spec_for(const worker_entry& w) const;
    dist_op hand_back_op(task_record rec, const transport_lease& l);
    dist_op not_launched(task_record rec, const transport_lease& l, steady::time_point now);
    bool launch_one(node_task& t, const std::string& wid, effects& fx);
    std::size_t take_started(std::vector<node_task> got, const std::string& wid, std::size_t reserved);
    void fetched(std::vector<node_task> got, const std::string& wid, std::size_t asked);
    std::vector<node_task> record(std::vector<dist_op>& ops, std::vector<fate>& f, const start_spec& spec,
                                  std::size_t m, bool& announced);

    node_engine& e_;
    coordinator_impl& c_;
    std::shared_ptr<node_backend> nb_;
    // c_.mu: slots of each worker reserved by lease calls in flight (their
    // tasks are started for that worker, so two concurrent calls, a feed
    // and a flush, must not both count its last free slot).
    std::unordered_map<std::string, std::size_t> held_;
};

std::unique_ptr<node_path> make_node_path(node_engine& e, std::shared_ptr<node_backend> nb) {
    if (nb) return std::make_unique<node_fast_path>(e, std::move(nb));
    return std::make_unique<node_plain_path>(e);
}

// Lock held. The worker with the most free slots and how many to lease for
// it, reserved in `leasing` (with one io_inflight that take_started ends);
// {nullptr, 0} if nothing can be leased.
std::pair<worker_entry*, std::size_t> node_fast_path::reserve() {
    if (c_.stopping || (c_.handlers.empty() && c_.async_handlers.empty())) return {nullptr, 0};
    worker_entry* best = nullptr;
    std::size_t room = 0;
    for (auto& [id, w] : c_.workers) {
        const auto max = w.w->options().max_concurrent;
        const auto h = held_.find(id);
        const auto taken = w.busy + (h == held_.end() ? 0 : h->second);
        if (w.draining || max - std::min(taken, max) <= room) continue;
        best = &w;
        room = max - std::min(taken, max);
    }
    const std::size_t n = std::min(room, lease_round::to_ask(c_.free_slots(), e_.leasing, e_.nopt.lease_batch));
    if (!best || n == 0) {
        e_.note_no_room();
        return {nullptr, 0};
    }
    held_[best->w->id()] += n;
    e_.leasing += n;
    ++e_.io_inflight;
    return {best, n};
}

// Lock held. What `w` can start.
start_spec node_fast_path::spec_for(const worker_entry& w) const {
    start_spec s;
    s.worker = w.w->id();
    for (const auto& kv : c_.handlers) s.types.push_back(kv.first);
    for (const auto& kv : c_.async_handlers) s.types.push_back(kv.first);
    s.tags = w.w->options().tags;
    s.hold_keys = {node_engine::cancel_key};
    s.lease_duration = e_.nopt.lease_duration;
    return s;
}

bool node_fast_path::feed_once() {
    start_spec spec;
    std::size_t n = 0;
    {
        std::lock_guard lk(c_.mu);
        const auto [w, k] = reserve();
        if (!w) return false;
        spec = spec_for(*w);
        n = k;
    }
    std::vector<node_task> got;
    bool failed = false;
    try {
        got = nb_->lease_and_start(spec, n, wall::now());
    } catch (const std::exception&) {
        failed = true;
    }
    bool again = false;
    {
        std::lock_guard lk(c_.mu);
        if (failed) ++c_.counters.backend_errors;
        again = e_.leased_round(n, got.size());
    }
    const std::size_t leased = got.size();
    const bool more = lease_round::another_round(n, leased, take_started(std::move(got), spec.worker, n));
    if (again) e_.kick_feed();
    return more;
}

// Lock held. The record change for a task the backend started that cannot
// run here (stopping, no fitting worker, or its slots taken meanwhile): the
// attempt the backend counted did not run. Failed if no live worker could
// ever hold its request and has not for placement_wait (the plain path's
// rule, node_engine::unplaceable_for_good), else handed back.
dist_op node_fast_path::not_launched(task_record rec, const transport_lease& l, steady::time_point now) {
    if (rec.attempts > 0) --rec.attempts;
    if (c_.stopping || !e_.unplaceable_for_good(rec, now)) return hand_back_op(std::move(rec), l);
    ++e_.io_inflight;
    return e_.settle_unplaceable(rec, l);
}

// Lock held. A started task back to the queue.
dist_op node_fast_path::hand_back_op(task_record rec, const transport_lease& l) {
    dist_op op;
    op.rec = std::move(rec);
    op.expected = task_status::running;
    op.rec.status = task_status::queued;
    op.token = l.token;
    op.held_until = l.deadline;
    op.delay = std::max(c_.tick_every * 5, std::chrono::milliseconds(20));
    op.ev = event_kind::task_requeued;
    op.detail = "handed back";
    op.reason = dist_op::why::stop;
    ++e_.io_inflight;
    return op;
}

// Lock held. Launches `t`, which the backend started, on worker `wid` if
// it can still run it there. A task with a resource request or a session
// is placed among this node's workers instead (the backend matched only
// types and tags); its record names the worker it runs on from its next
// write.
bool node_fast_path::launch_one(node_task& t, const std::string& wid, effects& fx) {
    auto wit = c_.workers.find(wid);
    worker_entry* w = wit == c_.workers.end() ? nullptr : &wit->second;
    auto& rec = *t.record;
    if (!rec.resources.empty() || !rec.session.empty()) {
        w = c_.pick_worker(rec.tags, rec.resources, rec.session);
        if (w) rec.worker_id = w->w->id();
    }
    if (c_.stopping || !w || w->draining || w->busy >= w->w->options().max_concurrent ||
        !c_.has_handler(rec.type))
        return false;
    launch ln;
    e_.start_attempt(std::move(*t.record), t.lease, *w, ln, true);
    c_.emit(coordinator_impl::make_event_rec(event_kind::task_started, c_.tasks.at(t.lease.task_id).rec));
    fx.launches.push_back(std::move(ln));
    return true;
}

// Launches on worker `wid` what the backend started; the rest goes the
// plain way. Ends reserve()'s reservation of `reserved` slots.
std::size_t node_fast_path::take_started(std::vector<node_task> got, const std::string& wid, std::size_t reserved) {
    std::vector<transport_lease> plain;
    std::vector<dist_op> back;
    effects fx;
    std::size_t launched = 0;
    {
        std::lock_guard lk(c_.mu);
        c_.counters.leased += got.size();
        const auto unstarted = static_cast<std::size_t>(
            std::count_if(got.begin(), got.end(), [](const node_task& t) { return !t.started; }));
        e_.leasing -= std::min(e_.leasing, reserved - unstarted);  // feed_leased ends the others'
        if (auto h = held_.find(wid); h != held_.end() && (h->second -= std::min(h->second, reserved)) == 0)
            held_.erase(h);
        const auto now = steady::now();
        for (auto& t : got) {
            if (!t.started) {
                plain.push_back(std::move(t.lease));
            } else if (launch_one(t, wid, fx)) {
                e_.unplaceable_since.erase(t.lease.task_id);
                ++launched;
            } else {
                back.push_back(not_launched(std::move(*t.record), t.lease, now));
            }
        }
        if (plain.empty() && e_.io_inflight > 0) --e_.io_inflight;  // else feed_leased ends it
        fx.wake_waiters = true;
    }
    c_.apply(fx);
    e_.run_ops(back);
    if (!plain.empty()) launched += e_.feed_leased(plain);
    return launched;
}

// run_ops through the node backend for finished attempts: one call records
// them, settles their leases and leases for the freed slots.
void node_fast_path::flush(std::vector<dist_op>& ops) {
    std::vector<fate> f(ops.size(), fate::pending);
    e_.hold_leases(ops, f);
    start_spec spec;
    std::size_t m = 0;
    {
        std::lock_guard lk(c_.mu);
        const auto [w, k] = reserve();
        spec = w ? spec_for(*w) : start_spec{c_.node, {}, {}, {}, e_.nopt.lease_duration};
        m = k;
    }
    bool announced = false;
    auto next = record(ops, f, spec, m, announced);
    std::vector<dist_op> settled, rest;
    std::vector<fate> fs;
    for (std::size_t i = 0; i < ops.size(); ++i) {
        if (f[i] == fate::pending) {
            rest.push_back(std::move(ops[i]));
            continue;
        }
        settled.push_back(std::move(ops[i]));
        fs.push_back(f[i]);
    }
    e_.record_outcomes(settled, fs, std::vector<bool>(settled.size(), false));
    // The freed slots' next tasks start before the finish notifications
    // go out, if the backend did not publish them (a round trip that other
    // nodes' waiters need, not this node).
    e_.run_ops(rest);
    if (m > 0) fetched(std::move(next), spec.worker, m);
    if (!announced) e_.announce_written(settled, fs);
}

// What a flush leased for the `asked` slots it freed: launched as a
// feed's lease would be, and the node then idle (the queue ran dry) or fed
// again (it filled every slot it asked for).
void node_fast_path::fetched(std::vector<node_task> got, const std::string& wid, std::size_t asked) {
    const std::size_t leased = got.size();
    bool again = false;
    {
        std::lock_guard lk(c_.mu);
        again = e_.leased_round(asked, leased);
    }
    if (lease_round::another_round(asked, leased, take_started(std::move(got), wid, asked)) || again)
        e_.kick_feed();
}

// The finish_and_fetch call: the fate of each outcome it was given (those
// it did not record stay pending, for run_ops), the tasks it leased and
// whether it published the finish notifications of what it recorded.
std::vector<node_task> node_fast_path::record(std::vector<dist_op>& ops, std::vector<fate>& f,
                                              const start_spec& spec, std::size_t m, bool& announced) {
    std::vector<node_outcome> outs;
    std::vector<std::size_t> idx;
    for (std::size_t i = 0; i < ops.size(); ++i) {
        const auto& op = ops[i];
        if (f[i] != fate::pending) continue;
        if (op.expected != op.rec.status && !is_legal_transition(op.expected, op.rec.status)) continue;
        idx.push_back(i);
        outs.push_back({op.rec, op.expected, op.token, op.delay});
    }
    try {
        auto b = nb_->finish_and_fetch(outs, spec, m, wall::now());
        for (std::size_t k = 0; k < idx.size(); ++k)
            f[idx[k]] = b.settled[k] == node_batch::fate::recorded ? fate::written
                        : b.settled[k] == node_batch::fate::stale  ? fate::not_held
                                                                   : fate::pending;
        announced = b.announced;
        return std::move(b.next);
    } catch (const std::exception& e) {
        if (node_engine::backend_failure(e))
            for (std::size_t i : idx) f[i] = fate::failed;  // else: each alone, in run_ops
    }
    return {};
}

}  // namespace orchcore::detail
