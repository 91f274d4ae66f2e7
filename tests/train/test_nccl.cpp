// NcclCommunicator on one GPU (built by nvcc with HAZE_NCCL; run where a GPU
// is, as scripts/gpu-check does): one rank runs the whole rank-order
// exchange (send/receive to itself, the summing kernel, the all-gather), so
// its sum must give back its own data bit for bit, for any n; so must
// NCCL's all-reduce and broadcast. Several ranks need several GPUs.
#include <haze/haze.hpp>
#include <haze/train/nccl_communicator.hpp>

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>

#include "test_support.hpp"

using haze::backend::Device;

TEST_CASE("NcclCommunicator: one rank's sums and broadcast give its data back", "[device][nccl]") {
  haze::train::NcclCommunicator one(haze::train::NcclCommunicator::unique_id(), 0, 1);
  CHECK(one.device_memory());
  for (const int64_t n : {1, 7, 1000, 65537}) {
    INFO("n " << n);
    const std::vector<float> values = haze::test::uniform<float>(n, uint64_t(n));
    auto data = haze::Tensor<float, Device>::from_host({n}, values);
    one.sum_in_rank_order(std::span<float>(data.data(), size_t(n)));
    CHECK(data.to_host() == values);
    one.sum_any_order(std::span<float>(data.data(), size_t(n)));
    CHECK(data.to_host() == values);
    auto wide = haze::Tensor<double, Device>::from_host({n}, std::vector<double>(values.begin(), values.end()));
    one.sum_in_rank_order(std::span<double>(wide.data(), size_t(n)));
    one.broadcast(std::span<double>(wide.data(), size_t(n)), 0);
    CHECK(wide.to_host() == std::vector<double>(values.begin(), values.end()));
  }
  CHECK_THROWS_WITH(one.broadcast(std::span<float>(), 1), haze::test::mentions("root 1 outside [0, 1)"));
}

TEST_CASE("NcclCommunicator: the id through a file is rank 0's, and one rank starts from it", "[device][nccl]") {
  namespace fs = std::filesystem;
  const fs::path path = fs::temp_directory_path() / ("haze-nccl-id-" + std::to_string(::getpid()));
  fs::remove(path);
  const ncclUniqueId made = haze::train::NcclCommunicator::unique_id_through_file(path, 0, std::chrono::seconds(1));
  // What rank 1 of a job would read (in this process: one GPU, one rank).
  const ncclUniqueId read = haze::train::NcclCommunicator::unique_id_through_file(path, 1, std::chrono::seconds(1));
  fs::remove(path);
  CHECK(std::memcmp(made.internal, read.internal, sizeof made.internal) == 0);
  haze::train::NcclCommunicator one(read, 0, 1);
  const std::vector<float> values = {1.0f, 2.0f, 3.0f};
  auto data = haze::Tensor<float, Device>::from_host({3}, values);
  one.sum_in_rank_order(std::span<float>(data.data(), 3));
  CHECK(data.to_host() == values);
}
