// Substitutes `${<name>.result}` and `${<name>.result.<field>}` in a payload
// with the results of earlier tasks (a field: of the result's JSON object;
// a string field as its text, another value as its JSON text).
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace orchcore::workflow::detail {

/// `result_of(name)` is the result of task `name` (nullptr: left as is).
std::string substitute_results(std::string_view payload,
                               const std::function<const std::string*(std::string_view)>& result_of);

}  // namespace orchcore::workflow::detail
