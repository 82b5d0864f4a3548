// What a translation unit that submits tasks includes: the coordinator only.
// headers.coordinator_lean compiles it and checks which headers it opened.
#include <orchcore/coordinator.hpp>

#include <string>

std::string resize_remotely(orchcore::coordinator& c, const std::string& image) {
    return c.submit("resize", image);
}

void configure(orchcore::coordinator_options& o) {
    o.worker_template.max_concurrent = 2;
    o.scaling.max_workers = 4;
    o.store = nullptr;
}

bool stop_now(orchcore::coordinator& c) { return c.stop(orchcore::stop_mode::abort); }
