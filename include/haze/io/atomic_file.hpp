#pragma once
// Checked file reads and crash-safe whole-file writes. A checkpoint or an image
// is written to a temporary file next to its destination, flushed to disk and
// renamed over it, so a reader (or a crash, or a full disk) sees either the
// old file or the complete new one, never a torn mix.

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "haze/core/error.hpp"

namespace haze::io {

namespace detail {

inline std::string errno_text(int error) { return std::strerror(error); }

// Closes a file descriptor on scope exit unless released; close errors on
// this path are moot (we are already failing or only read).
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// Writes all of `bytes`, retrying short writes and EINTR; returns 0 or errno.
inline int write_all(int fd, std::span<const std::byte> bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;  // no progress and no errno: treat as an I/O error
    done += static_cast<size_t>(n);
  }
  return 0;
}

// The temporary's name: hidden next to `path`, unique per process and call,
// so concurrent writers (threads or processes) never share one.
inline std::filesystem::path temporary_name_for(const std::filesystem::path& path) {
  static std::atomic<uint64_t> counter{0};
  std::filesystem::path temp = path;
  temp += ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
  return temp;
}

inline std::filesystem::path folder_of(const std::filesystem::path& path) {
  return path.parent_path().empty() ? "." : path.parent_path();
}

// What a non-regular file is, for error messages.
inline const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a file";
}

