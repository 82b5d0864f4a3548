// Minimal orchcore consumer used by the packaging tests: the admission queue
// (header code) and an orchcore exception thrown by the compiled library and
// caught here, compared by error code (one error category across a shared
// library boundary).
#include <orchcore/orchcore.hpp>

#include <string>

int main() {
    orchcore::admission_queue<int> q{orchcore::queue_options{.capacity = 4}};
    auto r = q.try_push(42);
    if (!r.accepted()) return 1;
    auto e = q.try_pop();
    if (!e || e->value != 42) return 2;
    try {
        auto bad = orchcore::make_admission_queue<int>("lifo", {.capacity = 1});
        return 3;
    } catch (const orchcore::invalid_argument& ex) {
        if (ex.code() != orchcore::errc::invalid_argument) return 4;
        if (std::string(ex.code().category().name()) != "orchcore") return 5;
    }
    return 0;
}
