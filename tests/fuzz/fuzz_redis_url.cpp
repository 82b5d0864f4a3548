// libFuzzer entry point for redis_options::from_url.
//
// Invariants, for any input:
//  * the only exception that escapes is orchcore::invalid_argument;
//  * no message shows the password. The password component is found the
//    way the documented grammar finds it (the userinfo runs to the last
//    '@' after "<scheme>://", the password starts after its first ':', or
//    is the whole userinfo without one). The same URL is parsed again with
//    that component replaced by a sentinel: the sentinel must never appear
//    in the message, and the real password may appear only if the message
//    for the sentinel URL shows it too (that is, it is also text the
//    message takes from elsewhere, such as a host equal to the password).
#include <orchcore/error.hpp>
#include <orchcore/redis/redis_options.hpp>

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace {

constexpr std::string_view sentinel = "PwSentinel0rchcore";

[[noreturn]] void violation(std::string_view what, std::string_view url, std::string_view message) {
    std::fprintf(stderr, "fuzz_redis_url: %.*s\n  url: %.*s\n  message: %.*s\n", static_cast<int>(what.size()),
                 what.data(), static_cast<int>(url.size()), url.data(), static_cast<int>(message.size()),
                 message.data());
    std::abort();
}

// [begin, end) of the password component in `url`, if it has a userinfo.
std::optional<std::pair<std::size_t, std::size_t>> password_span(std::string_view url) {
    std::size_t start = 0;
    if (const auto sep = url.find("://"); sep != std::string_view::npos && sep > 0 &&
                                          std::isalpha(static_cast<unsigned char>(url[0]))) {
        bool scheme = true;
        for (std::size_t i = 1; i < sep; ++i) {
            const auto c = static_cast<unsigned char>(url[i]);
            scheme = scheme && (std::isalnum(c) || c == '+' || c == '-' || c == '.');
        }
        if (scheme) start = sep + 3;
    }
    const auto at = url.rfind('@');
    if (at == std::string_view::npos || at < start) return std::nullopt;
    const auto colon = url.substr(start, at - start).find(':');
    return std::pair{colon == std::string_view::npos ? start : start + colon + 1, at};
}

// The message of the invalid_argument that from_url throws, or nullopt if
// it accepts the URL. Anything else thrown is a violation.
std::optional<std::string> parse(std::string_view url) {
    try {
        (void)orchcore::redis_options::from_url(url);
        return std::nullopt;
    } catch (const orchcore::invalid_argument& e) {
        return std::string(e.what());
    } catch (const std::exception& e) {
        violation("an exception other than orchcore::invalid_argument", url, e.what());
    } catch (...) {
        violation("a non-std exception", url, "");
    }
}

bool contains(const std::optional<std::string>& message, std::string_view s) {
    return message && message->find(s) != std::string::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view url(reinterpret_cast<const char*>(data), size);
    const auto message = parse(url);
    const auto span = password_span(url);
    if (!span) return 0;
    const auto [begin, end] = *span;
    const std::string_view password = url.substr(begin, end - begin);
    std::string replaced(url.substr(0, begin));
    replaced += sentinel;
    replaced += url.substr(end);
    const auto sentinel_message = parse(replaced);
    if (url.find(sentinel) == std::string_view::npos && contains(sentinel_message, sentinel))
        violation("the message shows the (sentinel) password", replaced, *sentinel_message);
    if (!password.empty() && contains(message, password) && !contains(sentinel_message, password))
        violation("the message shows the password", url, *message);
    return 0;
}