// Parses `<name>.tmp-<pid>-<n>` (temporary_name_for's pattern) for the
// target named `name`; returns the pid, or -1 when `entry` is something else.
inline pid_t temporary_owner(std::string_view entry, std::string_view name) {
  const std::string prefix = std::string(name) + ".tmp-";
  if (!entry.starts_with(prefix)) return -1;
  const std::string_view rest = entry.substr(prefix.size());
  const size_t dash = rest.find('-');
  const auto digits = [](std::string_view text) {
    return !text.empty() && text.size() <= 18 &&
           std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (dash == std::string_view::npos || !digits(rest.substr(0, dash)) || !digits(rest.substr(dash + 1))) return -1;
  const long long pid = std::stoll(std::string(rest.substr(0, dash)));
  return pid > 0 && pid <= INT32_MAX ? static_cast<pid_t>(pid) : -1;
}

// A save killed midway leaves its temporary behind. Before the next save of
// the same target, remove those whose writer is gone (ESRCH); a live writer's
// (kill succeeds or says EPERM) is left alone. Best effort: a folder that
// cannot be listed or an entry that cannot be removed is not an error here.
inline void remove_stale_temporaries(const std::filesystem::path& path) {
  const std::filesystem::path parent = folder_of(path);
  const std::string name = path.filename().string();
  std::error_code error;
  for (std::filesystem::directory_iterator it(parent, error), end; !error && it != end; it.increment(error)) {
    const pid_t owner = temporary_owner(it->path().filename().string(), name);
    if (owner > 0 && owner != ::getpid() && ::kill(owner, 0) == -1 && errno == ESRCH) ::unlink(it->path().c_str());
  }
}

struct Temporary {
  std::filesystem::path path;
  int fd = -1;
  int error = 0;  // open's errno when fd < 0
};

// Creates the temporary. Its name may be taken by the leftover of an earlier
// process that had our pid (containers reuse small pids), which
// remove_stale_temporaries cannot tell from our own: take the next name then.
inline Temporary create_temporary(const std::filesystem::path& path) {
  for (int attempt = 0;; ++attempt) {
    Temporary temp{temporary_name_for(path)};
    temp.fd = ::open(temp.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    temp.error = temp.fd < 0 ? errno : 0;
    if (temp.error != EEXIST || attempt == 100000) return temp;
  }
}

}  // namespace detail

// Replaces the contents of `path` with `bytes` atomically: write a temporary
// in the same folder, fsync it, rename it over `path`, fsync the folder. On any
// failure the temporary is removed, an existing `path` is left untouched, and
// haze::Error names the path, the step that failed and the system's reason.
inline void write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  detail::remove_stale_temporaries(path);
  const detail::Temporary created = detail::create_temporary(path);
  const std::filesystem::path& temp = created.path;
  const auto fail = [&](const char* step, int error) {
    ::unlink(temp.c_str());
    HAZE_REQUIRE(false, "write_file_atomically: '", path.string(), "': ", step, " failed: ", detail::errno_text(error));
  };

  detail::FdGuard file(created.fd);
  if (file.get() < 0) {
    // Nothing was created, so there is nothing to remove.
    HAZE_REQUIRE(false, "write_file_atomically: '", path.string(), "': cannot create the temporary '", temp.string(),
                 "': ", detail::errno_text(created.error));
  }
  if (const int error = detail::write_all(file.get(), bytes)) fail("writing the temporary", error);
  if (::fsync(file.get()) != 0) fail("fsync of the temporary", errno);
  // close() can report a deferred write error (NFS, quotas): check it too.
  if (::close(file.release()) != 0) fail("closing the temporary", errno);
  if (::rename(temp.c_str(), path.c_str()) != 0) fail("renaming the temporary over it", errno);

  // The rename is durable only once the folder's entry is on disk.
  const std::filesystem::path parent = detail::folder_of(path);
  detail::FdGuard folder(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  // Some file systems cannot fsync a folder (EINVAL); the data is in place then.
  if (folder.get() >= 0 && ::fsync(folder.get()) != 0 && errno != EINVAL) {
    HAZE_REQUIRE(false, "write_file_atomically: '", path.string(), "': fsync of the folder '", parent.string(),
                 "' failed: ", detail::errno_text(errno));
  }
}

// A regular file opened for reading, with its size. open() uses O_NONBLOCK
// because opening a FIFO blocks until a writer appears (on a regular file
// the flag has no effect); anything but a regular file is then refused
// before a single byte is read.
class InputFile {
 public:
  // `who` prefixes the error messages (e.g. "read_file").
  InputFile(const std::filesystem::path& path, std::string_view who)
      : path_(path), who_(who), fd_(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)) {
    HAZE_REQUIRE(fd_.get() >= 0, who_, ": cannot open '", path_.string(), "': ", detail::errno_text(errno));
    struct stat info {};
    HAZE_REQUIRE(::fstat(fd_.get(), &info) == 0, who_, ": cannot stat '", path_.string(),
                 "': ", detail::errno_text(errno));
    HAZE_REQUIRE(S_ISREG(info.st_mode), who_, ": '", path_.string(), "' is not a regular file (",
                 detail::file_kind(info.st_mode), ")");
    size_ = static_cast<uint64_t>(info.st_size);
  }

  const std::filesystem::path& path() const { return path_; }
  uint64_t size() const { return size_; }  // as of opening

  // Up to out.size() bytes from `offset`; fewer only at the end of the file.
  size_t read_some(uint64_t offset, std::span<std::byte> out) const {
    size_t done = 0;
    while (done < out.size()) {
      const ssize_t n = ::pread(fd_.get(), out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      HAZE_REQUIRE(n >= 0, who_, ": reading '", path_.string(), "' at offset ", offset + done,
                   " failed: ", detail::errno_text(errno));
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    return done;
  }

  // Exactly out.size() bytes from `offset` (the file shrank if it ends sooner).
  void read_at(uint64_t offset, std::span<std::byte> out) const {
    const size_t got = read_some(offset, out);
    HAZE_REQUIRE(got == out.size(), who_, ": '", path_.string(), "' ended after ", offset + got, " bytes, reading ",
                 out.size(), " bytes at offset ", offset, " (it shrank while being read?)");
  }

 private:
  std::filesystem::path path_;
  std::string who_;
  detail::FdGuard fd_;
  uint64_t size_ = 0;
};

// The whole file as bytes; haze::Error names the file when it is missing,
// not a regular file, or unreadable. (Formats with a length header read only
// what the header describes through InputFile instead.)
inline std::vector<std::byte> read_file(const std::filesystem::path& path) {
  const InputFile file(path, "read_file");
  std::vector<std::byte> bytes(static_cast<size_t>(file.size()));
  size_t done = 0;
  for (;;) {
    if (done == bytes.size()) bytes.resize(bytes.size() + 65536);  // the file grew, or st_size was 0
    const size_t n = file.read_some(done, std::span(bytes).subspan(done));
    if (n == 0) break;
    done += n;
  }
  bytes.resize(done);
  return bytes;
}

}  // namespace haze::io
