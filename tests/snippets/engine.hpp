// Prelude of the execution-engine snippets: what they use but do not define.
#pragma once

#include <orchcore/orchcore.hpp>

#include <boost/asio.hpp>

#include <chrono>
#include <string>
#include <string_view>

inline std::string image_bytes, other, a, b;

inline std::string make_thumbnail(std::string_view image) { return std::string(image); }
inline void retry_later(std::chrono::milliseconds) {}
inline void log(std::string_view) {}
boost::asio::awaitable<std::string> my_http_get(std::string_view url);
