// Helpers for tests that check how bad input is refused.
#pragma once

#include <orchcore/error.hpp>

#include <string>

namespace orchcore::test {

// "field | what()" of the orchcore::invalid_argument `fn` throws, or
// "no exception".
template <class Fn>
std::string invalid_field(Fn&& fn) {
    try {
        fn();
    } catch (const orchcore::invalid_argument& e) {
        return e.field() + " | " + e.what();
    }
    return "no exception";
}

}  // namespace orchcore::test
