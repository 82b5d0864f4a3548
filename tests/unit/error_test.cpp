// orchcore::invalid_argument: the message names the field and shows the
// value readably, whatever the value holds; value() keeps it as given.
#include <orchcore/error.hpp>

#include <catch2/catch.hpp>

#include <string>

TEST_CASE("an invalid value is shown in the message with control bytes escaped and a huge one cut",
          "[error]") {
    const orchcore::invalid_argument plain("id", "job-7", "taken");
    CHECK(std::string(plain.what()) == "orchcore: invalid id = job-7: taken");

    const std::string binary("a\0b\n\x7f", 5);
    const orchcore::invalid_argument nul("id", binary, "bad");
    CHECK(std::string(nul.what()) == "orchcore: invalid id = a\\x00b\\x0a\\x7f: bad");
    CHECK(nul.value() == binary);

    const std::string huge(100'000, 'x');
    const orchcore::invalid_argument big("id", huge, "too long");
    CHECK(std::string(big.what()) == "orchcore: invalid id = " + std::string(256, 'x') + "... (100000 bytes): too long");
    CHECK(big.value() == huge);

    // Cut at a character boundary: 255 ASCII bytes, then a 2-byte character
    // across the limit.
    const std::string utf8 = std::string(255, 'x') + "\xc3\xa9" + "tail";
    const orchcore::invalid_argument cut("name", utf8, "");
    CHECK(std::string(cut.what()) == "orchcore: invalid name = " + std::string(255, 'x') + "... (261 bytes)");
}
