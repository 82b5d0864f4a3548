// Text many owners share without copying it: a worker's id in the records
// of its tasks, a task's payload in its record and its attempts. Immutable:
// assigning replaces the text.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace orchcore::detail {

class shared_text {
public:
    shared_text() = default;
    shared_text(std::shared_ptr<const std::string> s) noexcept : s_(std::move(s)) {}  // NOLINT
    shared_text& operator=(std::string s) {
        s_ = s.empty() ? nullptr : std::make_shared<const std::string>(std::move(s));
        return *this;
    }
    const std::string& str() const noexcept { return s_ ? *s_ : empty(); }
    operator const std::string&() const noexcept { return str(); }  // NOLINT
    friend bool operator==(const shared_text& a, std::string_view b) noexcept { return a.str() == b; }

private:
    static const std::string& empty() noexcept {
        static const std::string none;
        return none;
    }
    std::shared_ptr<const std::string> s_;
};

}  // namespace orchcore::detail
