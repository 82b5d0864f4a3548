#include <orchcore/orchcore.hpp>

#include <cstdlib>
#include <iostream>

int main() {
    orchcore::admission_queue<int> queue{orchcore::queue_options{.capacity = 2}};
    const auto admitted = queue.try_push(7);
    const auto entry = queue.try_pop();
    std::cout << "orchcore " << orchcore::version_string << ": admitted " << admitted.accepted()
              << ", popped " << (entry ? entry->value : -1) << ", category "
              << orchcore::error_category().name() << '\n';
    return admitted.accepted() && entry && entry->value == 7 ? EXIT_SUCCESS : EXIT_FAILURE;
}
