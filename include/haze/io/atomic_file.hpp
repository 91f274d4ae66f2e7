#pragma once
// Whole-file reads and crash-safe whole-file writes. A checkpoint or an image
// is written to a temporary file next to its destination, flushed to disk and
// renamed over it, so a reader (or a crash, or a full disk) sees either the
// old file or the complete new one, never a torn mix.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
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

}  // namespace detail

// Replaces the contents of `path` with `bytes` atomically: write a temporary
// in the same folder, fsync it, rename it over `path`, fsync the folder. On any
// failure the temporary is removed, an existing `path` is left untouched, and
// haze::Error names the path, the step that failed and the system's reason.
inline void write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  const std::filesystem::path temp = detail::temporary_name_for(path);
  const auto fail = [&](const char* step, int error) {
    ::unlink(temp.c_str());
    HAZE_REQUIRE(false, "write_file_atomically: '", path.string(), "': ", step, " failed: ", detail::errno_text(error));
  };

  detail::FdGuard file(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
  if (file.get() < 0) {
    // Nothing was created, so there is nothing to remove.
    HAZE_REQUIRE(false, "write_file_atomically: '", path.string(), "': cannot create the temporary '", temp.string(),
                 "': ", detail::errno_text(errno));
  }
  if (const int error = detail::write_all(file.get(), bytes)) fail("writing the temporary", error);
  if (::fsync(file.get()) != 0) fail("fsync of the temporary", errno);
  // close() can report a deferred write error (NFS, quotas): check it too.
  if (::close(file.release()) != 0) fail("closing the temporary", errno);
  if (::rename(temp.c_str(), path.c_str()) != 0) fail("renaming the temporary over it", errno);

  // The rename is durable only once the folder's entry is on disk.
  const std::filesystem::path parent = path.parent_path().empty() ? "." : path.parent_path();
  detail::FdGuard folder(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  // Some file systems cannot fsync a folder (EINVAL); the data is in place then.
  if (folder.get() >= 0 && ::fsync(folder.get()) != 0 && errno != EINVAL) {
    HAZE_REQUIRE(false, "write_file_atomically: '", path.string(), "': fsync of the folder '", parent.string(),
                 "' failed: ", detail::errno_text(errno));
  }
}

// The whole file as bytes; haze::Error names the file when it is missing,
// not a regular file, or unreadable.
inline std::vector<std::byte> read_file(const std::filesystem::path& path) {
  detail::FdGuard file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  HAZE_REQUIRE(file.get() >= 0, "read_file: cannot open '", path.string(), "': ", detail::errno_text(errno));
  struct stat info {};
  HAZE_REQUIRE(::fstat(file.get(), &info) == 0, "read_file: cannot stat '", path.string(),
               "': ", detail::errno_text(errno));
  HAZE_REQUIRE(S_ISREG(info.st_mode), "read_file: '", path.string(), "' is not a regular file");

  std::vector<std::byte> bytes(static_cast<size_t>(info.st_size));
  size_t done = 0;
  for (;;) {
    if (done == bytes.size()) bytes.resize(bytes.size() + 65536);  // the file grew, or st_size was 0
    const ssize_t n = ::read(file.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    HAZE_REQUIRE(n >= 0, "read_file: reading '", path.string(), "' failed after ", done,
                 " bytes: ", detail::errno_text(errno));
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  bytes.resize(done);
  return bytes;
}

}  // namespace haze::io
