// Validation of artifact task ids and names, and artifact_store::get.
#include <orchcore/workflow/artifact_store.hpp>

#include <orchcore/error.hpp>

#include <cstdio>

namespace orchcore::workflow {

namespace {

constexpr std::size_t max_component = 255;
constexpr std::size_t max_total = 1024;

/// The value as it can be shown in a message: control bytes as \xNN.
std::string printable(std::string_view s) {
    std::string out = "\"";
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", u);
            out.append(buf);
        } else {
            out.push_back(c);
        }
    }
    return out.append("\"");
}

void check_component(std::string_view field, std::string_view whole, std::string_view part) {
    if (part.empty()) throw invalid_argument(field, printable(whole), "empty path component");
    if (part.size() > max_component) {
        throw invalid_argument(field, printable(whole), "a path component is longer than 255 bytes");
    }
    if (part.front() == '.') throw invalid_argument(field, printable(whole), "a path component starts with '.'");
}

void check_characters(std::string_view field, std::string_view value) {
    for (const char c : value) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '\0') throw invalid_argument(field, printable(value), "contains a NUL byte");
        if (c == '\\') throw invalid_argument(field, printable(value), "contains a backslash");
        if (u < 0x20 || u == 0x7f) throw invalid_argument(field, printable(value), "contains a control character");
    }
}

void check_length(std::string_view field, std::string_view value) {
    if (value.empty()) throw invalid_argument(field, "\"\"", "must not be empty");
    if (value.size() > max_total) throw invalid_argument(field, printable(value.substr(0, 64)) + "...",
                                                         "longer than 1024 bytes");
}

}  // namespace

void validate_artifact_task(std::string_view task) {
    check_length("artifact task", task);
    check_characters("artifact task", task);
    if (task.find('/') != std::string_view::npos) {
        throw invalid_argument("artifact task", printable(task), "contains '/'");
    }
    check_component("artifact task", task, task);
}

void validate_artifact_name(std::string_view name) {
    check_length("artifact name", name);
    check_characters("artifact name", name);
    if (name.front() == '/') throw invalid_argument("artifact name", printable(name), "an absolute path");
    std::size_t begin = 0;
    while (true) {
        const auto slash = name.find('/', begin);
        const auto part = name.substr(begin, slash == std::string_view::npos ? std::string_view::npos : slash - begin);
        check_component("artifact name", name, part);
        if (slash == std::string_view::npos) break;
        begin = slash + 1;
    }
}

std::optional<std::string> artifact_store::get(std::string_view task, std::string_view name) const {
    std::string out;
    if (!get_stream(task, name, [&](std::string_view chunk) { out.append(chunk); })) return std::nullopt;
    return out;
}

}  // namespace orchcore::workflow
