// Child processes for the multi-process Redis tests (multiprocess_test.cpp,
// failure_test.cpp): spawn an example program with its stdout/stderr in
// files, reap it with a deadline, read its key=value counters.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace orchcore::test::proc {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct child {
    pid_t pid = -1;
    fs::path out;
    int status = -1;  // raw waitpid status once reaped
};

inline child spawn(const std::string& exe, const std::vector<std::string>& args, const fs::path& out) {
    std::vector<std::string> all{exe};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    const std::string out_s = out.string(), err_s = out.string() + ".err";
    posix_spawn_file_actions_addopen(&fa, 1, out_s.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_s.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    child c;
    c.out = out;
    const int rc = ::posix_spawn(&c.pid, exe.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("posix_spawn(" + exe + ") failed");
    return c;
}

/// Reaps the child if it exited before `deadline`.
inline bool wait_exit(child& c, std::chrono::steady_clock::time_point deadline) {
    while (c.pid > 0) {
        int st = 0;
        const pid_t r = ::waitpid(c.pid, &st, WNOHANG);
        if (r == c.pid) {
            c.status = st;
            c.pid = -1;
            return true;
        }
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(20ms);
    }
    return true;
}

/// Reaps the child if it has exited; never waits.
inline bool exited(child& c) {
    if (c.pid <= 0) return true;
    int st = 0;
    if (::waitpid(c.pid, &st, WNOHANG) == c.pid) {
        c.status = st;
        c.pid = -1;
        return true;
    }
    return false;
}

inline void kill_and_reap(child& c, int sig) {
    if (c.pid <= 0) return;
    ::kill(c.pid, sig);
    if (!wait_exit(c, std::chrono::steady_clock::now() + 15s)) {
        ::kill(c.pid, SIGKILL);
        wait_exit(c, std::chrono::steady_clock::now() + 5s);
    }
}

inline std::map<std::string, std::string> key_values(const fs::path& p) {
    std::map<std::string, std::string> out;
    std::ifstream in(p);
    std::string line;
    while (std::getline(in, line)) {
        const auto eq = line.find('=');
        if (eq != std::string::npos && line.find(' ') == std::string::npos)
            out[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return out;
}

/// A counter of key_values(), 0 if absent.
inline std::uint64_t counter(const std::map<std::string, std::string>& kv, const std::string& key) {
    auto it = kv.find(key);
    return it == kv.end() || it->second.empty() ? 0 : std::stoull(it->second);
}

inline std::string file_text(const fs::path& p) {
    std::ifstream in(p);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Kills every child still running when the test leaves (also on failure).
struct reaper {
    std::vector<child>& children;
    ~reaper() {
        for (auto& c : children) kill_and_reap(c, SIGKILL);
    }
};

/// `common` followed by `extra` (command lines of the example programs).
inline std::vector<std::string> args_with(const std::vector<std::string>& common, std::vector<std::string> extra) {
    std::vector<std::string> a = common;
    a.insert(a.end(), std::make_move_iterator(extra.begin()), std::make_move_iterator(extra.end()));
    return a;
}

}  // namespace orchcore::test::proc
