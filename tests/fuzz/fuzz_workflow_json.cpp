// The workflow spec JSON parser on arbitrary bytes: it refuses with a
// spec_error naming the offending field's path, or returns a spec that
// round-trips through to_workflow_json and whose graph runs to an end with
// every task in one terminal state. Anything else (a crash, a hang, a
// sanitizer report, another exception) is a defect.
#include "workflow_fuzz_run.hpp"

#include <orchcore/workflow/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return orchcore::fuzz::check_parser(data, size, [](std::string_view text, const auto& limits) {
        return orchcore::workflow::parse_workflow_json(text, limits);
    });
}
