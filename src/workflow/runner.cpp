#include "runner_impl.hpp"

#include <orchcore/workflow/json.hpp>

#include <algorithm>
#include <functional>
#include <random>
#include <string_view>

namespace orchcore::workflow {

namespace {

bool is_duplicate(std::string_view detail) { return detail.starts_with("duplicate id"); }

void validate_id(const std::string& id) {
    constexpr std::size_t max_length = 200;
    if (id.empty() || id.size() > max_length) throw invalid_argument("id", id, "a workflow id is 1 to 200 characters");
    for (const char ch : id) {
        if (ch == '/' || static_cast<unsigned char>(ch) <= ' ' || ch == 0x7f) {
            throw invalid_argument("id", id, "a workflow id has no '/', spaces or control characters");
        }
    }
}

std::string generated_id(const std::string& node) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "wf-" + node + "-";
    auto x = rng();
    for (int i = 0; i < 16; ++i, x >>= 4) out.push_back(hex[x & 0xf]);
    return out;
}

void publish(coordinator& c, event_kind kind, const std::string& id, std::string detail) {
    event e;
    e.kind = kind;
    e.task_id = id;
    e.detail = std::move(detail);
    c.events().publish(e);
}

}  // namespace

runner_impl::runner_impl(coordinator& c_, runner_options o) : c(c_), options(std::move(o)) {
    if (options.poll_interval.count() <= 0) {
        throw invalid_argument("poll_interval", std::to_string(options.poll_interval.count()), "must be positive");
    }
    if (options.driver_priority < priority::min || options.driver_priority > priority::max) {
        throw invalid_argument("driver_priority", std::to_string(options.driver_priority), "must be in [0, 20]");
    }
}

void runner_impl::start() {
    std::weak_ptr<runner_impl> self = shared_from_this();
    c.register_handler(std::string(driver_type), [self](task_context& ctx) -> std::string {
        auto me = self.lock();
        if (!me) throw std::runtime_error("the workflow runner of this node is gone");
        return me->driver_turn(ctx);
    });
    // Set before the watch: its callbacks read them.
    notified = true;
    advance_inline = !c.distributed();
    try {
        // Local mode: told how each task ended, nothing is read back.
        // Distributed mode: told ids, the records are read.
        if (advance_inline) {
            watch = c.watch_outcomes([self](std::span<const finished_task> ended) {
                if (auto me = self.lock()) me->on_outcomes(ended);
            });
        } else {
            watch = c.watch_finished_many([self](std::span<const std::string> ids) {
                if (auto me = self.lock()) me->on_finished(ids);
            });
        }
    } catch (const std::exception&) {
        watch.reset();  // the driver's turns look at the records instead
    }
    if (!watch) {
        notified = false;
        advance_inline = false;
        sub = c.events().subscribe(event_channel::tasks, [self](const event& e) {
            if (auto me = self.lock()) me->on_event(e);
        });
    }
    thread = std::thread([this] { run(); });
}

void runner_impl::stop() {
    sub.reset();
    watch.reset();
    {
        std::unique_lock lk(m);
        stopping = true;
        cv.notify_all();
        // A thread advancing workflows ends its job first (unless it is this one).
        cv.wait(lk, [&] { return !busy || busy_owner == std::this_thread::get_id(); });
    }
    if (thread.joinable()) thread.join();
}

void runner_impl::post(runner_job j) {
    {
        std::lock_guard lk(m);
        jobs.push_back(std::move(j));
    }
    cv.notify_one();
}

void runner_impl::on_event(const event& e) {
    if (e.kind == event_kind::task_completed || e.kind == event_kind::task_failed ||
        e.kind == event_kind::task_cancelled || e.kind == event_kind::task_timed_out) {
        on_finished(std::span<const std::string>(&e.task_id, 1));
    }
}

// Tasks ended: each one of a held workflow's tasks (advance it), a held
// workflow's driver (look at its status), or "" (some notifications may
// have been lost: look at every running task of every held workflow).
// In local mode this thread advances the workflows itself when no other
// thread does; otherwise the thread that does takes the jobs before it
// lets go, or the runner thread is woken.
void runner_impl::on_finished(std::span<const std::string> ids) {
    std::unique_lock lk(m);
    bool queued = false;
    for (const auto& id : ids) queued = queue_finished(id) || queued;
    if (!queued) return;
    if (advance_inline && !busy && !stopping) {
        busy = true;
        busy_owner = std::this_thread::get_id();
        drain(lk);
        release(lk, true);
        return;
    }
    const bool wake = !busy;
    lk.unlock();
    if (wake) cv.notify_one();
}

