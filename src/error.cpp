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

// The value as a message shows it: at most shown_bytes of it (cut at a
// UTF-8 character boundary, with its full size after), control bytes and
// NUL as \xNN, so that a huge or binary value keeps the message readable.
constexpr std::size_t shown_bytes = 256;

void append_shown(std::string& s, std::string_view value) {
    std::size_t n = value.size();
    if (n > shown_bytes) {
        n = shown_bytes;
        while (n > 0 && (static_cast<unsigned char>(value[n]) & 0xC0) == 0x80) --n;
    }
    for (const char c : value.substr(0, n)) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) {
            constexpr char hex[] = "0123456789abcdef";
            const char escaped[4] = {'\\', 'x', hex[u >> 4], hex[u & 0xF]};
            s.append(escaped, sizeof escaped);
        } else {
            s.push_back(c);
        }
    }
    if (n < value.size()) s.append("... (").append(std::to_string(value.size())).append(" bytes)");
}

std::string describe_invalid(std::string_view field, std::string_view value, std::string_view reason) {
    std::string s = "orchcore: invalid ";
    s.append(field).append(" = ");
    append_shown(s, value);
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
