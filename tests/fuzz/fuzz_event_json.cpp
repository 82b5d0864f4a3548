// The Redis event bus's wire decoder (decode_event_json) on arbitrary
// bytes: it either throws orchcore::invalid_argument or returns an event;
// anything else (a crash, a sanitizer report, another exception) is a
// defect. A decoded event, encoded again, must decode to the same event.
#include <orchcore/redis/redis_event_bus.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

bool same(const orchcore::event& a, const orchcore::event& b) {
    const bool progress = std::isnan(a.progress)
                              ? std::isnan(b.progress)
                              : a.progress == b.progress && std::signbit(a.progress) == std::signbit(b.progress);
    return progress && a.kind == b.kind && a.task_id == b.task_id && a.worker_id == b.worker_id &&
           a.status == b.status && a.attempt == b.attempt && a.detail == b.detail && a.from == b.from &&
           a.to == b.to && a.at == b.at;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    orchcore::event e;
    std::string origin;
    try {
        e = orchcore::decode_event_json(text, &origin);
    } catch (const orchcore::invalid_argument&) {
        return 0;  // a malformed message: counted and skipped by the subscriber
    }
    const std::string again = orchcore::encode_event_json(e, origin);
    std::string origin2;
    const orchcore::event back = orchcore::decode_event_json(again, &origin2);
    if (!same(e, back) || origin != origin2) {
        std::fprintf(stderr, "event JSON round trip changed the event: %s\n", again.c_str());
        std::abort();
    }
    return 0;
}
