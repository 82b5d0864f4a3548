// The task table's record (src/coordinator/entry_record.hpp): whatever a
// task_record holds reads back the same after a trip through the table's
// compact form, whichever of its rarely set fields are set.
#include "../../src/coordinator/entry_record.hpp"

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

namespace od = orchcore::detail;
using orchcore::task_record;
using ms = std::chrono::milliseconds;
using wall_tp = std::chrono::system_clock::time_point;

namespace {

void require_same(const task_record& a, const task_record& b) {
    REQUIRE(a.id == b.id);
    REQUIRE(a.type == b.type);
    REQUIRE(a.payload == b.payload);
    REQUIRE(a.priority == b.priority);
    REQUIRE(a.owner == b.owner);
    REQUIRE(a.metadata == b.metadata);
    REQUIRE(a.tags == b.tags);
    REQUIRE(a.timeout == b.timeout);
    REQUIRE(a.turn_timeout == b.turn_timeout);
    REQUIRE(a.max_retries == b.max_retries);
    REQUIRE(a.backoff.base == b.backoff.base);
    REQUIRE(a.backoff.cap == b.backoff.cap);
    REQUIRE(a.backoff.jitter == b.backoff.jitter);
    REQUIRE(a.status == b.status);
    REQUIRE(a.created_at == b.created_at);
    REQUIRE(a.started_at == b.started_at);
    REQUIRE(a.finished_at == b.finished_at);
    REQUIRE(a.attempts == b.attempts);
    REQUIRE(a.retries == b.retries);
    REQUIRE(a.turns == b.turns);
    REQUIRE(a.worker_losses == b.worker_losses);
    REQUIRE(a.worker_id == b.worker_id);
    REQUIRE(a.progress == b.progress);
    REQUIRE(a.progress_message == b.progress_message);
    REQUIRE(a.result == b.result);
    REQUIRE(a.error == b.error);
}

std::optional<wall_tp> maybe_time(bool set, std::int64_t v) {
    if (!set) return std::nullopt;
    return wall_tp(ms(v));
}

}  // namespace

TEST_CASE("entry_record: a task_record reads back unchanged", "[coordinator][entry_record]") {
    rc::prop("round trip", [](std::string id, std::string type, std::string payload, std::string owner,
                              std::map<std::string, std::string> metadata, std::vector<std::string> tags,
                              std::int64_t timeout, std::int64_t turn_timeout, std::uint32_t max_retries,
                              bool jitter, std::uint8_t status, bool started, bool finished, std::int64_t any_at,
                              std::uint32_t counters, std::string worker, std::string message, std::string result,
                              std::string error) {
        // Any time a system_clock time_point holds: milliseconds that fit in
        // its nanoseconds.
        const std::int64_t at = any_at % (std::numeric_limits<std::int64_t>::max() / 1'000'000);
        task_record r;
        r.id = id;
        r.type = type;
        r.payload = payload;
        r.priority = *rc::gen::inRange(0, 21);
        r.owner = owner;
        r.metadata = metadata;
        r.tags = tags;
        r.timeout = ms(timeout);
        r.turn_timeout = ms(turn_timeout);
        r.max_retries = max_retries;
        r.backoff = {ms(*rc::gen::inRange(0, 1000)), ms(*rc::gen::inRange(1000, 100'000)), jitter};
        r.status = static_cast<orchcore::task_status>(status % 7);
        r.created_at = wall_tp(ms(at));
        r.started_at = maybe_time(started, at);
        r.finished_at = maybe_time(finished, at / 2);
        r.attempts = counters;
        r.retries = counters / 2;
        r.turns = counters / 3;
        r.worker_losses = counters / 5;
        r.worker_id = worker;
        r.progress = *rc::gen::inRange(0, 101) / 100.0;
        r.progress_message = message;
        r.result = result;
        r.error = error;
        od::entry_record e;
        e = r;
        require_same(task_record(e), r);
        const od::entry_record copy(e);  // a copy carries the rarely set fields too
        require_same(task_record(copy), r);
    });
}

TEST_CASE("entry_record: a record with the defaults reads back the defaults", "[coordinator][entry_record]") {
    od::entry_record e;
    e.id = "task-1";
    require_same(task_record(e), task_record{.id = "task-1"});
    e.set_error("boom");  // setting one rarely set field leaves the others at their defaults
    task_record want{.id = "task-1"};
    want.error = "boom";
    require_same(task_record(e), want);
}

TEST_CASE("entry_record: the metadata block handed out never changes", "[coordinator][entry_record]") {
    // An attempt holds the record's metadata block (shared_metadata): a later
    // change of the record's metadata replaces the block, so the attempt
    // keeps what it started with and the record reads the change.
    rc::prop("copy on write", [](std::map<std::string, std::string> metadata, std::string extra_key) {
        od::entry_record e;
        e.set_metadata(metadata);
        RC_ASSERT(e.metadata() == metadata);
        RC_ASSERT((e.shared_metadata() == nullptr) == metadata.empty());
        const auto held = e.shared_metadata();
        const od::entry_record copy(e);
        RC_ASSERT(copy.shared_metadata() == held);  // copies share the block too
        auto key = metadata.empty() ? extra_key : metadata.begin()->first;
        e.erase_metadata(key);
        auto want = metadata;
        want.erase(key);
        RC_ASSERT(e.metadata() == want);
        RC_ASSERT(od::metadata_of(held) == metadata);
        RC_ASSERT(copy.metadata() == metadata);
        e.set_metadata({});
        RC_ASSERT(e.metadata().empty());
        RC_ASSERT(od::metadata_of(held) == metadata);
    });
}

TEST_CASE("opt_time: the clock's minimum stays a time, distinct from none", "[coordinator][entry_record]") {
    od::opt_time<wall_tp> none;
    REQUIRE_FALSE(none);
    REQUIRE_FALSE(none.get().has_value());
    const od::opt_time<wall_tp> least(wall_tp::min());
    REQUIRE(least);
    REQUIRE(*least <= wall_tp::min() + wall_tp::duration(1));
    od::opt_time<wall_tp> t(wall_tp(ms(5)));
    REQUIRE(t.get() == wall_tp(ms(5)));
    t.reset();
    REQUIRE_FALSE(t);
}
