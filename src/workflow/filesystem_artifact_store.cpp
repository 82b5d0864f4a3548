#include <orchcore/workflow/artifact_store.hpp>

#include <orchcore/error.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>
#include <utility>

namespace orchcore::workflow {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view temp_prefix = ".orchcore-tmp-";
constexpr std::size_t chunk_size = 64 * 1024;

[[noreturn]] void io_failure(std::string_view what, const fs::path& path, int err) {
    throw error(errc::backend_unavailable,
                "orchcore: artifact store: " + std::string(what) + " " + path.string() + ": " + std::strerror(err));
}

/// Owns a file descriptor and, until committed, the temporary file.
class temp_file {
public:
    explicit temp_file(fs::path path) : path_(std::move(path)) {
        fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd_ < 0) io_failure("cannot create", path_, errno);
    }
    temp_file(const temp_file&) = delete;
    temp_file& operator=(const temp_file&) = delete;
    ~temp_file() {
        if (fd_ >= 0) ::close(fd_);
        if (!committed_) ::unlink(path_.c_str());
    }

    void write(const char* data, std::size_t size) {
        while (size > 0) {
            const auto n = ::write(fd_, data, size);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) io_failure("cannot write", path_, errno);
            data += n;
            size -= static_cast<std::size_t>(n);
        }
    }

    /// fsync, close, rename over `target`, fsync the directory.
    void commit(const fs::path& target) {
        if (::fsync(fd_) != 0) io_failure("cannot fsync", path_, errno);
        const int fd = std::exchange(fd_, -1);
        if (::close(fd) != 0) io_failure("cannot close", path_, errno);
        if (::rename(path_.c_str(), target.c_str()) != 0) io_failure("cannot rename to", target, errno);
        committed_ = true;
        const int dir = ::open(target.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir >= 0) {
            ::fsync(dir);
            ::close(dir);
        }
    }

private:
    fs::path path_;
    int fd_ = -1;
    bool committed_ = false;
};

std::string unique_suffix() {
    static std::atomic<std::uint64_t> counter{0};
    return std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1, std::memory_order_relaxed));
}

bool is_temp(const fs::path& p) { return p.filename().native().starts_with(temp_prefix); }

std::chrono::system_clock::time_point modified(const fs::path& p, std::error_code& ec) {
    const auto t = fs::last_write_time(p, ec);
    return std::chrono::time_point_cast<std::chrono::system_clock::duration>(std::chrono::file_clock::to_sys(t));
}

}  // namespace

filesystem_artifact_store::filesystem_artifact_store(filesystem_store_options options) : options_(std::move(options)) {
    if (options_.root.empty()) throw invalid_argument("root", "\"\"", "the results root must not be empty");
    std::error_code ec;
    fs::create_directories(options_.root, ec);
    if (ec) io_failure("cannot create", options_.root, ec.value());
}

void filesystem_artifact_store::put(std::string_view task, std::string_view name, std::string_view data) {
    bool given = false;
    put_stream(task, name, [&](std::span<char> buffer) -> std::size_t {
        if (given) return 0;
        const auto n = std::min(buffer.size(), data.size());
        std::copy_n(data.data(), n, buffer.data());
        data.remove_prefix(n);
        given = data.empty();
        return n;
    });
}

void filesystem_artifact_store::put_stream(std::string_view task, std::string_view name, const artifact_reader& reader) {
    validate_artifact_task(task);
    validate_artifact_name(name);
    const auto target = options_.root / fs::path(task) / fs::path(name);
    std::error_code ec;
    fs::create_directories(target.parent_path(), ec);
    if (ec) io_failure("cannot create", target.parent_path(), ec.value());
    temp_file temp(target.parent_path() / (std::string(temp_prefix) + unique_suffix()));
    std::array<char, chunk_size> buffer{};
    std::uint64_t total = 0;
    while (const auto n = reader(std::span<char>(buffer))) {
        const auto size = std::min(n, buffer.size());
        total += size;
        if (total > options_.max_artifact_bytes) {
            throw invalid_argument("artifact size", "more than " + std::to_string(options_.max_artifact_bytes) + " bytes",
                                   "over max_artifact_bytes for " + std::string(task) + "/" + std::string(name));
        }
        temp.write(buffer.data(), size);
    }
    temp.commit(target);
}

bool filesystem_artifact_store::get_stream(std::string_view task, std::string_view name,
                                           const artifact_writer& writer) const {
    validate_artifact_task(task);
    validate_artifact_name(name);
    const auto path = options_.root / fs::path(task) / fs::path(name);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR || errno == EISDIR) return false;
        io_failure("cannot open", path, errno);
    }
    struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } guard{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) io_failure("cannot stat", path, errno);
    if (!S_ISREG(st.st_mode)) return false;
    std::array<char, chunk_size> buffer{};
    while (true) {
        const auto n = ::read(fd, buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) io_failure("cannot read", path, errno);
        if (n == 0) return true;
        writer(std::string_view(buffer.data(), static_cast<std::size_t>(n)));
    }
}

std::vector<artifact_info> filesystem_artifact_store::list(std::string_view task) const {
    validate_artifact_task(task);
    const auto dir = options_.root / fs::path(task);
    std::vector<artifact_info> out;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        std::error_code file_ec;
        if (is_temp(it->path()) || !it->is_regular_file(file_ec)) continue;
        const auto size = it->file_size(file_ec);
        if (file_ec) continue;  // removed while listing
        out.push_back({it->path().lexically_relative(dir).generic_string(), size});
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return out;
}

bool filesystem_artifact_store::remove(std::string_view task, std::string_view name) {
    validate_artifact_task(task);
    validate_artifact_name(name);
    const auto path = options_.root / fs::path(task) / fs::path(name);
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) return false;
    const bool removed = fs::remove(path, ec);
    if (ec) io_failure("cannot remove", path, ec.value());
    return removed;
}

std::size_t filesystem_artifact_store::remove_task(std::string_view task) {
    const auto count = list(task).size();
    const auto dir = options_.root / fs::path(task);
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (ec) io_failure("cannot remove", dir, ec.value());
    return count;
}

std::vector<std::string> filesystem_artifact_store::remove_expired(std::chrono::system_clock::time_point cutoff) {
    std::vector<std::string> removed;
    std::error_code ec;
    for (const auto& task_dir : fs::directory_iterator(options_.root, ec)) {
        if (!task_dir.is_directory(ec) || is_temp(task_dir.path())) continue;
        auto newest = modified(task_dir.path(), ec);
        for (fs::recursive_directory_iterator it(task_dir.path(), ec), end; !ec && it != end; it.increment(ec)) {
            std::error_code file_ec;
            if (is_temp(it->path()) || !it->is_regular_file(file_ec)) continue;
            newest = std::max(newest, modified(it->path(), file_ec));
        }
        if (newest >= cutoff) continue;
        fs::remove_all(task_dir.path(), ec);
        if (ec) io_failure("cannot remove", task_dir.path(), ec.value());
        removed.push_back(task_dir.path().filename().string());
    }
    std::sort(removed.begin(), removed.end());
    return removed;
}

std::size_t filesystem_artifact_store::remove_partial_writes(std::chrono::system_clock::time_point cutoff) {
    std::size_t removed = 0;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(options_.root, ec), end; !ec && it != end; it.increment(ec)) {
        std::error_code file_ec;
        if (!is_temp(it->path()) || !it->is_regular_file(file_ec)) continue;
        if (modified(it->path(), file_ec) >= cutoff || file_ec) continue;
        if (fs::remove(it->path(), file_ec)) ++removed;
    }
    return removed;
}

}  // namespace orchcore::workflow
