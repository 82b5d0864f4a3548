// main() for a fuzz target built without libFuzzer: feeds every file named
// on the command line, and every regular file of every directory named, to
// LLVMFuzzerTestOneInput once. A crash, a sanitizer report or an escaping
// exception fails the run.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

void replay(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // A copy of exactly the file's size, so that reading past it is an
    // error the sanitizers can see.
    const std::vector<std::uint8_t> data(bytes.begin(), bytes.end());
    LLVMFuzzerTestOneInput(data.data(), data.size());
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t inputs = 0;
    for (int i = 1; i < argc; ++i) {
        const std::filesystem::path arg(argv[i]);
        if (!std::filesystem::exists(arg)) {
            std::cerr << "replay: no such file or directory: " << arg << '\n';
            return 2;
        }
        if (!std::filesystem::is_directory(arg)) {
            replay(arg);
            ++inputs;
            continue;
        }
        for (const auto& e : std::filesystem::directory_iterator(arg)) {
            if (!e.is_regular_file()) continue;
            replay(e.path());
            ++inputs;
        }
    }
    std::cout << "replayed " << inputs << " inputs\n";
    return 0;
}
