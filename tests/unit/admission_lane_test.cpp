// detail::admission_lane: the ring of one FIFO lane of admission_core, with
// holes left by removals from the middle (cancellation) and rebuilds.
#include <orchcore/detail/admission_lane.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using lane_t = orchcore::detail::admission_lane<std::string, std::uint64_t>;

void push(lane_t& lane, std::uint64_t seq) {
    if (lane.full()) lane.rebuild();
    std::uint64_t id = seq;
    std::string value = "v" + std::to_string(seq);
    lane.push_back(std::move(id), std::move(value), 3, {}, seq);
}

std::vector<std::uint64_t> seqs(const lane_t& lane) {
    std::vector<std::uint64_t> out;
    lane.for_each([&](const lane_t::slot& s) { out.push_back(s.seq()); });
    return out;
}

}  // namespace

TEST_CASE("admission_lane: FIFO through growth, holes skipped at both ends", "[queue][lane]") {
    lane_t lane;
    REQUIRE(lane.empty());
    for (std::uint64_t s = 1; s <= 40; ++s) push(lane, s);  // grows past the first 16 slots twice
    REQUIRE(lane.count() == 40);
    REQUIRE(lane.front().seq() == 1);
    REQUIRE(lane.back().seq() == 40);

    // Holes in the middle, then the head and the tail reach them.
    for (std::uint64_t s : {2u, 3u, 38u, 39u, 20u}) {
        const auto pos = lane.find(s);
        REQUIRE(pos != lane_t::npos);
        REQUIRE(lane.take(pos).id == s);
    }
    REQUIRE(lane.find(20) == lane_t::npos);  // taken: not found again
    REQUIRE(lane.count() == 35);
    auto first = lane.take(lane.head());
    REQUIRE(first.id == 1);
    REQUIRE(first.value == "v1");
    REQUIRE(first.priority == 3);
    REQUIRE(lane.front().seq() == 4);  // 2 and 3 were holes
    lane.take(lane.last());          // 40
    REQUIRE(lane.back().seq() == 37);  // 38 and 39 were holes
    REQUIRE(lane.count_before(21) == 16);  // 4..19 (20 is a hole)
}

TEST_CASE("admission_lane: a full ring of holes is rebuilt with its tasks only", "[queue][lane]") {
    lane_t lane;
    std::deque<std::uint64_t> model;
    std::uint64_t seq = 0;
    // The head task stays while newer ones come and go from the middle:
    // without rebuilds dropping the holes, the ring would grow forever.
    push(lane, ++seq);
    model.push_back(seq);
    std::size_t largest = 0;
    for (int round = 0; round < 5000; ++round) {
        push(lane, ++seq);
        push(lane, ++seq);
        const std::uint64_t cancel = seq - 1;  // the one before the tail
        REQUIRE(lane.take(lane.find(cancel)).id == cancel);
        model.push_back(seq);
        if (model.size() > 8) {
            // Keep the lane small, taking from the second position.
            const std::uint64_t victim = model[1];
            REQUIRE(lane.take(lane.find(victim)).id == victim);
            model.erase(model.begin() + 1);
        }
        largest = std::max(largest, lane.allocated());
    }
    REQUIRE(seqs(lane) == std::vector<std::uint64_t>(model.begin(), model.end()));
    REQUIRE(largest <= 32);
    for (std::uint64_t s : model) REQUIRE(lane.take(lane.head()).id == s);
    REQUIRE(lane.empty());
    lane.release();
    REQUIRE(lane.allocated() == 0);
    REQUIRE(lane.full());  // the next push allocates
    push(lane, ++seq);
    REQUIRE(lane.take(lane.head()).id == seq);
}

namespace {

// Counts live instances; its copy throws once `copies_left` runs out (a
// payload without a nothrow move is copied by a rebuild).
struct tracked {
    static inline int alive = 0;
    static inline int copies_left = 1'000'000;
    int v = 0;
    explicit tracked(int x) : v(x) { ++alive; }
    tracked(const tracked& o) : v(o.v) {
        if (copies_left-- <= 0) throw std::runtime_error("copy failed");
        ++alive;
    }
    tracked& operator=(const tracked&) = delete;
    ~tracked() { --alive; }
};

}  // namespace

TEST_CASE("admission_lane: every payload is destroyed exactly once, also when a rebuild's copy throws",
          "[queue][lane]") {
    using tracked_lane = orchcore::detail::admission_lane<tracked, std::uint64_t>;
    tracked::alive = 0;
    tracked::copies_left = 1'000'000;
    {
        tracked_lane lane;
        std::uint64_t seq = 0;
        auto add = [&] {
            if (lane.full()) lane.rebuild();
            ++seq;
            std::uint64_t id = seq;
            lane.push_back(std::move(id), tracked(static_cast<int>(seq)), 7, {}, seq);
        };
        for (int i = 0; i < 40; ++i) add();  // rebuilds copy (the move may throw)
        REQUIRE(tracked::alive == 40);
        REQUIRE(lane.take(lane.find(10)).value.v == 10);  // a hole
        REQUIRE(lane.take(lane.head()).priority == 7);
        REQUIRE(tracked::alive == 38);
        while (!lane.full()) add();
        const auto before = tracked::alive;
        tracked::copies_left = 5;
        REQUIRE_THROWS_AS(lane.rebuild(), std::runtime_error);
        REQUIRE(tracked::alive == before);  // the lane is unchanged
        tracked::copies_left = 1'000'000;
        lane.rebuild();
        REQUIRE(tracked::alive == before);
        add();
        REQUIRE(lane.find(11) != tracked_lane::npos);
    }
    REQUIRE(tracked::alive == 0);  // the lane's destructor released the rest
}
