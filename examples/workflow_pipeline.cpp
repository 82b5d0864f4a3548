// workflow_pipeline: a three-stage pipeline that passes a file on.
//
//   extract  -> writes rows.csv (an artifact of the workflow)
//   transform-> reads it (the path comes in its payload as
//               ${extract.result.artifact}), writes an upper-cased copy
//   load     -> reads the copy, reports what it found
//
// The stages run as tasks of one workflow through a coordinator; each starts
// when the one before it completed, and reads its result. Artifacts live in
// a filesystem_artifact_store: one directory per workflow under --root.
#include <orchcore/orchcore.hpp>
#include <orchcore/workflow/context.hpp>
#include <orchcore/workflow/runner.hpp>
#include <orchcore/workflow/workflow.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include <unistd.h>

namespace wf = orchcore::workflow;

namespace {

int usage(int code) {
    std::printf("usage: orchcore_workflow_pipeline [--root DIR]\n"
                "  --root DIR  where artifacts are kept (default: a new directory under the temp dir)\n");
    return code;
}

void register_stages(orchcore::coordinator& c, wf::artifact_store& files) {
    c.register_handler("extract", [&files](orchcore::task_context& ctx) {
        std::string rows = "id,name\n";
        for (int i = 1; i <= 100; ++i) rows += std::to_string(i) + ",item-" + std::to_string(i) + "\n";
        files.put(wf::workflow_id(ctx), "extract/rows.csv", rows);
        return std::string(R"({"artifact": "extract/rows.csv", "rows": 100})");
    });
    c.register_handler("transform", [&files](orchcore::task_context& ctx) {
        auto rows = files.get(wf::workflow_id(ctx), ctx.payload());  // payload: the artifact's name
        if (!rows) throw orchcore::non_retryable_error("no artifact " + ctx.payload());
        std::transform(rows->begin(), rows->end(), rows->begin(), [](unsigned char ch) { return std::toupper(ch); });
        files.put(wf::workflow_id(ctx), "transform/rows.csv", *rows);
        return std::string(R"({"artifact": "transform/rows.csv"})");
    });
    c.register_handler("load", [&files](orchcore::task_context& ctx) {
        const auto rows = files.get(wf::workflow_id(ctx), ctx.payload()).value_or("");
        const auto lines = std::count(rows.begin(), rows.end(), '\n');
        return "loaded " + std::to_string(lines - 1) + " rows, first: " + rows.substr(8, rows.find('\n', 8) - 8);
    });
}

}  // namespace

int main(int argc, char** argv) {
    std::filesystem::path root = std::filesystem::temp_directory_path() / ("orchcore-pipeline-" + std::to_string(getpid()));
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--help") == 0) return usage(0);
        if (std::strcmp(argv[i], "--root") == 0 && i + 1 < argc) root = argv[++i];
        else {
            std::fprintf(stderr, "unknown option %s\n", argv[i]);
            return usage(2);
        }
    }
    wf::filesystem_artifact_store files({.root = root});
    orchcore::coordinator c{{.scaling = {.min_workers = 2, .max_workers = 2}}};
    register_stages(c, files);
    wf::workflow_runner runner(c);

    wf::workflow_spec spec{.name = "etl"};
    spec.stages = {{.name = "extract", .type = "extract"},
                   {.name = "transform", .type = "transform", .payload = "${extract.result.artifact}"},
                   {.name = "load", .type = "load", .payload = "${transform.result.artifact}"}};
    auto h = runner.submit_workflow(spec);
    try {
        const auto rec = h.get();
        for (const auto& t : rec.tasks) std::printf("%-9s %-9s %s\n", t.name.c_str(), std::string(wf::to_string(t.state)).c_str(), t.result.c_str());
        for (const auto& a : files.list(h.id())) std::printf("artifact %s/%s/%s (%llu bytes)\n", root.c_str(), h.id().c_str(), a.name.c_str(), static_cast<unsigned long long>(a.size));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "workflow failed: %s\n", e.what());
        return 1;
    }
    c.stop();
    return 0;
}
