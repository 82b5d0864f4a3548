// Minimal orchcore consumer used by the packaging tests.
#include <orchcore/orchcore.hpp>

int main() {
    orchcore::admission_queue<int> q{orchcore::queue_options{.capacity = 4}};
    auto r = q.try_push(42);
    if (!r.accepted()) return 1;
    auto e = q.try_pop();
    if (!e || e->value != 42) return 2;
    return 0;
}
