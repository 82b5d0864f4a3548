// The task table's map (src/coordinator/task_table.hpp): its keys are the
// entries' own ids, so every entry stays reachable by its id, and by no
// other, through insertions, replacements, erasures and the rehashing they
// cause, short ids and heap-allocated long ones alike.
#include "../../src/coordinator/task_table.hpp"

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace od = orchcore::detail;

namespace {

struct op {
    int kind = 0;  // 0: try_emplace, 1: insert_or_assign, 2: erase
    int id = 0;
    int mark = 0;
};

std::string id_of(int n) {
    // Odd numbers get ids too long for the string's inline buffer.
    return n % 2 ? "a-long-task-identifier-" + std::to_string(n) : "task-" + std::to_string(n);
}

void require_matches(const od::task_table& table, const std::map<std::string, std::string>& model, int ids) {
    RC_ASSERT(table.size() == model.size());
    for (int n = 0; n < ids; ++n) {
        const std::string id = id_of(n);
        auto it = table.find(id);
        auto m = model.find(id);
        if (m == model.end()) {
            RC_ASSERT(it == table.end());
            continue;
        }
        RC_ASSERT(it != table.end());
        RC_ASSERT(it->second.rec.id == id);
        RC_ASSERT(it->second.rec.payload == m->second);
    }
    std::size_t walked = 0;
    for (const auto& kv : table) {
        RC_ASSERT(model.count(kv.second.rec.id) == 1U);
        ++walked;
    }
    RC_ASSERT(walked == model.size());
}

}  // namespace

TEST_CASE("task table: every entry is found by its own id through inserts, replacements and erasures",
          "[task_table][prop]") {
    rc::prop("the table agrees with a map of ids", [] {
        constexpr int ids = 300;  // enough to rehash several times
        const auto ops = *rc::gen::container<std::vector<op>>(rc::gen::build<op>(
            rc::gen::set(&op::kind, rc::gen::inRange(0, 3)), rc::gen::set(&op::id, rc::gen::inRange(0, ids)),
            rc::gen::set(&op::mark, rc::gen::inRange(0, 1000))));
        od::task_table table;
        std::map<std::string, std::string> model;
        for (const op& o : ops) {
            const std::string id = id_of(o.id);
            const std::string mark = std::to_string(o.mark);
            if (o.kind == 0) {
                auto [it, inserted] = table.try_emplace(id);
                RC_ASSERT(inserted == (model.count(id) == 0));
                RC_ASSERT(it->second.rec.id == id);
                if (inserted) it->second.rec.payload = model[id] = mark;
            } else if (o.kind == 1) {
                od::task_entry t;
                t.rec.id = id;
                t.rec.payload = mark;
                auto it = table.insert_or_assign(std::move(t));
                RC_ASSERT(it->second.rec.id == id);
                model[id] = mark;
            } else {
                RC_ASSERT(table.erase(id) == model.erase(id));
            }
        }
        require_matches(table, model, ids);
    });
}

TEST_CASE("task table: a lookup takes any string form of the id", "[task_table]") {
    od::task_table table;
    std::string id = "task-1";
    table.try_emplace(id);
    id = "changed";  // the table keeps its own copy
    REQUIRE(table.count("task-1") == 1);
    REQUIRE(table.count(std::string_view("task-1")) == 1);
    REQUIRE(table.at(std::string("task-1")).rec.id == "task-1");
    REQUIRE(table.count("changed") == 0);
    REQUIRE_THROWS_AS(table.at("task-2"), std::out_of_range);
}
