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
#include <optional>
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

/// Owns a file descriptor.
class fd_owner {
public:
    fd_owner() = default;
    explicit fd_owner(int fd) noexcept : fd_(fd) {}
    fd_owner(fd_owner&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    fd_owner& operator=(fd_owner&& o) noexcept {
        std::swap(fd_, o.fd_);
        return *this;
    }
    fd_owner(const fd_owner&) = delete;
    fd_owner& operator=(const fd_owner&) = delete;
    ~fd_owner() {
        if (fd_ >= 0) ::close(fd_);
    }
    int get() const noexcept { return fd_; }
    int release() noexcept { return std::exchange(fd_, -1); }

private:
    int fd_ = -1;
};

/// The directory that holds an artifact, opened component by component
/// below the root without following a symbolic link (a link planted in the
/// results root never leads a read, write or removal outside it).
struct artifact_dir {
    fd_owner fd;
    std::string leaf;  ///< the artifact's own name in that directory
    fs::path shown;    ///< <root>/<task>/<name>, for messages
};

// Why a walk stopped at `part` of `dir` (openat failed with `err`).
// Without create a missing directory, a file or a link means nothing to
// find; with create it throws.
void blocked_walk(int dir, const std::string& part, int err, const fs::path& at, std::string_view name, bool create) {
    if (!create && (err == ENOENT || err == ENOTDIR || err == ELOOP)) return;
    struct stat st {};
    if (::fstatat(dir, part.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISLNK(st.st_mode)) {
            throw error(errc::invalid_argument, "orchcore: artifact store: " + at.string() +
                                                    " is a symbolic link; artifact paths never follow links");
        }
        if (!S_ISDIR(st.st_mode)) {
            throw invalid_argument("artifact name", "\"" + std::string(name) + "\"",
                                   at.string() + " is a file, not a directory of artifacts");
        }
    }
    io_failure("cannot open", at, err);
}

// Opens <root>/<task> and the directories of `name` (all but its last
// component). create: missing directories are made; otherwise empty when
// one is missing or is not a directory.
std::optional<artifact_dir> open_parent(const fs::path& root, std::string_view task, std::string_view name,
                                        bool create) {
    artifact_dir d;
    d.shown = root / fs::path(task) / fs::path(name);
    d.fd = fd_owner(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (d.fd.get() < 0) {
        if (!create && errno == ENOENT) return std::nullopt;
        io_failure("cannot open", root, errno);
    }
    fs::path at = root;
    std::string_view rest = name;
    std::string part(task);
    for (;;) {
        at /= part;
        for (int tries = 0;; ++tries) {
            const int next = ::openat(d.fd.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (next >= 0) {
                d.fd = fd_owner(next);
                break;
            }
            const int err = errno;
            if (create && err == ENOENT && tries < 8) {
                if (::mkdirat(d.fd.get(), part.c_str(), 0755) != 0 && errno != EEXIST) io_failure("cannot create", at, errno);
                continue;
            }
            blocked_walk(d.fd.get(), part, err, at, name, create);
            return std::nullopt;
        }
        const auto slash = rest.find('/');
        if (slash == std::string_view::npos) break;
        part.assign(rest.substr(0, slash));
        rest.remove_prefix(slash + 1);
    }
    d.leaf.assign(rest);
    return d;
}

/// Owns a temporary file in an artifact's directory until it is renamed
/// over the artifact.
class temp_file {
public:
    explicit temp_file(const artifact_dir& d, std::string name) : dir_(d.fd.get()), name_(std::move(name)) {
        shown_ = d.shown.parent_path() / name_;
        fd_ = fd_owner(::openat(dir_, name_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
        if (fd_.get() < 0) io_failure("cannot create", shown_, errno);
    }
    temp_file(const temp_file&) = delete;
    temp_file& operator=(const temp_file&) = delete;
    ~temp_file() {
        if (!committed_) ::unlinkat(dir_, name_.c_str(), 0);
    }

    void write(const char* data, std::size_t size) {
        while (size > 0) {
            const auto n = ::write(fd_.get(), data, size);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) io_failure("cannot write", shown_, errno);
            data += n;
            size -= static_cast<std::size_t>(n);
        }
    }

    /// fsync, close, rename over the artifact `d.leaf`, fsync the directory.
    void commit(const artifact_dir& d, std::string_view name) {
        if (::fsync(fd_.get()) != 0) io_failure("cannot fsync", shown_, errno);
        if (::close(fd_.release()) != 0) io_failure("cannot close", shown_, errno);
        if (::renameat(dir_, name_.c_str(), dir_, d.leaf.c_str()) != 0) {
            const int err = errno;
            if (err == EISDIR || err == ENOTEMPTY || err == EEXIST) {
                throw invalid_argument("artifact name", "\"" + std::string(name) + "\"",
                                       d.shown.string() + " is a directory of other artifacts");
            }
            io_failure("cannot rename to", d.shown, err);
        }
        committed_ = true;
        ::fsync(dir_);
    }

private:
    int dir_;
    std::string name_;
    fs::path shown_;
    fd_owner fd_;
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
    const auto dir = open_parent(options_.root, task, name, true);
    temp_file temp(*dir, std::string(temp_prefix) + unique_suffix());
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
    temp.commit(*dir, name);
}

bool filesystem_artifact_store::get_stream(std::string_view task, std::string_view name,
                                           const artifact_writer& writer) const {
    validate_artifact_task(task);
    validate_artifact_name(name);
    const auto dir = open_parent(options_.root, task, name, false);
    if (!dir) return false;
    const fd_owner fd(::openat(dir->fd.get(), dir->leaf.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.get() < 0) {
        if (errno == ENOENT || errno == ENOTDIR || errno == EISDIR || errno == ELOOP) return false;
        io_failure("cannot open", dir->shown, errno);
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) io_failure("cannot stat", dir->shown, errno);
    if (!S_ISREG(st.st_mode)) return false;
    std::array<char, chunk_size> buffer{};
    while (true) {
        const auto n = ::read(fd.get(), buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) io_failure("cannot read", dir->shown, errno);
        if (n == 0) return true;
        writer(std::string_view(buffer.data(), static_cast<std::size_t>(n)));
    }
}

// Symbolic links below the root are not artifacts, and are not followed.
std::vector<artifact_info> filesystem_artifact_store::list(std::string_view task) const {
    validate_artifact_task(task);
    const auto dir = options_.root / fs::path(task);
    std::vector<artifact_info> out;
    std::error_code ec;
    if (!fs::is_directory(fs::symlink_status(dir, ec))) return out;
    for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        std::error_code file_ec;
        if (is_temp(it->path()) || !fs::is_regular_file(it->symlink_status(file_ec))) continue;
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
    const auto dir = open_parent(options_.root, task, name, false);
    if (!dir) return false;
    struct stat st {};
    if (::fstatat(dir->fd.get(), dir->leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) return false;
    if (::unlinkat(dir->fd.get(), dir->leaf.c_str(), 0) == 0) return true;
    if (errno == ENOENT) return false;  // removed meanwhile
    io_failure("cannot remove", dir->shown, errno);
}

// A task directory that is a symbolic link is removed as a link: what it
// points to stays.
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
        if (!fs::is_directory(task_dir.symlink_status(ec)) || is_temp(task_dir.path())) continue;
        auto newest = modified(task_dir.path(), ec);
        for (fs::recursive_directory_iterator it(task_dir.path(), ec), end; !ec && it != end; it.increment(ec)) {
            std::error_code file_ec;
            if (is_temp(it->path()) || !fs::is_regular_file(it->symlink_status(file_ec))) continue;
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
        if (!is_temp(it->path()) || !fs::is_regular_file(it->symlink_status(file_ec))) continue;
        if (modified(it->path(), file_ec) >= cutoff || file_ec) continue;
        if (fs::remove(it->path(), file_ec)) ++removed;
    }
    return removed;
}

}  // namespace orchcore::workflow
