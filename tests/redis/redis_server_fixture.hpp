// A private redis-server for tests: started on a free 127.0.0.1 port in a
// temporary directory (no persistence unless `extra` turns it on, e.g.
// {"--appendonly", "yes", "--appendfsync", "always"}: later arguments win),
// stopped and removed afterwards. stop() + start() restart it on the same
// port and directory (with persistence, on the same data); crash() kills it
// with SIGKILL.
#pragma once

#include <orchcore/redis/redis_client.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace orchcore::test {

inline std::string find_redis_server() {
    namespace fs = std::filesystem;
    std::vector<fs::path> candidates;
    if (const char* path = std::getenv("PATH")) {
        std::string p(path);
        std::size_t start = 0;
        while (start <= p.size()) {
            const auto colon = p.find(':', start);
            const auto dir = p.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
            if (!dir.empty()) candidates.emplace_back(fs::path(dir) / "redis-server");
            if (colon == std::string::npos) break;
            start = colon + 1;
        }
    }
    candidates.emplace_back("/usr/bin/redis-server");
    candidates.emplace_back("/usr/sbin/redis-server");
    for (const auto& c : candidates)
        if (::access(c.c_str(), X_OK) == 0) return c.string();
    throw std::runtime_error("redis-server not found in PATH, /usr/bin or /usr/sbin (apt-get install redis-server)");
}

inline int free_local_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw std::runtime_error("socket() failed");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        ::close(fd);
        throw std::runtime_error("cannot find a free port");
    }
    ::close(fd);
    return ntohs(a.sin_port);
}

class redis_server {
public:
    /// Starts redis-server with `extra` arguments. `password`: the one set
    /// by --requirepass in `extra`, if any (used to probe readiness).
    explicit redis_server(std::vector<std::string> extra = {}, std::string password = {})
        : extra_(std::move(extra)), password_(std::move(password)) {
        namespace fs = std::filesystem;
        static std::atomic<int> counter{0};
        dir_ = fs::temp_directory_path() /
               ("orchcore-redis-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)));
        fs::remove_all(dir_);
        fs::create_directories(dir_);
        for (int attempt = 0;; ++attempt) {
            port_ = free_local_port();
            try {
                start();
                return;
            } catch (const std::exception&) {
                if (attempt >= 4) {
                    fs::remove_all(dir_);
                    throw;
                }
            }
        }
    }

    ~redis_server() {
        stop();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    redis_server(const redis_server&) = delete;
    redis_server& operator=(const redis_server&) = delete;

    /// Starts (again) on the same port and directory.
    void start() {
        const std::string exe = find_redis_server();
        std::vector<std::string> args{exe,         "--port",         std::to_string(port_), "--bind", "127.0.0.1",
                                      "--dir",     dir_.string(),    "--save",              "",       "--appendonly",
                                      "no",        "--daemonize",    "no",                  "--protected-mode", "no"};
        args.insert(args.end(), extra_.begin(), extra_.end());
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        const std::string log = (dir_ / "redis.log").string();
        posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
        pid_t pid = 0;
        const int rc = ::posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        if (rc != 0) throw std::runtime_error("posix_spawn(redis-server) failed");
        pid_ = pid;
        wait_until_ready();
    }

    /// Stops the server (SIGTERM, then SIGKILL after 5 s).
    void stop() { stop_with(SIGTERM); }

    /// Kills the server with SIGKILL (a crash: no shutdown save or flush).
    void crash() { stop_with(SIGKILL); }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is
    /// answered until resume() (SIGCONT), as in a long GC-like stall or a
    /// VM pause.
    void pause() {
        if (pid_ > 0) ::kill(pid_, SIGSTOP);
    }
    void resume() {
        if (pid_ > 0) ::kill(pid_, SIGCONT);
    }

    bool running() const noexcept { return pid_ > 0; }
    const std::filesystem::path& dir() const noexcept { return dir_; }

private:
    void stop_with(int sig) {
        if (pid_ <= 0) return;
        ::kill(pid_, sig);
        ::kill(pid_, SIGCONT);  // a paused server handles the signal only once it runs
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        int status = 0;
        while (::waitpid(pid_, &status, WNOHANG) == 0) {
            if (std::chrono::steady_clock::now() > deadline) {
                ::kill(pid_, SIGKILL);
                ::waitpid(pid_, &status, 0);
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        pid_ = -1;
    }

public:
    int port() const noexcept { return port_; }
    std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

    /// Options for a client of this server, with a fresh unique prefix and
    /// short timeouts (tests must not hang).
    orchcore::redis_options options(const std::string& prefix_hint = "t") const {
        static std::atomic<int> n{0};
        orchcore::redis_options o;
        o.host = "127.0.0.1";
        o.port = port_;
        o.prefix = prefix_hint + std::to_string(n.fetch_add(1));
        o.connect_timeout = std::chrono::milliseconds(1000);
        o.command_timeout = std::chrono::milliseconds(5000);
        o.retry_timeout = std::chrono::milliseconds(3000);
        o.pool_size = 8;
        o.on_warning = [](std::string_view) {};
        return o;
    }

    std::shared_ptr<orchcore::redis_client> client(const std::string& prefix_hint = "t") const {
        return std::make_shared<orchcore::redis_client>(options(prefix_hint));
    }

private:
    void wait_until_ready() {
        orchcore::redis_options o;
        o.port = port_;
        o.connect_timeout = std::chrono::milliseconds(200);
        o.retry_timeout = std::chrono::milliseconds(0);
        o.on_warning = [](std::string_view) {};
        o.password = password_;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        for (;;) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                throw std::runtime_error("redis-server exited at start (port " + std::to_string(port_) + ")");
            }
            try {
                orchcore::redis_client c(o);
                c.ping();
                return;
            } catch (const orchcore::redis_error&) {
            }
            if (std::chrono::steady_clock::now() > deadline) {
                stop();
                throw std::runtime_error("redis-server did not answer PING within 10 s");
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }

    std::vector<std::string> extra_;
    std::string password_;
    std::filesystem::path dir_;
    int port_ = 0;
    pid_t pid_ = -1;
};

/// One server shared by the tests of the whole binary (each test uses its
/// own key prefix). Started on first use, stopped at exit.
inline redis_server& shared_redis_server() {
    static redis_server server;
    return server;
}

}  // namespace orchcore::test
