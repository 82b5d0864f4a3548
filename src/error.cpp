#include <orchcore/error.hpp>

#include <string>

namespace orchcore {

namespace {

class orchcore_category final : public std::error_category {
public:
    const char* name() const noexcept override { return "orchcore"; }

    std::string message(int code) const override {
        switch (static_cast<errc>(code)) {
            case errc::invalid_argument: return "invalid argument";
            case errc::duplicate_id: return "duplicate id";
            case errc::not_found: return "not found";
            case errc::queue_closed: return "queue closed";
            case errc::shutdown: return "shutting down";
            case errc::cancelled: return "cancelled";
            case errc::timed_out: return "timed out";
            case errc::illegal_transition: return "illegal state transition";
            case errc::stale_token: return "stale fencing token";
            case errc::backend_unavailable: return "backend unavailable";
            case errc::task_finished: return "task already finished";
            case errc::rejected: return "rejected by admission";
            case errc::task_failed: return "task failed";
            case errc::unplaceable: return "unplaceable resource request";
        }
        return "unknown orchcore error " + std::to_string(code);
    }
};

std::string describe_invalid(std::string_view field, std::string_view value, std::string_view reason) {
    std::string s = "orchcore: invalid ";
    s.append(field).append(" = ").append(value);
    if (!reason.empty()) s.append(": ").append(reason);
    return s;
}

}  // namespace

const std::error_category& error_category() noexcept {
    static const orchcore_category category;
    return category;
}

invalid_argument::invalid_argument(std::string_view field, std::string_view value, std::string_view reason)
    : error(errc::invalid_argument, describe_invalid(field, value, reason)), field_(field), value_(value) {}

}  // namespace orchcore
