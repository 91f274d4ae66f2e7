// Rank 0 handing bytes to the other ranks through a file, as NCCL's unique
// id travels where there is no MPI (NcclCommunicator::unique_id_through_file
// uses exactly these two calls; the id is 128 opaque bytes, faked here).
#include <haze/train/rendezvous_file.hpp>

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "io/io_test_support.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using haze::test::TempDir;

std::vector<std::byte> fake_id(unsigned seed) {
  std::vector<std::byte> id(128);
  for (size_t i = 0; i < id.size(); ++i) id[i] = std::byte((i * 37 + seed) & 0xff);
  return id;
}

}  // namespace

TEST_CASE("ranks that start before rank 0 publishes get its bytes", "[train][rendezvous]") {
  TempDir dir;
  const auto path = dir / "nccl-id";
  const std::vector<std::byte> id = fake_id(5);
  std::vector<std::byte> seen[3];
  std::vector<std::thread> ranks;
  for (auto& out : seen)
    ranks.emplace_back([&] { out = haze::train::wait_for_rendezvous(path, id.size(), 30s); });
  std::this_thread::sleep_for(100ms);  // the others are waiting by now
  haze::train::publish_rendezvous(path, id);
  for (auto& rank : ranks) rank.join();
  for (const auto& out : seen) CHECK(out == id);
  // A late rank reads the file that is there.
  CHECK(haze::train::wait_for_rendezvous(path, id.size(), 0ms) == id);
}

TEST_CASE("a rendezvous file left by an earlier job is refused and kept", "[train][rendezvous][errors]") {
  TempDir dir;
  const auto path = dir / "nccl-id";
  haze::train::publish_rendezvous(path, fake_id(1));
  CHECK_THROWS_WITH(haze::train::publish_rendezvous(path, fake_id(2)),
                    haze::test::mentions("nccl-id' exists already (left by an earlier job?)"));
  CHECK(haze::train::wait_for_rendezvous(path, 128, 0ms) == fake_id(1));
}

TEST_CASE("waiting for a rank 0 that never writes ends with the path named", "[train][rendezvous][errors]") {
  TempDir dir;
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH(haze::train::wait_for_rendezvous(dir / "never", 128, 300ms),
                    haze::test::mentions("waited 300 ms for rank 0 to write") &&
                        haze::test::mentions("never' (is rank 0 running"));
  const auto waited = std::chrono::steady_clock::now() - start;
  CHECK(waited >= 300ms);
  CHECK(waited < 10s);  // (a bound against a hang, not a timing claim)
}

TEST_CASE("a rendezvous file of the wrong size is refused with both sizes", "[train][rendezvous][errors]") {
  TempDir dir;
  haze::train::publish_rendezvous(dir / "short", std::vector<std::byte>(100));
  CHECK_THROWS_WITH(haze::train::wait_for_rendezvous(dir / "short", 128, 0ms),
                    haze::test::mentions("holds 100 bytes, expected 128"));
}
