#pragma once
// A few bytes handed from rank 0 to the other ranks through a shared file:
// how ranks without MPI (a launcher that only sets RANK and WORLD_SIZE, or
// several programs started by hand) agree on NCCL's unique id. Rank 0
// publishes the bytes (written atomically, so a reader never sees half of
// them); the others wait for the file to appear, with a timeout.
//
// A file left by an earlier job would hand its stale bytes to the new
// ranks, so publish refuses a path that exists: use a path unique to the
// job (e.g. one with $SLURM_JOB_ID in it), or remove the old file first.

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "haze/core/error.hpp"
#include "haze/io/atomic_file.hpp"

namespace haze::train {

// Rank 0's side: writes `bytes` to `path`, which must not exist yet.
inline void publish_rendezvous(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  std::error_code error;
  HAZE_REQUIRE(!std::filesystem::exists(path, error), "rendezvous file '", path.string(),
               "' exists already (left by an earlier job?): remove it, or give this job a path of its own");
  io::write_file_atomically(path, bytes);
}

// The other ranks' side: waits up to `timeout` for `path` to appear, then
// returns its bytes, which must be exactly `size` of them.
inline std::vector<std::byte> wait_for_rendezvous(const std::filesystem::path& path, size_t size,
                                                  std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::error_code error;
  while (!std::filesystem::exists(path, error)) {
    HAZE_REQUIRE(std::chrono::steady_clock::now() < deadline, "waited ", timeout.count(), " ms for rank 0 to write '",
                 path.string(), "' (is rank 0 running, and does it see the same folder?)");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::vector<std::byte> bytes = io::read_file(path);  // (complete: it appeared by a rename)
  HAZE_REQUIRE(bytes.size() == size, "rendezvous file '", path.string(), "' holds ", bytes.size(), " bytes, expected ",
               size);
  return bytes;
}

}  // namespace haze::train
