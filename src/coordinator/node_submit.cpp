// Distributed mode: bulk submission into the shared store and queue.
#include "coordinator_impl.hpp"

#include <span>
#include <thread>

namespace orchcore {

namespace {
// An event of a bulk submission, emitted once the outcome of all is known.
struct task_event_note {
    event_kind kind;
    std::string task_id;
    std::string detail;
    std::size_t index;  // task_queued: which task
};
}  // namespace


// Distributed mode: records into the shared store (one pipeline), then ids
// into the shared queue (one admission script per chunk). Each task is
// decided as if submitted alone.
std::vector<submit_result> coordinator::submit_many_dist(std::vector<task_request>& tasks) {
    auto& c = *impl_;
    detail::effects fx;
    const std::size_t n = tasks.size();
    std::vector<submit_result> out(n);
    std::vector<task_event_note> notes;  // events to emit under one lock at the end
    auto reject = [&](std::size_t i, rejection_reason r, std::string_view detail, std::chrono::milliseconds ra,
                      const std::string& id) {
        auto& a = out[i].admission;
        a.is_accepted = false;
        a.id = id.empty() ? tasks[i].options.id : std::optional<std::string>(id);
        a.reason = r;
        a.detail = detail;
        a.retry_after = ra;
        notes.push_back({event_kind::task_rejected, id, std::string(detail), {}});
    };
    // 1. Gate and ids, under one lock.
    std::vector<std::size_t> live;  // indexes still in the running
    live.reserve(n);
    std::vector<task_record> recs(n);
    {
        std::lock_guard lk(c.mu);
        for (std::size_t i = 0; i < n; ++i) {
            auto& t = tasks[i];
            if (!priority::is_valid(t.options.priority)) {
                reject(i, rejection_reason::invalid_request, "priority out of range [0, 20]",
                       std::chrono::milliseconds{0}, t.options.id.value_or(""));
            } else if (c.stopping) {
                reject(i, rejection_reason::closed, "coordinator is stopping", std::chrono::milliseconds{0},
                       t.options.id.value_or(""));
            } else if (c.opt.policy == queue_policy::fail_fast &&
                       (c.pick_worker(t.options.tags) == nullptr ||
                        (!c.handlers.count(t.type) && !c.async_handlers.count(t.type)))) {
                reject(i, rejection_reason::policy_violation, "fail-fast: no free worker can take it now",
                       c.opt.queue.default_retry_after, t.options.id.value_or(""));
            } else {
                recs[i].id = t.options.id ? *t.options.id : c.node + "-" + std::to_string(++c.task_seq);
                live.push_back(i);
            }
        }
    }
    // 2. Records.
    const auto now = detail::wall::now();
    for (std::size_t i : live) {
        auto& t = tasks[i];
        auto& rec = recs[i];
        rec.type = std::move(t.type);
        rec.payload = std::move(t.payload);
        rec.priority = t.options.priority;
        rec.owner = std::move(t.options.owner);
        rec.metadata = std::move(t.options.metadata);
        rec.metadata.erase(detail::coordinator_impl::cancel_key);
        rec.tags = std::move(t.options.tags);
        rec.timeout = t.options.timeout;
        rec.turn_timeout = t.options.turn_timeout;
        rec.max_retries = t.options.max_retries.value_or(c.opt.default_max_retries);
        rec.backoff = t.options.backoff.value_or(c.opt.default_backoff);
        rec.created_at = now;
        rec.status = task_status::queued;
    }
    // The store and the transport may fail with backend_unavailable (Redis
    // restarting), after a call was applied or before. Each call is tried up
    // to three times (the Redis client reconnects with backoff within each);
    // a retry that finds what an earlier try wrote (this very record in the
    // store, this id in the transport) takes that try as done. Otherwise a
    // record could be created and never admitted: a task nobody would run.
    constexpr int backend_tries = 3;
    auto with_retries = [](auto&& call, auto&& on_retry) {
        for (int failures = 0;;) {
            try {
                return call();
            } catch (const error& e) {
                if (e.code() != errc::backend_unavailable || ++failures >= backend_tries) throw;
                std::this_thread::sleep_for(std::chrono::milliseconds(25 * failures));  // e.g. Redis still loading
                on_retry();
            }
        }
    };
    // Whether a stored record is this call's own (written by an earlier try).
    auto ours = [&](const task_record& cur, const task_record& rec) {
        using ms = std::chrono::milliseconds;
        return cur.status == task_status::queued && cur.attempts == 0 && cur.type == rec.type &&
               cur.payload == rec.payload && cur.owner == rec.owner &&
               std::chrono::duration_cast<ms>(cur.created_at.time_since_epoch()) ==
                   std::chrono::duration_cast<ms>(rec.created_at.time_since_epoch());
    };
    // Removes records this call created (after a failure), never someone
    // else's record that merely has the same id.
    auto discard = [&](std::span<const std::size_t> which) {
        for (std::size_t i : which) {
            try {
                if (auto cur = c.store->get(recs[i].id); cur && ours(*cur, recs[i])) c.store->erase(recs[i].id);
            } catch (...) {
            }
        }
    };
    {
        std::vector<task_record> batch;
        batch.reserve(live.size());
        for (std::size_t i : live) batch.push_back(recs[i]);
        std::vector<bool> created;
        bool unsure = false;
        try {
            created = with_retries([&] { return c.store->create_many(batch); }, [&] { unsure = true; });
        } catch (...) {
            discard(live);
            throw;
        }
        std::vector<std::size_t> kept;
        kept.reserve(live.size());
        for (std::size_t k = 0; k < live.size(); ++k) {
            const std::size_t i = live[k];
            bool ok = created[k];
            if (!ok && unsure) {
                // Refused as a duplicate after a retry: perhaps of itself.
                auto cur = with_retries([&] { return c.store->get(recs[i].id); }, [] {});
                ok = cur && ours(*cur, recs[i]);
            }
            // A generated id may collide with one of an earlier process
            // that used the same node_id: take the next.
            for (int tries = 0; !ok && !tasks[i].options.id && tries < 100; ++tries) {
                {
                    std::lock_guard lk(c.mu);
                    recs[i].id = c.node + "-" + std::to_string(++c.task_seq);
                }
                ok = with_retries([&] { return c.store->create(recs[i]); }, [] {});
            }
            if (ok) kept.push_back(i);
            else reject(i, rejection_reason::invalid_request, "duplicate id: a task with this id exists",
                        std::chrono::milliseconds{0}, recs[i].id);
        }
        live.swap(kept);
    }
    // 3. The shared queue.
    std::vector<transport_request> reqs;
    reqs.reserve(live.size());
    for (std::size_t i : live) reqs.push_back({recs[i].id, recs[i].priority});
    std::vector<transport_admission> adms;
    bool admit_unsure = false;
    try {
        adms = with_retries([&] { return c.tp->admit_many(reqs); }, [&] { admit_unsure = true; });
    } catch (...) {
        discard(live);
        throw;
    }
    if (admit_unsure) {
        for (std::size_t k = 0; k < live.size(); ++k) {
            auto& adm = adms[k];
            if (!adm && adm.reason == rejection_reason::invalid_request &&
                adm.detail == detail::transport_text_duplicate) {
                // An earlier try got in (the record is new, so the id in
                // the transport is this task).
                adm = transport_admission{};
                adm.is_accepted = true;
                adm.id = recs[live[k]].id;
            }
        }
    }
    std::vector<task_record> evicted;
    std::size_t accepted = 0;
    for (std::size_t k = 0; k < live.size(); ++k) {
        const std::size_t i = live[k];
        auto& adm = adms[k];
        if (!adm) {
            try {
                c.store->erase(recs[i].id);
            } catch (const std::exception&) {
            }
            reject(i, adm.reason, adm.detail, adm.retry_after, recs[i].id);
            continue;
        }
        ++accepted;
        notes.push_back({event_kind::task_queued, recs[i].id, {}, i});
        if (adm.evicted) {
            // Out of the queue already: this node settles its record.
            try {
                if (auto ev = c.store->get(adm.evicted->id); ev && !is_terminal(ev->status)) {
                    task_record r = *ev;
                    r.status = task_status::cancelled;
                    r.finished_at = detail::wall::now();
                    r.error =
                        "evicted by the " + std::string(to_string(c.tp->options().policy)) + " admission policy";
                    if (c.owner_write(r, ev->status)) evicted.push_back(std::move(r));
                }
            } catch (const std::exception&) {
                std::lock_guard lk(c.mu);
                ++c.counters.backend_errors;
            }
        }
        auto& a = out[i].admission;
        a.is_accepted = true;
        a.id = recs[i].id;
        a.position = adm.position;
        if (adm.evicted) a.evicted = adm.evicted;
        out[i].handle = task_handle(this, recs[i].id);
    }
    // 4. Counters and events, in submission order, under one lock.
    {
        std::lock_guard lk(c.mu);
        c.counters.submitted += accepted;
        for (auto& note : notes) {
            if (note.kind == event_kind::task_queued) {
                c.emit(detail::coordinator_impl::make_event_rec(event_kind::task_queued, recs[note.index]));
            } else {
                ++c.counters.rejected;
                event ev;
                ev.kind = note.kind;
                ev.task_id = std::move(note.task_id);
                ev.detail = std::move(note.detail);
                c.emit(std::move(ev));
            }
        }
        for (auto& r : evicted) {
            ++c.counters.cancelled;
            c.emit(detail::coordinator_impl::make_event_rec(event_kind::task_cancelled, r, r.error));
        }
        fx.wake_waiters = !evicted.empty();
    }
    c.apply(fx);
    if (accepted > 0) c.kick_feed();  // start at once what this node can run
    return out;
}

}  // namespace orchcore
