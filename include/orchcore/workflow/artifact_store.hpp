// Artifacts: named files a task produces (results, checkpoints), kept per
// task. artifact_store is the interface; filesystem_artifact_store keeps a
// directory per task under a results root and writes atomically.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace orchcore::workflow {

struct artifact_info {
    std::string name{};
    std::uint64_t size = 0;

    friend bool operator==(const artifact_info&, const artifact_info&) = default;
};

/// Fills the buffer with the next bytes and returns how many; 0 at the end.
using artifact_reader = std::function<std::size_t(std::span<char> buffer)>;
/// Receives the artifact's bytes in order, one chunk at a time.
using artifact_writer = std::function<void(std::string_view chunk)>;

/// Task ids are one path component, artifact names one or more joined by
/// '/'. Both are refused (invalid_argument naming the field and the value)
/// when empty, longer than 1024 bytes in all or 255 in a component, absolute,
/// with an empty component or one starting with '.' (so no "." or ".."),
/// or with a backslash, a NUL or another control character.
class artifact_store {
public:
    virtual ~artifact_store() = default;

    /// Stores an artifact, replacing one of the same name; readers see the
    /// old or the new content, never a mix or a part.
    virtual void put(std::string_view task, std::string_view name, std::string_view data) = 0;
    /// The same, reading the content from `reader` in chunks.
    virtual void put_stream(std::string_view task, std::string_view name, const artifact_reader& reader) = 0;
    /// Streams an artifact to `writer` in chunks; false if there is none.
    virtual bool get_stream(std::string_view task, std::string_view name, const artifact_writer& writer) const = 0;
    /// The whole artifact, empty if there is none.
    std::optional<std::string> get(std::string_view task, std::string_view name) const;
    /// A task's artifacts, sorted by name.
    virtual std::vector<artifact_info> list(std::string_view task) const = 0;
    /// False if there was no such artifact.
    virtual bool remove(std::string_view task, std::string_view name) = 0;
    /// Removes all of a task's artifacts; returns how many there were.
    virtual std::size_t remove_task(std::string_view task) = 0;
    /// Removes every task whose artifacts were all last written before
    /// `cutoff`; returns the tasks removed.
    virtual std::vector<std::string> remove_expired(std::chrono::system_clock::time_point cutoff) = 0;
};

struct filesystem_store_options {
    std::filesystem::path root{};                   ///< the results root; created if missing
    std::uint64_t max_artifact_bytes = 1ULL << 32;  ///< larger artifacts are refused
};

/// A directory per task under the root: <root>/<task>/<name>. A put writes a
/// temporary file next to the target (".orchcore-tmp-*"), fsyncs it and
/// renames it over the target, so a crash leaves at most a temporary file,
/// which list() and get() ignore and remove_partial_writes() deletes.
/// Concurrent puts of one name: the last rename wins. I/O failures throw
/// orchcore::error (errc::backend_unavailable) naming the path.
class filesystem_artifact_store final : public artifact_store {
public:
    explicit filesystem_artifact_store(filesystem_store_options options);

    const std::filesystem::path& root() const noexcept { return options_.root; }

    void put(std::string_view task, std::string_view name, std::string_view data) override;
    void put_stream(std::string_view task, std::string_view name, const artifact_reader& reader) override;
    bool get_stream(std::string_view task, std::string_view name, const artifact_writer& writer) const override;
    std::vector<artifact_info> list(std::string_view task) const override;
    bool remove(std::string_view task, std::string_view name) override;
    std::size_t remove_task(std::string_view task) override;
    std::vector<std::string> remove_expired(std::chrono::system_clock::time_point cutoff) override;

    /// Deletes temporary files of writes that never finished, last written
    /// before `cutoff` (a write in progress keeps writing its file); returns
    /// how many.
    std::size_t remove_partial_writes(std::chrono::system_clock::time_point cutoff);

private:
    filesystem_store_options options_;
};

/// Throws invalid_argument unless `task` is a valid task id.
void validate_artifact_task(std::string_view task);
/// Throws invalid_argument unless `name` is a valid artifact name.
void validate_artifact_name(std::string_view name);

}  // namespace orchcore::workflow
