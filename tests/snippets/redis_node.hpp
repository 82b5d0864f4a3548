// Prelude of the distributed-mode snippets: what they use but do not define.
#pragma once

#include <orchcore/orchcore.hpp>

#include <string>

inline std::string payload;
inline std::string handler(orchcore::task_context& ctx) { return std::string(ctx.payload()); }