// Local mode: tasks ended, with how. This thread applies them and advances
// their workflows when no other thread does; otherwise the thread that does
// takes those of workflows held here before it lets go (drain), or the
// runner thread does (run).
void runner_impl::on_outcomes(std::span<const finished_task> ended) {
    std::unique_lock lk(m);
    if (stopping) return;
    if (busy) {
        for (const auto& f : ended)
            if (holds_task(f.id)) outcomes.push_back(f);
        return;
    }
    busy = true;
    busy_owner = std::this_thread::get_id();
    lk.unlock();
    try {
        apply_outcomes(ended);
    } catch (const std::exception&) {
        // Out of memory: the next driver turn looks at the running tasks.
    }
    lk.lock();
    drain(lk);
    release(lk, true);
}

// Lock held. Whether `task_id` names a workflow held here that has not
// ended (its driver) or a task of one.
bool runner_impl::holds_task(std::string_view task_id) const {
    const auto it = held.find(task_id.substr(0, task_id.find('/')));
    return it != held.end() && !it->second.end;
}

// Lock held. Queues the job for a task that ended; false if none (not a
// task of a workflow held here, or of one that ended).
bool runner_impl::queue_finished(const std::string& id) {
    if (id.empty()) {
        for (const auto& [wf, h] : held)
            if (!h.end) jobs.push_back({.workflow = wf, .full = true});
        return true;
    }
    const auto slash = id.find('/');
    const auto it = held.find(std::string_view(id).substr(0, slash));
    if (it == held.end() || it->second.end) return false;
    // A shard's id after its first round ends in "@r<round>": the
    // runner looks at the record of the shard's current round.
    if (slash == std::string::npos) {
        jobs.push_back({.workflow = id});
        return true;
    }
    const auto task = std::string_view(id).substr(slash + 1, id.find('@', slash) - slash - 1);
    // Tasks of one workflow ending in a row make one job (as the runner
    // would merge them), one name a line.
    if (!jobs.empty() && !jobs.back().task.empty() && jobs.back().workflow == it->first)
        add_task_names(jobs.back().task, task);
    else
        jobs.push_back({.workflow = it->first, .task = std::string(task)});
    return true;
}

std::optional<workflow_end> runner_impl::take_end(const std::string& id, bool& held_here) {
    std::lock_guard lk(m);
    const auto it = held.find(id);
    held_here = it != held.end();
    if (!held_here || !it->second.end) return std::nullopt;
    auto end = std::move(it->second.end);
    held.erase(it);
    return end;
}

// One turn of a workflow's driver task: hands the workflow to the runner
// thread. A node that does not hold it rebuilds it from the records; the
// turn waits a little for that, so that a workflow rebuilt ended ends in
// this turn. Otherwise the driver comes back after the poll interval.
std::string runner_impl::driver_turn(task_context& ctx) {
    bool held_here = false;
    auto end = take_end(ctx.id(), held_here);
    if (!end) {
        // A workflow held here needs no spec: its graph is in hand.
        auto done = held_here ? nullptr : std::make_shared<std::promise<void>>();
        post({.workflow = ctx.id(), .spec = held_here ? std::string{} : ctx.payload(), .done = done,
              .first = ctx.turn() == 0 && ctx.attempt() == 1, .turn = true});
        if (done) {
            (void)done->get_future().wait_for(std::min<std::chrono::milliseconds>(options.poll_interval, std::chrono::seconds(1)));
            end = take_end(ctx.id(), held_here);
        }
    }
    if (!end) {
        ctx.continue_later(options.poll_interval);
        return {};
    }
    announce_end(ctx.id(), *end);
    if (end->status != workflow_status::completed) throw non_retryable_error(end->reason);
    return end->reason;
}

// The workflow's end event, after its workflow.submitted: a workflow that
// ends before its submitter published that (a short one, the submitting
// thread descheduled) waits for it, a second at most.
void runner_impl::announce_end(const std::string& id, const workflow_end& end) {
    {
        std::unique_lock lk(m);
        cv.wait_for(lk, std::chrono::seconds(1), [&] { return !announcing.contains(id); });
    }
    const auto kind = end.status == workflow_status::completed   ? event_kind::workflow_completed
                      : end.status == workflow_status::cancelled ? event_kind::workflow_cancelled
                                                                 : event_kind::workflow_failed;
    publish(c, kind, id, end.reason);
}

// The spec's JSON text and graph: validated and expanded once per spec,
// encoded once per spec submitted again soon.
std::shared_ptr<const encoded_spec> runner_impl::encode(const workflow_spec& spec) {
    if (auto e = specs.find(spec)) return e;
    auto json = to_workflow_json(spec);
    auto graph = graphs.find(json);
    if (!graph) {
        graph = std::make_shared<const workflow_graph>(expand(spec, options.limits));
        graphs.put(json, graph);  // before submitting: the driver's first turn may come first
    }
    auto e = std::make_shared<const encoded_spec>(encoded_spec{spec, std::move(json), std::move(graph)});
    specs.put(e);
    return e;
}

