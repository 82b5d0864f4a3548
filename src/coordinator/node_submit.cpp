// Distributed mode: submission. Records go into the shared store (one
// pipeline), then ids into the shared queue (one admission script per
// chunk). Each task is decided as if submitted alone.
#include "node_engine.hpp"

#include <span>
#include <thread>

namespace orchcore::detail {

// An event of a bulk submission, emitted once the outcome of all is known.
struct task_event_note {
    event_kind kind;
    std::string task_id;
    std::string detail;
    std::size_t index;  // task_queued: which task
};

// One submit_many call as it goes through its steps.
struct node_engine::submit_batch {
    std::vector<task_request>& tasks;
    std::vector<submit_result> out;
    std::vector<task_event_note> notes;  // events to emit under one lock at the end
    std::vector<std::size_t> live;       // indexes still in the running
    std::vector<task_record> recs;
    std::vector<task_record> evicted;    // records this node cancelled for the admission policy
    std::vector<bool> resumed;           // an earlier failed try of this submission left the record
    std::size_t accepted = 0;

    void reject(std::size_t i, rejection_reason r, std::string_view detail, std::chrono::milliseconds ra,
                const std::string& id) {
        auto& a = out[i].admission;
        a.is_accepted = false;
        a.id = id.empty() ? tasks[i].options.id : std::optional<std::string>(id);
        a.reason = r;
        a.detail = detail;
        a.retry_after = ra;
        notes.push_back({event_kind::task_rejected, id, std::string(detail), {}});
    }
};

namespace {

// The store and the transport may fail with backend_unavailable (Redis
// restarting), after a call was applied or before. Each call is tried up
// to three times (the Redis client reconnects with backoff within each);
// a retry that finds what an earlier try wrote (this very record in the
// store, this id in the transport) takes that try as done. Otherwise a
// record could be created and never admitted: a task nobody would run.
constexpr int backend_tries = 3;

template <class Call, class OnRetry>
auto with_retries(Call&& call, OnRetry&& on_retry) {
    for (int failures = 0;;) {
        try {
            return call();
        } catch (const error& e) {
            if (e.code() != errc::backend_unavailable || ++failures >= backend_tries) throw;
            std::this_thread::sleep_for(std::chrono::milliseconds(25 * failures));  // e.g. Redis still loading
            on_retry();
        }
    }
}

// Whether a stored record is this call's own (written by an earlier try).
bool ours(const task_record& cur, const task_record& rec) {
    using ms = std::chrono::milliseconds;
    return cur.status == task_status::queued && cur.attempts == 0 && cur.type == rec.type &&
           cur.payload == rec.payload && cur.owner == rec.owner &&
           std::chrono::duration_cast<ms>(cur.created_at.time_since_epoch()) ==
               std::chrono::duration_cast<ms>(rec.created_at.time_since_epoch());
}

// Whether a stored record was left by an earlier try of the same
// submission (same id and content, not started, not cancelled) that
// failed with backend_unavailable after creating it: the record may or may
// not have reached the shared queue, and nobody else would ever put it there.
// Empty if there is none, or the store cannot be read now (the id is then
// refused as a duplicate, as any other).
std::optional<task_record> earlier_try(const task_store& store, const task_record& rec) {
    std::optional<task_record> cur;
    try {
        cur = store.get(rec.id);
    } catch (const error&) {
        return std::nullopt;
    }
    if (cur && cur->status == task_status::queued && cur->attempts == 0 && cur->type == rec.type &&
        cur->payload == rec.payload && cur->owner == rec.owner && cur->priority == rec.priority &&
        cur->metadata.count(node_engine::cancel_key) == 0)
        return cur;
    return std::nullopt;
}

}  // namespace

std::vector<submit_result> node_engine::submit_many(std::vector<task_request>& tasks, coordinator* owner) {
    submit_batch b{tasks, std::vector<submit_result>(tasks.size()), {}, {}, std::vector<task_record>(tasks.size()),
                   {}, std::vector<bool>(tasks.size(), false), 0};
    gate(b);
    fill_records(b);
    create_records(b);
    admit_ids(b, owner);
    publish(b);
    if (b.accepted > 0) kick_feed();  // start at once what this node can run
    return std::move(b.out);
}

submit_result node_engine::submit_one(task_request& task, coordinator* owner) {
    std::vector<task_request> one;
    one.push_back(std::move(task));
    return std::move(submit_many(one, owner).front());
}

// 1. Gate and ids, under one lock.
void node_engine::gate(submit_batch& b) {
    b.live.reserve(b.tasks.size());
    std::lock_guard lk(c.mu);
    for (std::size_t i = 0; i < b.tasks.size(); ++i) {
        auto& t = b.tasks[i];
        if (!priority::is_valid(t.options.priority)) {
            b.reject(i, rejection_reason::invalid_request, "priority out of range [0, 20]",
                     std::chrono::milliseconds{0}, t.options.id.value_or(""));
        } else if (c.stopping) {
            b.reject(i, rejection_reason::closed, "coordinator is stopping", std::chrono::milliseconds{0},
                     t.options.id.value_or(""));
        } else if (c.opt.policy == queue_policy::fail_fast &&
                   (c.pick_worker(t.options.tags, t.options.resources, t.options.session) == nullptr || !c.has_handler(t.type))) {
            b.reject(i, rejection_reason::policy_violation, "fail-fast: no free worker can take it now",
                     c.opt.queue.default_retry_after, t.options.id.value_or(""));
        } else {
            b.recs[i].id = t.options.id ? *t.options.id : c.node + "-" + std::to_string(++c.task_seq);
            b.live.push_back(i);
        }
    }
}

// 2. The records.
void node_engine::fill_records(submit_batch& b) const {
    const auto now = wall::now();
    for (std::size_t i : b.live) {
        auto& t = b.tasks[i];
        auto& rec = b.recs[i];
        rec.type = std::move(t.type);
        rec.payload = std::move(t.payload);
        rec.priority = t.options.priority;
        rec.owner = std::move(t.options.owner);
        rec.metadata = std::move(t.options.metadata);
        rec.metadata.erase(cancel_key);
        rec.tags = std::move(t.options.tags);
        rec.resources = std::move(t.options.resources);
        rec.session = std::move(t.options.session);
        rec.timeout = t.options.timeout;
        rec.turn_timeout = t.options.turn_timeout;
        rec.max_retries = t.options.max_retries.value_or(c.opt.default_max_retries);
        rec.backoff = t.options.backoff.value_or(c.opt.default_backoff);
        rec.created_at = now;
        rec.status = task_status::queued;
    }
}

// Removes records this call created (after a failure), never someone
// else's record that merely has the same id.
void node_engine::discard(const submit_batch& b) {
    for (std::size_t i : b.live) {
        try {
            if (auto cur = c.store->get(b.recs[i].id); cur && ours(*cur, b.recs[i])) c.store->erase(b.recs[i].id);
        } catch (...) {
        }
    }
}

// 3. Into the shared store, one pipeline; a duplicate id is refused.
void node_engine::create_records(submit_batch& b) {
    std::vector<task_record> batch;
    batch.reserve(b.live.size());
    for (std::size_t i : b.live) batch.push_back(b.recs[i]);
    std::vector<bool> created;
    bool unsure = false;
    try {
        created = with_retries([&] { return c.store->create_many(batch); }, [&] { unsure = true; });
    } catch (...) {
        discard(b);
        throw;
    }
    std::vector<std::size_t> kept;
    kept.reserve(b.live.size());
    for (std::size_t k = 0; k < b.live.size(); ++k) {
        const std::size_t i = b.live[k];
        if (create_one(b, i, created[k], unsure)) kept.push_back(i);
        else b.reject(i, rejection_reason::invalid_request, "duplicate id: a task with this id exists",
                      std::chrono::milliseconds{0}, b.recs[i].id);
    }
    b.live.swap(kept);
}

// Whether task i's record is in the store, as this call's own.
bool node_engine::create_one(submit_batch& b, std::size_t i, bool created, bool unsure) {
    bool ok = created;
    if (!ok && unsure) {
        // Refused as a duplicate after a retry: perhaps of itself.
        auto cur = with_retries([&] { return c.store->get(b.recs[i].id); }, [] {});
        ok = cur && ours(*cur, b.recs[i]);
    }
    if (!ok && b.tasks[i].options.id) {
        // The caller's id: perhaps of an earlier call that failed half-way;
        // this one finishes it (admits the id if it is not in the queue yet).
        if (auto cur = earlier_try(*c.store, b.recs[i])) {
            b.recs[i] = std::move(*cur);
            b.resumed[i] = true;
            ok = true;
        }
    }
    // A generated id may collide with one of an earlier process that used
    // the same node_id: take the next.
    for (int tries = 0; !ok && !b.tasks[i].options.id && tries < 100; ++tries) {
        {
            std::lock_guard lk(c.mu);
            b.recs[i].id = c.node + "-" + std::to_string(++c.task_seq);
        }
        ok = with_retries([&] { return c.store->create(b.recs[i]); }, [] {});
    }
    return ok;
}

// 4. Into the shared queue.
void node_engine::admit_ids(submit_batch& b, coordinator* owner) {
    std::vector<transport_request> reqs;
    reqs.reserve(b.live.size());
    for (std::size_t i : b.live) reqs.push_back({b.recs[i].id, b.recs[i].priority});
    std::vector<transport_admission> adms;
    bool admit_unsure = false;
    try {
        adms = with_retries([&] { return tp->admit_many(reqs); }, [&] { admit_unsure = true; });
    } catch (...) {
        discard(b);
        throw;
    }
    for (std::size_t k = 0; k < b.live.size(); ++k) {
        auto& adm = adms[k];
        if ((admit_unsure || b.resumed[b.live[k]]) && !adm && adm.reason == rejection_reason::invalid_request &&
            adm.detail == detail::transport_text_duplicate) {
            // An earlier try got in (the record is new, or an earlier
            // call's own, so the id in the transport is this task).
            adm = transport_admission{};
            adm.is_accepted = true;
            adm.id = b.recs[b.live[k]].id;
        }
        settle_admission(b, b.live[k], adm, owner);
    }
}

// Task i's admission: refused (its record goes), or accepted (a task the
// policy evicted to make room is cancelled by this node).
void node_engine::settle_admission(submit_batch& b, std::size_t i, const transport_admission& adm,
                                   coordinator* owner) {
    if (!adm) {
        try {
            c.store->erase(b.recs[i].id);
        } catch (const std::exception&) {
        }
        b.reject(i, adm.reason, adm.detail, adm.retry_after, b.recs[i].id);
        return;
    }
    ++b.accepted;
    b.notes.push_back({event_kind::task_queued, b.recs[i].id, {}, i});
    if (adm.evicted) {
        // Out of the queue already: this node settles its record.
        try {
            if (auto ev = c.store->get(adm.evicted->id); ev && !is_terminal(ev->status)) {
                task_record r = *ev;
                r.status = task_status::cancelled;
                r.finished_at = wall::now();
                r.error = "evicted by the " + std::string(to_string(tp->options().policy)) + " admission policy";
                if (owner_write(r, ev->status)) b.evicted.push_back(std::move(r));
            }
        } catch (const std::exception&) {
            std::lock_guard lk(c.mu);
            ++c.counters.backend_errors;
        }
    }
    auto& a = b.out[i].admission;
    a.is_accepted = true;
    a.id = b.recs[i].id;
    a.position = adm.position;
    if (adm.evicted) a.evicted = adm.evicted;
    b.out[i].handle = coordinator_impl::make_handle(owner, b.recs[i].id);
}

// 5. Counters and events, in submission order, under one lock.
void node_engine::publish(submit_batch& b) {
    effects fx;
    {
        std::lock_guard lk(c.mu);
        c.counters.submitted += b.accepted;
        for (auto& note : b.notes) {
            if (note.kind == event_kind::task_queued) {
                c.emit(coordinator_impl::make_event_rec(event_kind::task_queued, b.recs[note.index]));
            } else {
                ++c.counters.rejected;
                event ev;
                ev.kind = note.kind;
                ev.task_id = std::move(note.task_id);
                ev.detail = std::move(note.detail);
                c.emit(std::move(ev));
            }
        }
        for (auto& r : b.evicted) {
            ++c.counters.cancelled;
            c.emit(coordinator_impl::make_event_rec(event_kind::task_cancelled, r, r.error));
        }
        fx.wake_waiters = !b.evicted.empty();
    }
    c.apply(fx);
}

}  // namespace orchcore::detail
