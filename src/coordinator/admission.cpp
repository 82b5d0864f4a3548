// Local mode: admission of one task into the table and the queue.
#include "coordinator_impl.hpp"

namespace orchcore::detail {

/// Lock held. Throws if no handler is registered for the type.
void coordinator_impl::require_handler(const std::string& type) const {
    if (!handlers.count(type) && !async_handlers.count(type))
        throw invalid_argument("type", "\"" + type + "\"", "no handler is registered for this task type");
}

/// Lock held. Local mode: admits one task or rejects it, filling `out`.
/// The caller has checked its handler and options, and dispatches.
void coordinator_impl::admit_local(std::string& type, std::string& payload, task_options& o, submit_result& out,
                 coordinator* owner, effects& fx) {
    auto reject = [&](rejection_reason r, std::string_view why, std::chrono::milliseconds retry_after) {
        out.admission.is_accepted = false;
        out.admission.id = o.id;
        out.admission.reason = r;
        out.admission.detail = why;
        out.admission.retry_after = retry_after;
        ++counters.rejected;
        event ev;
        ev.kind = event_kind::task_rejected;
        ev.task_id = o.id.value_or("");
        ev.detail = std::string(why);
        emit(std::move(ev));
    };
    auto next_id = [this] { return "task-" + std::to_string(++task_seq); };
    if (stopping) {
        reject(rejection_reason::closed, "coordinator is stopping", std::chrono::milliseconds{0});
        return;
    }
    if (o.id && (tasks.count(*o.id) || (write_through && store->get(*o.id)))) {
        reject(rejection_reason::invalid_request, "duplicate id: a task with this id exists",
               std::chrono::milliseconds{0});
        return;
    }
    if (!priority::is_valid(o.priority)) {
        reject(rejection_reason::invalid_request, "priority out of range [0, 20]", std::chrono::milliseconds{0});
        return;
    }
    const bool fail_fast = opt.policy == queue_policy::fail_fast;
    std::string id = o.id ? *o.id : next_id();
    job_id queue_id = 0;
    if (fail_fast) {
        // Admitted only if a fitting worker can start it now.
        if (pick_worker(o.tags) == nullptr) {
            reject(rejection_reason::policy_violation, "fail-fast: no free worker can take it now",
                   opt.queue.default_retry_after);
            return;
        }
        out.admission.position = 0;
    } else {
        auto r = queue->try_push(std::string(id), {.priority = o.priority});
        if (!r) {
            reject(r.reason, r.detail, r.retry_after);
            return;
        }
        queue_id = *r.id;
        out.admission.position = r.position;
        // A task the policy pushed out to make room is cancelled now,
        // whatever becomes of this one.
        if (r.evicted) {
            // The caller learns which task made room: its id, priority
            // and admission time (the queue's own id stays internal).
            out.admission.evicted.emplace(queue_entry<std::monostate, std::string>{
                r.evicted->value, {}, r.evicted->priority, r.evicted->enqueued_at});
            if (auto eit = tasks.find(r.evicted->value); eit != tasks.end()) {
                eit->second.where = location::none;  // already out of the queue
                finish(eit->second, task_status::cancelled,
                       "evicted by the " + std::string(to_string(opt.policy)) + " admission policy", fx);
            }
        }
    }
    // One lookup: the insertion itself. A generated id can collide only
    // with a caller's "task-<n>"; then the task takes the next number.
    auto [it, inserted] = tasks.try_emplace(id);
    while (!inserted) {
        if (!fail_fast) queue->cancel(queue_id);
        id = next_id();
        std::tie(it, inserted) = tasks.try_emplace(id);
        if (inserted && !fail_fast) {
            // Back in under the new id, in the room the cancel freed;
            // a refusal is still handled rather than assumed away.
            auto r = queue->try_push(std::string(id), {.priority = o.priority});
            if (!r) {
                tasks.erase(it);
                reject(r.reason, r.detail, r.retry_after);
                return;
            }
            queue_id = *r.id;
            out.admission.position = r.position;
        }
    }
    task_entry& t = it->second;
    t.queue_id = queue_id;
    t.rec.id = id;
    t.rec.type = std::move(type);
    t.rec.payload = std::move(payload);
    t.rec.priority = o.priority;
    t.rec.owner = std::move(o.owner);
    t.rec.metadata = std::move(o.metadata);
    t.rec.tags = std::move(o.tags);
    t.rec.timeout = o.timeout;
    t.rec.turn_timeout = o.turn_timeout;
    t.rec.max_retries = o.max_retries.value_or(opt.default_max_retries);
    t.rec.backoff = o.backoff.value_or(opt.default_backoff);
    t.rec.created_at = wall::now();
    set_status(t, task_status::queued);
    if (!fail_fast) t.where = location::queue;
    if (write_through && !store->create(t.rec)) {
        // Another coordinator sharing the store took this id first.
        if (!fail_fast) queue->cancel(queue_id);
        tasks.erase(it);
        reject(rejection_reason::invalid_request, "duplicate id: a task with this id exists",
               std::chrono::milliseconds{0});
        return;
    }
    if (o.timeout.count() > 0) {
        t.deadline = deadline_after(o.timeout);
        deadlines.emplace(*t.deadline, id);
    }
    ++counters.submitted;
    emit_task(event_kind::task_queued, t);
    if (fail_fast) start_attempt(t, *pick_worker(t.rec.tags), fx);
    out.admission.is_accepted = true;
    out.admission.id = id;
    out.handle = task_handle(owner, std::move(id));
}

}  // namespace orchcore::detail
