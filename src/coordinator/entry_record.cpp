// The task table's record: its rarely set fields out of line, and the
// conversions to and from task_record.
#include "entry_record.hpp"

namespace orchcore::detail {

namespace {
bool is_default(const backoff_policy& b) noexcept {
    const backoff_policy d{};
    return b.base == d.base && b.cap == d.cap && b.jitter == d.jitter;
}
}  // namespace

entry_record::entry_record(const entry_record& o)
    : id(o.id),
      type(o.type),
      payload(o.payload),
      worker_id(o.worker_id),
      created_at(o.created_at),
      started_at(o.started_at),
      finished_at(o.finished_at),
      progress(o.progress),
      priority(o.priority),
      max_retries(o.max_retries),
      attempts(o.attempts),
      retries(o.retries),
      turns(o.turns),
      worker_losses(o.worker_losses),
      status(o.status),
      x_(o.x_ ? std::make_unique<extras>(*o.x_) : nullptr) {}

entry_record& entry_record::operator=(const entry_record& o) {
    if (this != &o) *this = entry_record(o);
    return *this;
}

const entry_record::extras& entry_record::none() noexcept {
    static const extras empty{};
    return empty;
}

entry_record::extras& entry_record::more() {
    if (!x_) x_ = std::make_unique<extras>();
    return *x_;
}

entry_record& entry_record::operator=(task_record r) {
    id = std::move(r.id);
    type = std::move(r.type);
    payload = std::move(r.payload);
    worker_id = std::move(r.worker_id);
    created_at = r.created_at;
    started_at = r.started_at;
    finished_at = r.finished_at;
    progress = r.progress;
    priority = r.priority;
    max_retries = r.max_retries;
    attempts = r.attempts;
    retries = r.retries;
    turns = r.turns;
    worker_losses = r.worker_losses;
    status = r.status;
    x_.reset();
    set_owner(std::move(r.owner));
    set_metadata(std::move(r.metadata));
    set_tags(std::move(r.tags));
    set_placement(std::move(r.resources), std::move(r.session));
    set_progress_message(std::move(r.progress_message));
    set_result(std::move(r.result));
    set_error(std::move(r.error));
    set_backoff(r.backoff);
    set_timeout(r.timeout);
    set_turn_timeout(r.turn_timeout);
    return *this;
}

entry_record::operator task_record() const {
    const extras& x = view();
    task_record r;
    r.id = id;
    r.type = type;
    r.payload = payload.str();
    r.priority = priority;
    r.owner = x.owner;
    r.metadata = metadata_of(x.metadata);
    r.tags = x.tags;
    r.resources = x.resources;
    r.session = x.session;
    r.timeout = x.timeout;
    r.turn_timeout = x.turn_timeout;
    r.max_retries = max_retries;
    r.backoff = x.backoff;
    r.status = status;
    r.created_at = created_at;
    r.started_at = started_at.get();
    r.finished_at = finished_at.get();
    r.attempts = attempts;
    r.retries = retries;
    r.turns = turns;
    r.worker_losses = worker_losses;
    r.worker_id = worker_id.str();
    r.progress = progress;
    r.progress_message = x.progress_message;
    r.result = x.result;
    r.error = x.error;
    return r;
}

const std::string& entry_record::owner() const noexcept { return view().owner; }
const metadata_map& metadata_of(const std::shared_ptr<const metadata_map>& m) noexcept {
    static const metadata_map none;
    return m ? *m : none;
}

const std::map<std::string, std::string>& entry_record::metadata() const noexcept { return metadata_of(view().metadata); }
const std::vector<std::string>& entry_record::tags() const noexcept { return view().tags; }
const std::string& entry_record::progress_message() const noexcept { return view().progress_message; }
const std::string& entry_record::result() const noexcept { return view().result; }
const std::string& entry_record::error() const noexcept { return view().error; }
const backoff_policy& entry_record::backoff() const noexcept { return view().backoff; }

void entry_record::set_owner(std::string v) {
    if (x_ || !v.empty()) more().owner = std::move(v);
}
void entry_record::set_metadata(std::map<std::string, std::string> v) {
    if (v.empty()) {
        if (x_) x_->metadata.reset();
        return;
    }
    more().metadata = std::make_shared<const metadata_map>(std::move(v));
}
// Copy on write: attempts holding the block keep the metadata they started with.
void entry_record::erase_metadata(const std::string& key) {
    if (!x_ || !x_->metadata || !x_->metadata->count(key)) return;
    auto next = *x_->metadata;
    next.erase(key);
    set_metadata(std::move(next));
}
void entry_record::set_tags(std::vector<std::string> v) {
    if (x_ || !v.empty()) more().tags = std::move(v);
}
void entry_record::set_placement(resource_request r, std::string session) {
    if (x_ || !r.empty() || !session.empty()) {
        more().resources = std::move(r);
        more().session = std::move(session);
    }
}
void entry_record::set_progress_message(std::string v) {
    if (x_ || !v.empty()) more().progress_message = std::move(v);
}
void entry_record::set_result(std::string v) {
    if (x_ || !v.empty()) more().result = std::move(v);
}
void entry_record::set_error(std::string v) {
    if (x_ || !v.empty()) more().error = std::move(v);
}
void entry_record::set_backoff(const backoff_policy& v) {
    if (x_ || !is_default(v)) more().backoff = v;
}

void entry_record::set_timeout(std::chrono::milliseconds v) {
    if (x_ || v.count() != 0) more().timeout = v;
}
void entry_record::set_turn_timeout(std::chrono::milliseconds v) {
    if (x_ || v.count() != 0) more().turn_timeout = v;
}

}  // namespace orchcore::detail
