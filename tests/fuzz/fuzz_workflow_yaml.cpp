// The workflow spec YAML parser (the optional orchcore::yaml component) on
// arbitrary bytes: the same contract as the JSON parser's target.
#include "workflow_fuzz_run.hpp"

#include <orchcore/workflow/yaml.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return orchcore::fuzz::check_parser(data, size, [](std::string_view text, const auto& limits) {
        return orchcore::workflow::parse_workflow_yaml(text, limits);
    });
}
