// Shared by the workflow spec fuzz targets: what must hold of any text
// given to a spec parser, and of the spec it returns.
#pragma once

#include <orchcore/workflow/json.hpp>
#include <orchcore/workflow/spec.hpp>
#include <orchcore/workflow/state.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace orchcore::fuzz {

[[noreturn]] inline void fail(const char* what, std::string_view detail) {
    std::fprintf(stderr, "%s: %.*s\n", what, static_cast<int>(detail.size()), detail.data());
    std::abort();
}

/// Small limits, so that one input never expands into a huge graph.
inline workflow::spec_limits fuzz_limits() {
    workflow::spec_limits l;
    l.max_tasks = 2000;
    l.max_shards = 64;
    l.max_shard_rounds = 4;
    return l;
}

/// A path as a refusal's message shows it: control characters as \u00XX,
/// at most 96 bytes (whole UTF-8 characters), then "...".
inline std::string shown_path(std::string_view path) {
    static constexpr char hex[] = "0123456789abcdef";
    std::size_t n = std::min<std::size_t>(path.size(), 96);
    while (n < path.size() && n > 0 && (static_cast<unsigned char>(path[n]) & 0xc0) == 0x80) --n;
    std::string out;
    for (const char ch : path.substr(0, n)) {
        const auto c = static_cast<unsigned char>(ch);
        if (c >= 0x20 && c != 0x7f) out.push_back(ch);
        else out.append("\\u00").append(1, hex[c >> 4]).append(1, hex[c & 0xf]);
    }
    if (n < path.size()) out.append("...");
    return out;
}

/// A refusal must name the offending field's path, and its message must
/// start with that path (as shown: escaped and bounded).
inline void check_refusal(const workflow::spec_error& e) {
    const std::string_view what = e.what();
    if (e.field().empty()) fail("a refusal without a field", what);
    if (!what.starts_with(shown_path(e.field()))) fail("a refusal whose message does not start with its field", what);
}

/// Runs the expanded graph to its end, each task's ending picked by the
/// input's bytes: every task ends in one terminal state, nothing starts
/// before its dependencies completed, and the status agrees with the tasks.
inline void run_to_end(const workflow::workflow_spec& spec, std::string_view bytes) {
    using workflow::task_state;
    workflow::workflow_state run(workflow::expand(spec, fuzz_limits()));
    const auto now = std::chrono::system_clock::time_point{} + std::chrono::hours(1);
    std::size_t at = 0;
    const auto pick = [&] { return bytes.empty() ? 0u : static_cast<unsigned char>(bytes[at++ % bytes.size()]) % 8u; };
    for (std::size_t steps = 0; !run.finished(); ++steps) {
        const auto ready = run.runnable_indices();
        if (ready.empty()) fail("unfinished workflow with nothing runnable", spec.name);
        if (steps > 4 * run.graph().size() * (fuzz_limits().max_shard_rounds + 1)) fail("no progress", spec.name);
        const std::size_t i = ready.front();
        for (const auto d : run.dependencies_of(i))
            if (run.task_at(d).state != task_state::completed) fail("a task runnable before a dependency completed", spec.name);
        run.start_at(i, now);
        const auto p = pick();
        const auto s = p < 5 ? task_state::completed : p == 5 ? task_state::failed
                                                     : p == 6 ? task_state::timed_out : task_state::cancelled;
        run.end_at(i, s, "fuzz", now);
    }
    for (std::size_t i = 0; i < run.graph().size(); ++i)
        if (!workflow::is_terminal(run.task_at(i).state)) fail("a task left unfinished", run.graph().tasks()[i].name);
    const bool all_done = run.count(task_state::completed) == run.graph().size();
    if (all_done != (run.status() == workflow::workflow_status::completed)) fail("status disagrees with tasks", spec.name);
}

/// A spec a parser accepted: written as JSON and parsed again it is the
/// same spec, and its graph runs to an end.
inline void check_accepted(const workflow::workflow_spec& spec, std::string_view bytes) {
    const std::string json = workflow::to_workflow_json(spec);
    workflow::workflow_spec again;
    try {
        again = workflow::parse_workflow_json(json, fuzz_limits());
    } catch (const workflow::spec_error& e) {
        fail("a spec written as JSON is refused when read back", e.what());
    }
    if (workflow::to_workflow_json(again) != json) fail("a spec changed through JSON", json);
    run_to_end(spec, bytes);
}

/// One fuzz input for a spec parser `parse(text, limits)`: a refusal must
/// name its field (check_refusal), an accepted spec must hold up
/// (check_accepted).
template <class Parse>
int check_parser(const std::uint8_t* data, std::size_t size, Parse parse) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    workflow::workflow_spec spec;
    try {
        spec = parse(text, fuzz_limits());
    } catch (const workflow::spec_error& e) {
        check_refusal(e);
        return 0;
    }
    check_accepted(spec, text);
    return 0;
}

}  // namespace orchcore::fuzz
