// Two-part scripts (a library and a body) run as Redis functions, and with
// EVALSHA where the server refuses FUNCTION.
#include <orchcore/redis/redis.hpp>

#include "redis/redis_server_fixture.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace orchcore;
using orchcore::test::redis_server;

namespace {

// The library keeps a count across calls when it runs as a function (it
// runs once per load) and starts from 0 on every call as a script.
const redis_script counting("test.counting", "local calls = 0\nlocal function add(a, b) return a + b end\n",
                            "calls = calls + 1\nreturn {add(tonumber(ARGV[1]), tonumber(ARGV[2])), calls}");

std::vector<long long> ints(const redis_reply& r) {
    std::vector<long long> out;
    for (const auto& e : r.elements) out.push_back(e.integer);
    return out;
}

}  // namespace

TEST_CASE("redis_client: a two-part script runs as a function, loaded once and again after FUNCTION FLUSH",
          "[redis][functions]") {
    redis_server server;  // FUNCTION FLUSH must not disturb other tests
    redis_client c(server.options("fn"));
    CHECK(ints(c.eval(counting, {}, std::vector<std::string>{"2", "3"})) == std::vector<long long>{5, 1});
    CHECK(ints(c.eval(counting, {}, std::vector<std::string>{"2", "4"})) == std::vector<long long>{6, 2});
    CHECK(c.stats().function_loads == 1);
    CHECK(c.stats().script_loads == 0);
    const auto libs = c.command({"FUNCTION", "LIST", "LIBRARYNAME", counting.function_name()});
    CHECK(libs.elements.size() == 1);

    REQUIRE(c.command({"FUNCTION", "FLUSH"}).str == "OK");
    CHECK(ints(c.eval(counting, {}, std::vector<std::string>{"1", "1"})) == std::vector<long long>{2, 1});
    CHECK(c.stats().function_loads == 2);

    REQUIRE(c.command({"FUNCTION", "FLUSH"}).str == "OK");
    const std::vector<redis_script_call> calls{{{}, {"1", "2"}}, {{}, {"3", "4"}}};
    const auto rs = c.eval_pipeline(counting, calls);
    REQUIRE(rs.size() == 2);
    CHECK(rs[0].elements.at(0).integer == 3);
    CHECK(rs[1].elements.at(0).integer == 7);
    CHECK(c.stats().script_loads == 0);
}

TEST_CASE("redis_client: a two-part script runs with EVALSHA for a user not allowed FUNCTION",
          "[redis][functions]") {
    redis_server server;
    redis_client admin(server.options());
    REQUIRE(admin
                .command({"ACL", "SETUSER", "nofn", "on", ">pw", "~*", "&*", "+@all", "-function", "-fcall",
                          "-fcall_ro"})
                .str == "OK");
    auto o = server.options("nofn");
    o.user = "nofn";
    o.password = "pw";
    redis_client c(o);
    CHECK(ints(c.eval(counting, {}, std::vector<std::string>{"2", "3"})) == std::vector<long long>{5, 1});
    CHECK(ints(c.eval(counting, {}, std::vector<std::string>{"2", "4"})) == std::vector<long long>{6, 1});
    CHECK(c.stats().function_loads == 0);
    CHECK(c.stats().script_loads == 1);
    // A one-part script is unaffected.
    static const redis_script one("test.one", "return 7");
    CHECK(c.eval(one, {}, {}).integer == 7);
}

TEST_CASE("redis_client: a library error names the script", "[redis][functions]") {
    const redis_script broken("test.broken", "local function f( return 1 end\n", "return 1");
    redis_server server;
    redis_client c(server.options("broken"));
    try {
        (void)c.eval(broken, {}, {});
        FAIL("no exception");
    } catch (const redis_error& e) {
        CHECK_THAT(std::string(e.what()), Catch::Contains("test.broken"));
    }
}

// The queue scripts pass integral Lua numbers (tokens, counters, scores,
// unix ms) to redis.call as they are, relying on Redis to write them as
// plain digits, exactly, up to 2^53.
TEST_CASE("redis_client: an integral Lua number passed to redis.call arrives as its exact digits",
          "[redis][functions]") {
    static const redis_script write_numbers("test.numbers", R"lua(
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'max', 9007199254740992 - 1, 'top', 9007199254740992, 'ms', 9223372036854,
           'neg', -9223372036854, 'zero', 0, 'now', 1764950000123, 'level', 21 * 70368744177664 - 1)
redis.call('ZADD', KEYS[2], 9223372036854 + 600000, 'a')
return {redis.call('HMGET', KEYS[1], 'max', 'top', 'ms', 'neg', 'zero', 'now', 'level'), redis.call('ZSCORE', KEYS[2], 'a')}
)lua");
    auto c = orchcore::test::shared_redis_server().client("numbers");
    const auto p = c->options().prefix;
    const auto r = c->eval(write_numbers, std::vector<std::string>{p + ":h", p + ":z"}, {});
    REQUIRE(r.elements.size() == 2);
    std::vector<std::string> got;
    for (const auto& e : r.elements[0].elements) got.push_back(e.str);
    CHECK(got == std::vector<std::string>{"9007199254740991", "9007199254740992", "9223372036854", "-9223372036854",
                                          "0", "1764950000123", "1477743627730943"});
    CHECK(r.elements[1].str == "9223372636854");
}
