// Local mode: admission into the task table and the admission queue.
#include "local_engine.hpp"

#include <algorithm>
#include <exception>

namespace orchcore::detail {

/// Lock held. Throws if no handler is registered for the type.
void local_engine::require_handler(const std::string& type) const {
    if (!c.handlers.count(type) && !c.async_handlers.count(type))
        throw invalid_argument("type", "\"" + type + "\"", "no handler is registered for this task type");
}

/// Lock held. Refuses a task: the result, the counter and the event.
void local_engine::reject(submit_result& out, const task_options& o, rejection_reason r, std::string_view why,
                          std::chrono::milliseconds retry_after) {
    out.admission.is_accepted = false;
    out.admission.id = o.id;
    out.admission.reason = r;
    out.admission.detail = why;
    out.admission.retry_after = retry_after;
    ++c.counters.rejected;
    event ev;
    ev.kind = event_kind::task_rejected;
    ev.task_id = o.id.value_or("");
    ev.detail = std::string(why);
    c.emit(std::move(ev));
}

/// Lock held. Admits one task or rejects it, filling `out`. The caller has
/// checked its handler and options, and dispatches. The entry goes into the
/// table first (one lookup: the insertion, which finds a duplicate id) and
/// leaves it again if admission refuses the task.
void local_engine::admit_local(std::string& type, std::string& payload, task_options& o, submit_result& out,
                               coordinator* owner, effects& fx, wall::time_point created_at) {
    constexpr std::chrono::milliseconds now_or_never{0};
    if (c.stopping) return reject(out, o, rejection_reason::closed, "coordinator is stopping", now_or_never);
    const auto it = insert_entry(o);
    if (it == c.tasks.end())
        return reject(out, o, rejection_reason::invalid_request, "duplicate id: a task with this id exists",
                      now_or_never);
    if (!priority::is_valid(o.priority)) {
        c.tasks.erase(it);
        return reject(out, o, rejection_reason::invalid_request, "priority out of range [0, 20]", now_or_never);
    }
    task_entry& t = it->second;
    if (!enqueue(t.rec.id, o, out, t.queue_id, fx)) {
        c.tasks.erase(it);
        return;
    }
    const bool fail_fast = c.opt.policy == queue_policy::fail_fast;
    fill_record(t, type, payload, o, created_at);
    if (!fail_fast) t.where = location::queue;
    if (o.timeout.count() > 0) {
        t.set_deadline(deadline_after(o.timeout));
        deadlines.emplace(*t.deadline(), t.rec.id);
    }
    ++c.counters.submitted;
    c.emit_task(event_kind::task_queued, t);
    if (fail_fast) start_attempt(t, *c.pick_worker(t.rec.tags(), t.rec.resources(), t.rec.session()), fx);
    out.admission.is_accepted = true;
    // A caller's id is the task's: it moves into the result instead of a copy.
    if (o.id) out.admission.id = std::move(o.id);
    else out.admission.id = t.rec.id;
    out.handle = coordinator_impl::make_handle(owner, t.rec.id);
}

/// Lock held. The admission decision: fail-fast admits only if a fitting
/// worker can start the task now; otherwise the admission queue decides.
/// False: rejected (`out` says why).
bool local_engine::enqueue(const std::string& id, const task_options& o, submit_result& out, job_id& queue_id,
                           effects& fx) {
    if (c.opt.policy == queue_policy::fail_fast) {
        if (c.pick_worker(o.tags, o.resources, o.session) == nullptr) {
            reject(out, o, rejection_reason::policy_violation, "fail-fast: no free worker can take it now",
                   c.opt.queue.default_retry_after);
            return false;
        }
        out.admission.position = 0;
        return true;
    }
    auto r = queue->try_push(std::string(id), {.priority = o.priority});
    if (!r) {
        reject(out, o, r.reason, r.detail, r.retry_after);
        return false;
    }
    queue_id = *r.id;
    out.admission.position = r.position;
    // A task the policy pushed out to make room is cancelled now, whatever
    // becomes of this one.
    if (r.evicted) {
        // The caller learns which task made room: its id, priority and
        // admission time (the queue's own id stays internal).
        out.admission.evicted.emplace(queue_entry<std::monostate, std::string>{
            r.evicted->value, {}, r.evicted->priority, r.evicted->enqueued_at});
        if (auto eit = c.tasks.find(r.evicted->value); eit != c.tasks.end()) {
            eit->second.where = location::none;  // already out of the queue
            finish(eit->second, task_status::cancelled,
                   "evicted by the " + std::string(to_string(c.opt.policy)) + " admission policy", fx);
        }
    }
    return true;
}

/// Lock held. A new entry under the caller's id (end() if the table has
/// one with that id) or under a generated "task-<n>", the next number
/// free (a caller may have taken one).
task_table::iterator local_engine::insert_entry(const task_options& o) {
    if (o.id) {
        const auto [it, inserted] = c.tasks.try_emplace(*o.id);
        return inserted ? it : c.tasks.end();
    }
    for (;;) {
        const auto [it, inserted] = c.tasks.try_emplace("task-" + std::to_string(++c.task_seq));
        if (inserted) return it;
    }
}

/// The record of a newly admitted task.
void local_engine::fill_record(task_entry& t, std::string& type, std::string& payload, task_options& o,
                               wall::time_point created_at) const {
    t.rec.type = std::move(type);
    t.rec.payload = std::move(payload);
    t.rec.priority = o.priority;
    t.rec.set_owner(std::move(o.owner));
    t.rec.set_metadata(std::move(o.metadata));
    t.rec.set_tags(std::move(o.tags));
    t.rec.set_placement(std::move(o.resources), std::move(o.session));
    t.rec.set_timeout(o.timeout);
    t.rec.set_turn_timeout(o.turn_timeout);
    t.rec.max_retries = o.max_retries.value_or(c.opt.default_max_retries);
    t.rec.set_backoff(o.backoff.value_or(c.opt.default_backoff));
    t.rec.created_at = created_at;
    c.set_status(t, task_status::queued);
}

// Outside the lock, with a user's store: the record is created before
// admission, so a create the store refuses (an id another coordinator
// sharing the store took) is this caller's rejection. A generated id the
// store holds already gives way to the next number. An invalid priority
// writes nothing: admission refuses it.
local_engine::creation local_engine::create_first(task_request& r) {
    creation made;
    made.created_at = wall::now();
    if (!c.write_through || !priority::is_valid(r.options.priority)) return made;
    for (;;) {
        const bool generated = !r.options.id;
        if (generated) r.options.id = "task-" + std::to_string(++c.task_seq);
        task_entry probe;
        std::string type = r.type, payload = r.payload;
        task_options o = r.options;
        probe.rec.id = *r.options.id;
        fill_record(probe, type, payload, o, made.created_at);
        made.state = c.store->create(probe.rec) ? creation::created : creation::taken;
        if (made.state == creation::created || !generated) return made;
    }
}

/// Lock held. Admission of a task create_first has seen to. A task the
/// store holds already is refused; one refused after its record was
/// created has the record erased again (after the lock).
void local_engine::admit_created(task_request& r, const creation& made, submit_result& out, coordinator* owner,
                                 effects& fx) {
    if (made.state == creation::taken)
        return reject(out, r.options, rejection_reason::invalid_request, "duplicate id: a task with this id exists",
                      std::chrono::milliseconds{0});
    admit_local(r.type, r.payload, r.options, out, owner, fx, made.created_at);
    if (made.state == creation::created && !out.admission.is_accepted)
        c.store_io.push([&s = *c.store, id = *r.options.id] { (void)s.erase(id); });
}

std::vector<submit_result> local_engine::submit_many(std::vector<task_request>& tasks, coordinator* owner) {
    if (!c.write_through) return submit_many_unstored(tasks, owner);
    {
        // Every type first: a missing handler rejects the whole call.
        std::lock_guard lk(c.mu);
        for (const auto& t : tasks) require_handler(t.type);
    }
    std::vector<submit_result> out(tasks.size());
    // One lock round trip per chunk, not per task; chunks keep each hold
    // short, so workers finishing tasks are not held up for long.
    constexpr std::size_t chunk = 64;
    for (std::size_t first = 0; first < tasks.size(); first += chunk) {
        const std::size_t last = std::min(tasks.size(), first + chunk);
        // A store that throws on a create ends the call there; the tasks
        // before it, created already, are admitted first.
        std::vector<creation> created;
        std::exception_ptr store_error;
        for (std::size_t i = first; i < last && !store_error; ++i) {
            try {
                created.push_back(create_first(tasks[i]));
            } catch (...) {
                store_error = std::current_exception();
            }
        }
        effects fx;
        {
            std::lock_guard lk(c.mu);
            for (std::size_t i = 0; i < created.size(); ++i)
                admit_created(tasks[first + i], created[i], out[first + i], owner, fx);
            dispatch(fx);
        }
        c.apply(fx);
        if (store_error) std::rethrow_exception(store_error);
    }
    return out;
}

// Without a user's store nothing is created outside the lock: one lock
// round trip per chunk, the first also checking every type.
std::vector<submit_result> local_engine::submit_many_unstored(std::vector<task_request>& tasks, coordinator* owner) {
    std::vector<submit_result> out(tasks.size());
    constexpr std::size_t chunk = 64;
    for (std::size_t first = 0; first < tasks.size(); first += chunk) {
        const std::size_t last = std::min(tasks.size(), first + chunk);
        const auto created_at = wall::now();
        effects fx;
        {
            std::lock_guard lk(c.mu);
            // Every type first: a missing handler rejects the whole call.
            if (first == 0)
                for (const auto& t : tasks) require_handler(t.type);
            for (std::size_t i = first; i < last; ++i)
                admit_local(tasks[i].type, tasks[i].payload, tasks[i].options, out[i], owner, fx, created_at);
            dispatch(fx);
        }
        c.apply(fx);
    }
    return out;
}

submit_result local_engine::submit_one(task_request& task, coordinator* owner) {
    submit_result out;
    effects fx;
    if (!c.write_through) {
        // Nothing to create outside the lock: one lock round trip.
        const auto created_at = wall::now();
        {
            std::lock_guard lk(c.mu);
            require_handler(task.type);
            admit_local(task.type, task.payload, task.options, out, owner, fx, created_at);
            if (out.admission.is_accepted) dispatch(fx);
        }
        c.apply(fx);
        return out;
    }
    {
        std::lock_guard lk(c.mu);
        require_handler(task.type);
    }
    const creation made = create_first(task);
    {
        std::lock_guard lk(c.mu);
        admit_created(task, made, out, owner, fx);
        if (out.admission.is_accepted) dispatch(fx);
    }
    c.apply(fx);
    return out;
}

}  // namespace orchcore::detail
