// workflow_fanout: one task split into 64 shards that run in parallel, then
// an aggregator over their results, given in shard order.
//
// Each shard sums the squares of its slice of [0, shards * 1000); the
// aggregator adds the partial sums up and checks them against the closed
// form. If any shard failed, the aggregator would not run at all.
#include <orchcore/orchcore.hpp>
#include <orchcore/workflow/context.hpp>
#include <orchcore/workflow/runner.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace wf = orchcore::workflow;

namespace {

constexpr std::uint64_t slice = 1000;

int usage(int code) {
    std::printf("usage: orchcore_workflow_fanout [--shards N]\n"
                "  --shards N  how many shards (1 to 1024, default 64)\n");
    return code;
}

void register_handlers(orchcore::coordinator& c) {
    c.register_handler("sum-squares", [](orchcore::task_context& ctx) {
        const std::uint64_t from = *wf::shard_index(ctx) * slice;
        std::uint64_t sum = 0;
        for (std::uint64_t x = from; x < from + slice; ++x) sum += x * x;
        return std::to_string(sum);
    });
    c.register_handler("add-up", [](orchcore::task_context& ctx) {
        std::uint64_t total = 0;
        for (const auto& part : wf::shard_results(ctx)) total += std::stoull(part);  // shard order
        return std::to_string(total);
    });
}

}  // namespace

int main(int argc, char** argv) {
    std::uint32_t shards = 64;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--help") == 0) return usage(0);
        if (std::strcmp(argv[i], "--shards") == 0 && i + 1 < argc) {
            char* end = nullptr;
            const auto n = std::strtoul(argv[++i], &end, 10);
            if (*end != '\0' || n > 1'000'000) {
                std::fprintf(stderr, "--shards: expected a number of shards (got \"%s\")\n", argv[i]);
                return 2;
            }
            shards = static_cast<std::uint32_t>(n);
        } else {
            std::fprintf(stderr, "unknown option %s\n", argv[i]);
            return usage(2);
        }
    }
    orchcore::coordinator c{{.scaling = {.min_workers = 4, .max_workers = 4}}};
    register_handlers(c);
    wf::workflow_runner runner(c);

    wf::workflow_spec spec{.name = "sum-of-squares"};
    spec.tasks = {{.name = "squares", .type = "sum-squares",
                   .shards = wf::shard_spec{.count = shards, .aggregator_type = "add-up"}}};
    try {
        const auto rec = runner.submit_workflow(spec).get();  // spec_error if --shards is out of range
        const std::uint64_t n = std::uint64_t{shards} * slice - 1;
        const auto expected = n * (n + 1) * (2 * n + 1) / 6;
        const auto& total = rec.task("squares").result;
        std::printf("%u shards + 1 aggregator: sum of squares below %llu = %s (%s)\n", shards,
                    static_cast<unsigned long long>(n + 1), total.c_str(),
                    total == std::to_string(expected) ? "correct" : "WRONG");
        c.stop();
        return total == std::to_string(expected) ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "workflow failed: %s\n", e.what());
        return 1;
    }
}
