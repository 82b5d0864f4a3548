// The workflow spec YAML parser (the optional orchcore::yaml component) on
// arbitrary bytes: the same contract as the JSON parser's target.
#include "workflow_fuzz_run.hpp"

#include <orchcore/workflow/yaml.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    orchcore::workflow::workflow_spec spec;
    try {
        spec = orchcore::workflow::parse_workflow_yaml(text, orchcore::fuzz::fuzz_limits());
    } catch (const orchcore::workflow::spec_error& e) {
        orchcore::fuzz::check_refusal(e);
        return 0;
    }
    orchcore::fuzz::check_accepted(spec, text);
    return 0;
}
