#include <orchcore/admission_policy.hpp>
#include <orchcore/admission_result.hpp>
#include <orchcore/error.hpp>

#include <cctype>
#include <string>

namespace orchcore {

std::string_view to_string(queue_policy p) noexcept {
    switch (p) {
        case queue_policy::reject_new: return "reject-new";
        case queue_policy::drop_lru: return "drop-lru";
        case queue_policy::fail_fast: return "fail-fast";
        case queue_policy::priority: return "priority";
    }
    return "unknown";
}

std::optional<queue_policy> try_parse_queue_policy(std::string_view text) noexcept {
    std::string norm;
    norm.reserve(text.size());
    for (char c : text) {
        const char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        norm.push_back(l == '_' ? '-' : l);
    }
    for (auto p : {queue_policy::reject_new, queue_policy::drop_lru, queue_policy::fail_fast, queue_policy::priority}) {
        if (norm == to_string(p)) return p;
    }
    return std::nullopt;
}

queue_policy parse_queue_policy(std::string_view text) {
    if (auto p = try_parse_queue_policy(text)) return *p;
    throw invalid_argument("policy", std::string("\"").append(text).append("\""),
                           "expected one of reject-new, drop-lru, fail-fast, priority");
}

std::string_view to_string(rejection_reason r) noexcept {
    switch (r) {
        case rejection_reason::queue_full: return "queue_full";
        case rejection_reason::invalid_request: return "invalid_request";
        case rejection_reason::policy_violation: return "policy_violation";
        case rejection_reason::closed: return "closed";
    }
    return "unknown";
}

}  // namespace orchcore