namespace {

// A submission in progress, from before its driver is admitted to after
// its workflow.submitted event went out (however it ends).
class announcing_guard {
public:
    announcing_guard(runner_impl& r, const std::string& id) : r_(r), id_(id) {
        std::lock_guard lk(r_.m);
        r_.announcing.insert(id_);
    }
    ~announcing_guard() {
        {
            std::lock_guard lk(r_.m);
            r_.announcing.erase(r_.announcing.find(id_));
        }
        r_.cv.notify_all();
    }
    announcing_guard(const announcing_guard&) = delete;
    announcing_guard& operator=(const announcing_guard&) = delete;

private:
    runner_impl& r_;
    const std::string& id_;
};

}  // namespace

workflow_handle runner_impl::submit(const workflow_spec& spec, workflow_submit_options o) {
    const auto encoded = encode(spec);
    const auto& json = encoded->json;
    if (o.id) validate_id(*o.id);
    const bool chosen = o.id.has_value();
    orchcore::task_options to;
    to.id = chosen ? *o.id : generated_id(c.node_id());
    to.priority = options.driver_priority;
    to.metadata[std::string(meta_name)] = spec.name;
    const auto id = *to.id;
    const announcing_guard guard(*this, id);
    auto r = c.submit_async(std::string(driver_type), json, std::move(to));
    if (!r.accepted()) {
        if (chosen && is_duplicate(r.admission.detail)) return workflow_handle(shared_from_this(), id);
        throw rejected_error(r.admission.reason, r.admission.retry_after,
                             "workflow not admitted: " + std::string(r.admission.detail));
    }
    publish(c, event_kind::workflow_submitted, id, spec.name);
    return workflow_handle(shared_from_this(), id);
}

bool runner_impl::cancel(const std::string& id) {
    const bool cancelled = c.cancel(id);
    if (!cancelled) return false;
    (void)c.wait_for(id, std::chrono::minutes(1));  // a running driver turn is short
    // Once the runner thread has seen the cancellation, this node submits
    // nothing more of the workflow; what it submitted is cancelled here.
    auto done = std::make_shared<std::promise<void>>();
    auto seen = done->get_future();
    post({id, {}, {}, true, done});
    (void)seen.wait_for(std::chrono::minutes(1));
    if (const auto driver = c.get_task(id)) {
        const auto graph = graph_of(driver->payload);
        for (int pass = 0; pass < 2; ++pass) {
            const auto rounds = latest_rounds(c, id, *graph);  // a fan-out's tasks of its latest round
            for (std::size_t i = 0; i < graph->size(); ++i) {
                const auto& n = graph->tasks()[i];
                (void)c.cancel(task_id(id, n.name, n.is_shard() ? rounds[i] : 1));
            }
        }
    }
    publish(c, event_kind::workflow_cancelled, id, "cancelled");
    return true;
}

std::shared_ptr<const encoded_spec> spec_cache::find(const workflow_spec& spec) const {
    std::lock_guard lk(m_);
    for (const auto& e : recent_)
        if (e->spec == spec) return e;
    return nullptr;
}

void spec_cache::put(std::shared_ptr<const encoded_spec> e) {
    std::lock_guard lk(m_);
    recent_.push_front(std::move(e));
    if (recent_.size() > capacity) recent_.pop_back();
}

std::shared_ptr<const workflow_graph> graph_cache::find(std::string_view spec) const {
    std::lock_guard lk(m_);
    const auto it = graphs_.find(spec);
    return it == graphs_.end() ? nullptr : it->second;
}

void graph_cache::put(std::string spec, std::shared_ptr<const workflow_graph> g) {
    std::lock_guard lk(m_);
    const auto [it, fresh] = graphs_.try_emplace(std::move(spec), std::move(g));
    if (!fresh) return;  // the same spec: either graph will do
    order_.push_back(&it->first);
    if (order_.size() <= capacity) return;
    graphs_.erase(graphs_.find(*order_.front()));
    order_.pop_front();
}

std::shared_ptr<const workflow_graph> runner_impl::graph_of(const std::string& spec) const {
    if (auto g = graphs.find(spec)) return g;
    auto g = std::make_shared<const workflow_graph>(expand(parse_workflow_json(spec, options.limits), options.limits));
    graphs.put(spec, g);
    return g;
}

workflow_runner::workflow_runner(coordinator& c, runner_options options)
    : impl_(std::make_shared<runner_impl>(c, std::move(options))) {
    impl_->start();
}

workflow_runner::~workflow_runner() { impl_->stop(); }

workflow_handle workflow_runner::submit_workflow(const workflow_spec& spec, workflow_submit_options options) {
    return impl_->submit(spec, std::move(options));
}

workflow_handle workflow_runner::handle(std::string id) { return workflow_handle(impl_, std::move(id)); }

}  // namespace orchcore::workflow
