#include "runner_impl.hpp"

#include <algorithm>

namespace orchcore::workflow {

namespace {

void require(const std::shared_ptr<runner_impl>& impl) {
    if (!impl) throw error(errc::invalid_argument, "orchcore: empty workflow_handle");
}

std::string failure_of(const workflow_record& r) {
    for (const auto& t : r.tasks) {
        if (t.state != task_state::completed && t.state != task_state::cancelled && t.cause.empty())
            return "workflow " + r.id + ": task '" + t.name + "' " + std::string(to_string(t.state)) + ": " + t.reason;
    }
    return "workflow " + r.id + " failed";
}

// The record's status as the driver has it. Until its driver ends, a
// workflow whose tasks all ended is still being wound up. Once it has
// ended, tasks with no end on record (a task refused admission, or never
// submitted because the workflow had failed first, has no record of its
// own) end with it (failed or cancelled, naming the driver's error), so
// that the record agrees with what get() reports and nobody waits for them.
void settle_with_driver(workflow_record& r, const task_outcome& driver) {
    if (!is_terminal(driver.status)) {
        if (r.finished()) r.status = workflow_status::running;
        return;
    }
    if (r.finished()) return;
    if (driver.status == task_status::completed) {
        r.status = workflow_status::completed;
        return;
    }
    const bool cancelled = driver.status == task_status::cancelled;
    r.status = cancelled ? workflow_status::cancelled : workflow_status::failed;
    for (auto& t : r.tasks) {
        if (t.state != task_state::pending) continue;
        t.state = cancelled ? task_state::cancelled : task_state::failed;
        t.reason = "the workflow ended before this task ran: " + driver.error;
    }
}

}  // namespace

// A workflow that ended on this node while it held it, with its driver
// ended (not cancelled: a cancellation's ends are read from the records):
// its record from the final state kept, without reading every task's
// record or rebuilding, while the records still tell the same (the
// driver's is the same one, the first to expire are still there).
std::optional<workflow_record> runner_impl::final_record(const std::string& id) const {
    const auto kept = finals.find(id);
    if (!kept) return std::nullopt;
    std::vector<std::string> ids;
    ids.reserve(1 + kept->witnesses.size());
    ids.push_back(id);
    ids.insert(ids.end(), kept->witnesses.begin(), kept->witnesses.end());
    const auto reads = c.get_outcomes(ids);
    const auto& driver = reads[0];
    if (!driver || driver->created_at != kept->driver_created ||
        std::any_of(reads.begin() + 1, reads.end(), [](const auto& r) { return !r.has_value(); })) {
        finals.erase(id, kept.get());
        return std::nullopt;
    }
    if (!is_terminal(driver->status) || driver->status == task_status::cancelled) return std::nullopt;
    auto r = make_record(id, kept->state, *driver);
    settle_with_driver(r, *driver);
    return r;
}

std::optional<workflow_record> runner_impl::record_of(const std::string& id) const {
    if (auto r = final_record(id)) return r;
    auto task = c.get_task(id);
    if (!task) return std::nullopt;
    const auto graph = graph_of(task->payload);
    const auto driver = task_outcome::of(std::move(*task));
    auto records = read_records(c, id, *graph);
    const auto state = rebuild(graph, records, driver.status == task_status::cancelled);
    auto r = make_record(id, state, driver, std::move(records.first_ids));
    settle_with_driver(r, driver);
    return r;
}

std::optional<workflow_record> workflow_handle::record() const {
    require(impl_);
    return impl_->record_of(id_);
}

workflow_status workflow_handle::status() const {
    auto r = record();
    if (!r) throw error(errc::not_found, "orchcore: no workflow " + id_);
    return r->status;
}

std::optional<workflow_record> workflow_handle::wait_for(std::chrono::milliseconds timeout) const {
    require(impl_);
    if (!impl_->c.wait_for(id_, timeout)) return std::nullopt;
    return record();
}

workflow_record workflow_handle::wait() const {
    for (;;) {
        if (auto r = wait_for(std::chrono::hours(1))) return std::move(*r);
        if (!impl_->c.get_status(id_)) throw error(errc::not_found, "orchcore: no workflow " + id_);
    }
}

static workflow_record result_or_throw(workflow_record r) {
    if (r.status == workflow_status::completed) return r;
    if (r.status == workflow_status::cancelled) throw cancelled_error("orchcore: workflow " + r.id + " cancelled");
    auto what = failure_of(r);
    throw workflow_failed_error(std::move(r), what);
}

workflow_record workflow_handle::get() const { return result_or_throw(wait()); }

// The coroutines keep a copy of the handle in their frame: the caller's
// handle may be gone by the time they resume.
boost::asio::awaitable<std::optional<workflow_record>> workflow_handle::async_wait_for(
    std::chrono::milliseconds timeout) const {
    require(impl_);
    const workflow_handle self = *this;
    const auto driver = co_await self.impl_->c.async_wait_for(self.id_, timeout);
    if (!driver) co_return std::nullopt;
    co_return self.record();
}

boost::asio::awaitable<workflow_record> workflow_handle::async_get() const {
    const workflow_handle self = *this;
    for (;;) {
        auto r = co_await self.async_wait_for(std::chrono::hours(1));
        if (r) co_return result_or_throw(std::move(*r));
    }
}

bool workflow_handle::cancel() const {
    require(impl_);
    return impl_->cancel(id_);
}

}  // namespace orchcore::workflow
