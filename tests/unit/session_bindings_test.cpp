// Session affinity bindings (src/coordinator/session_bindings.hpp): bound
// once, forgotten with their worker, and bounded: sessions never used again
// do not stay for ever, while those with a task running keep their worker.
#include "../../src/coordinator/session_bindings.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <string>

using orchcore::detail::session_bindings;

namespace {
const session_bindings::in_use_fn none = [](const std::string&, const std::string&) { return false; };
}  // namespace

TEST_CASE("session bindings: a session keeps the worker it was first bound to until that worker leaves",
          "[placement][sessions]") {
    session_bindings b;
    b.bind("chat", "w1", none);
    b.bind("chat", "w2", none);
    REQUIRE(b.find("chat"));
    CHECK(*b.find("chat") == "w1");
    b.bind("other", "w2", none);
    b.forget_worker("w1");
    CHECK_FALSE(b.find("chat"));
    REQUIRE(b.find("other"));
    CHECK(*b.find("other") == "w2");
    CHECK(b.size() == 1);
}

TEST_CASE("session bindings: many distinct sessions do not grow the map past its limit",
          "[placement][sessions]") {
    session_bindings b(100);
    for (int i = 0; i < 100'000; ++i) b.bind("s" + std::to_string(i), "w" + std::to_string(i % 7), none);
    CHECK(b.size() == 100);
    // The most recent ones are the ones kept.
    CHECK(b.find("s99999"));
    CHECK(b.find("s99900"));
    CHECK_FALSE(b.find("s99899"));
    CHECK_FALSE(b.find("s0"));
}

TEST_CASE("session bindings: a session in use or used recently is kept over the limit", "[placement][sessions]") {
    session_bindings b(10);
    std::set<std::string> running{"busy"};
    const session_bindings::in_use_fn in_use = [&](const std::string& s, const std::string&) {
        return running.count(s) > 0;
    };
    b.bind("busy", "w1", in_use);
    b.bind("hot", "w2", in_use);
    for (int i = 0; i < 1000; ++i) {
        b.bind("cold" + std::to_string(i), "w3", in_use);
        CHECK(b.find("hot"));  // used all along
    }
    CHECK(b.size() == 10);
    REQUIRE(b.find("busy"));
    CHECK(*b.find("busy") == "w1");
    running.clear();
    for (int i = 0; i < 20; ++i) b.bind("later" + std::to_string(i), "w3", in_use);
    CHECK_FALSE(b.find("busy"));
    CHECK(b.size() == 10);
}
