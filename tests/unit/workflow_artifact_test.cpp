// The filesystem artifact store: names, streaming, atomic writes, partial
// writes left by a crash, removal and expiry. Every test uses its own
// temporary directory.
#include <orchcore/workflow/artifact_store.hpp>

#include <orchcore/error.hpp>
#include <support/error_helpers.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace wf = orchcore::workflow;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

struct temp_root {
    fs::path path;
    temp_root() {
        static std::atomic<int> n{0};
        path = fs::temp_directory_path() /
               ("orchcore-artifacts-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
        fs::remove_all(path);
    }
    ~temp_root() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

std::vector<std::string> names_of(const std::vector<wf::artifact_info>& list) {
    std::vector<std::string> out;
    for (const auto& a : list) out.push_back(a.name);
    return out;
}

}  // namespace

TEST_CASE("artifacts are stored per task, listed by name and read back", "[workflow][artifacts]") {
    temp_root root;
    wf::filesystem_artifact_store store({.root = root.path});
    store.put("task-1", "responses.json", R"({"ok":true})");
    store.put("task-1", "checkpoints/final.zip", std::string(3, '\0'));
    store.put("task-2", "responses.json", "other");
    CHECK(fs::is_regular_file(root.path / "task-1" / "checkpoints" / "final.zip"));
    CHECK(store.get("task-1", "responses.json") == R"({"ok":true})");
    CHECK(store.get("task-1", "checkpoints/final.zip") == std::string(3, '\0'));
    CHECK_FALSE(store.get("task-1", "missing"));
    CHECK_FALSE(store.get("task-3", "responses.json"));
    CHECK(store.list("task-1") ==
          std::vector<wf::artifact_info>{{"checkpoints/final.zip", 3}, {"responses.json", 11}});
    CHECK(store.list("nobody").empty());
    store.put("task-1", "responses.json", "v2");
    CHECK(store.get("task-1", "responses.json") == "v2");
}

TEST_CASE("large artifacts stream in and out in chunks", "[workflow][artifacts]") {
    temp_root root;
    wf::filesystem_artifact_store store({.root = root.path});
    constexpr std::size_t total = 1'000'003;
    std::size_t given = 0;
    store.put_stream("t", "big.bin", [&](std::span<char> buf) {
        const auto n = std::min(buf.size(), total - given);
        for (std::size_t i = 0; i < n; ++i) buf[i] = static_cast<char>((given + i) % 251);
        given += n;
        return n;
    });
    std::size_t seen = 0, chunks = 0;
    bool in_order = true;
    CHECK(store.get_stream("t", "big.bin", [&](std::string_view chunk) {
        ++chunks;
        for (const char c : chunk) in_order = in_order && c == static_cast<char>(seen++ % 251);
    }));
    CHECK(seen == total);
    CHECK(in_order);
    CHECK(chunks > 1);
}

TEST_CASE("artifact names and task ids that could escape or confuse are refused by field and value",
          "[workflow][artifacts]") {
    temp_root root;
    wf::filesystem_artifact_store store({.root = root.path});
    using orchcore::test::invalid_field;
    const auto put = [&](std::string_view task, std::string_view name) {
        return invalid_field([&] { store.put(task, name, "x"); });
    };
    CHECK(put("t", "../x") == "artifact name | orchcore: invalid artifact name = \"../x\": a path component starts with '.'");
    CHECK(put("t", "/etc/passwd") == "artifact name | orchcore: invalid artifact name = \"/etc/passwd\": an absolute path");
    CHECK(put("t", "a/../../b") ==
          "artifact name | orchcore: invalid artifact name = \"a/../../b\": a path component starts with '.'");
    CHECK(put("t", std::string_view("a\0b", 3)) ==
          "artifact name | orchcore: invalid artifact name = \"a\\x00b\": contains a NUL byte");
    CHECK(put("t", "a\\b") == "artifact name | orchcore: invalid artifact name = \"a\\b\": contains a backslash");
    CHECK(put("t", "a\nb") ==
          "artifact name | orchcore: invalid artifact name = \"a\\x0ab\": contains a control character");
    CHECK(put("t", "") == "artifact name | orchcore: invalid artifact name = \"\": must not be empty");
    CHECK(put("t", "a//b") == "artifact name | orchcore: invalid artifact name = \"a//b\": empty path component");
    CHECK_THAT(put("t", std::string(256, 'n')), Catch::EndsWith("a path component is longer than 255 bytes"));
    CHECK(put("t", std::string(255, 'n')) == "no exception");
    std::string deep;
    for (int i = 0; i < 9; ++i) deep += std::string(120, 'd') + "/";
    deep += "f";
    CHECK_THAT(put("t", deep), Catch::EndsWith("longer than 1024 bytes"));
    CHECK(put("..", "x") == "artifact task | orchcore: invalid artifact task = \"..\": a path component starts with '.'");
    CHECK(put("a/b", "x") == "artifact task | orchcore: invalid artifact task = \"a/b\": contains '/'");
    CHECK(invalid_field([&] { (void)store.get("t", "../../etc/passwd"); }) != "no exception");
    CHECK(invalid_field([&] { (void)store.list("/"); }) != "no exception");
    CHECK(invalid_field([&] { (void)store.remove_task(".."); }) != "no exception");
}

TEST_CASE("an artifact over the size limit is refused and leaves nothing behind", "[workflow][artifacts]") {
    temp_root root;
    wf::filesystem_artifact_store store({.root = root.path, .max_artifact_bytes = 10});
    store.put("t", "ok", std::string(10, 'x'));
    CHECK_THROWS_AS(store.put("t", "ok", std::string(11, 'y')), orchcore::invalid_argument);
    CHECK(store.get("t", "ok") == std::string(10, 'x'));  // the old content stays
    std::size_t files = 0;
    for (const auto& e : fs::directory_iterator(root.path / "t")) files += e.is_regular_file() ? 1 : 0;
    CHECK(files == 1);
}

TEST_CASE("a write that crashed leaves only a temporary file, which list and get ignore and cleanup removes",
          "[workflow][artifacts]") {
    temp_root root;
    wf::filesystem_artifact_store store({.root = root.path});
    store.put("t", "result.json", "done");
    std::ofstream(root.path / "t" / ".orchcore-tmp-4242-0") << "half of a fi";
    CHECK(names_of(store.list("t")) == std::vector<std::string>{"result.json"});
    CHECK_THROWS_AS(store.get("t", ".orchcore-tmp-4242-0"), orchcore::invalid_argument);
    CHECK(store.remove_partial_writes(std::chrono::system_clock::now() - 1h) == 0);  // might still be writing
    CHECK(store.remove_partial_writes(std::chrono::system_clock::now() + 1h) == 1);
    CHECK_FALSE(fs::exists(root.path / "t" / ".orchcore-tmp-4242-0"));
    CHECK(store.get("t", "result.json") == "done");
}

TEST_CASE("concurrent puts of one name: readers see one whole version, the last rename wins",
          "[workflow][artifacts]") {
    temp_root root;
    wf::filesystem_artifact_store store({.root = root.path});
    const std::string a(200'000, 'a'), b(300'000, 'b');
    store.put("t", "x", a);
    std::atomic<bool> done{false};
    std::atomic<int> mixed{0};
    std::thread reader([&] {
        while (!done) {
            const auto got = store.get("t", "x");
            if (!got || !(*got == a || *got == b)) ++mixed;
        }
    });
    std::thread writer_a([&] { for (int i = 0; i < 20; ++i) store.put("t", "x", a); });
    std::thread writer_b([&] { for (int i = 0; i < 20; ++i) store.put("t", "x", b); });
    writer_a.join();
    writer_b.join();
    done = true;
    reader.join();
    CHECK(mixed == 0);
    const auto last = store.get("t", "x");
    CHECK((last == a || last == b));
    CHECK(names_of(store.list("t")) == std::vector<std::string>{"x"});  // no temporary files left
}

TEST_CASE("artifacts are removed one by one, per task, and by expiry", "[workflow][artifacts]") {
    temp_root root;
    wf::filesystem_artifact_store store({.root = root.path});
    store.put("old", "a", "1");
    store.put("old", "b/c", "2");
    store.put("new", "a", "3");
    CHECK(store.remove("old", "a"));
    CHECK_FALSE(store.remove("old", "a"));
    CHECK(names_of(store.list("old")) == std::vector<std::string>{"b/c"});
    // Age "old" by an hour; "new" stays fresh.
    const auto an_hour_ago = fs::file_time_type::clock::now() - 1h;
    fs::last_write_time(root.path / "old" / "b" / "c", an_hour_ago);
    fs::last_write_time(root.path / "old" / "b", an_hour_ago);
    fs::last_write_time(root.path / "old", an_hour_ago);
    CHECK(store.remove_expired(std::chrono::system_clock::now() - 30min) == std::vector<std::string>{"old"});
    CHECK(store.list("old").empty());
    CHECK(store.get("new", "a") == "3");
    store.put("new", "z", "4");
    CHECK(store.remove_task("new") == 2);
    CHECK(store.list("new").empty());
    CHECK_FALSE(fs::exists(root.path / "new"));
}

TEST_CASE("a symbolic link planted below the root never leads a read, write or removal outside it",
          "[workflow][artifacts]") {
    temp_root root;
    temp_root outside;
    fs::create_directories(outside.path);
    std::ofstream(outside.path / "secret") << "keep";
    wf::filesystem_artifact_store store({.root = root.path});
    store.put("t", "real", "1");
    fs::create_directory_symlink(outside.path, root.path / "t" / "link");          // a directory in a name
    fs::create_symlink(outside.path / "secret", root.path / "t" / "file-link");   // an artifact's own name
    fs::create_directory_symlink(outside.path, root.path / "linked-task");         // a task directory

    CHECK(store.get("t", "link/secret") == std::nullopt);
    CHECK(store.get("t", "file-link") == std::nullopt);
    CHECK(store.get("linked-task", "secret") == std::nullopt);
    CHECK(names_of(store.list("t")) == std::vector<std::string>{"real"});
    CHECK(store.list("linked-task").empty());
    CHECK_FALSE(store.remove("t", "link/secret"));
    CHECK_FALSE(store.remove("linked-task", "secret"));
    const auto link_error = [&](auto&& fn) -> std::string {
        try {
            fn();
        } catch (const orchcore::error& e) {
            return e.what();
        }
        return "no exception";
    };
    CHECK_THAT(link_error([&] { store.put("t", "link/planted", "x"); }),
               Catch::EndsWith("link is a symbolic link; artifact paths never follow links"));
    CHECK_THAT(link_error([&] { store.put("linked-task", "planted", "x"); }),
               Catch::EndsWith("linked-task is a symbolic link; artifact paths never follow links"));
    // A put over a link replaces the link, not what it points to.
    store.put("t", "file-link", "new");
    CHECK(store.get("t", "file-link") == "new");
    CHECK(store.remove_task("linked-task") == 0);
    CHECK(store.remove_expired(std::chrono::system_clock::now() + 1h) == std::vector<std::string>{"t"});

    std::vector<std::string> left;
    for (const auto& e : fs::directory_iterator(outside.path)) left.push_back(e.path().filename().string());
    CHECK(left == std::vector<std::string>{"secret"});
    std::ifstream in(outside.path / "secret");
    std::string content;
    in >> content;
    CHECK(content == "keep");
}

TEST_CASE("an artifact name that collides with another's directory, or goes through a file, is refused by name",
          "[workflow][artifacts]") {
    temp_root root;
    wf::filesystem_artifact_store store({.root = root.path});
    using orchcore::test::invalid_field;
    store.put("t", "a/b", "1");
    CHECK_THAT(invalid_field([&] { store.put("t", "a", "2"); }),
               Catch::StartsWith("artifact name | ") && Catch::EndsWith("is a directory of other artifacts"));
    CHECK_THAT(invalid_field([&] { store.put("t", "a/b/c", "3"); }),
               Catch::StartsWith("artifact name | ") && Catch::EndsWith("is a file, not a directory of artifacts"));
    CHECK(store.get("t", "a/b") == "1");
    CHECK(store.get("t", "a/b/c") == std::nullopt);
    CHECK(store.get("t", "a") == std::nullopt);
    CHECK(names_of(store.list("t")) == std::vector<std::string>{"a/b"});
    std::size_t files = 0;
    for (const auto& e : fs::recursive_directory_iterator(root.path)) files += e.is_regular_file() ? 1 : 0;
    CHECK(files == 1);  // no temporary file left behind
}
