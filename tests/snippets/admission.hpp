// Prelude of the admission-queue snippets: what they use but do not define.
#pragma once

#include <orchcore/orchcore.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

struct Job {
    std::string name;
};
inline Job job;
inline std::map<std::string, std::string> config{{"policy", "drop-lru"}};

inline void http_429(std::chrono::milliseconds) {}
template <class... Args>
void log(const char*, const Args&...) {}
inline void notify_owner(std::uint64_t) {}
inline void run(const Job&) {}
