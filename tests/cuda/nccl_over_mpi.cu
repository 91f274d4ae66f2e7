// NCCL ranks bootstrapped over MPI (nccl_id_over_mpi), one GPU per rank, run
// as mpirun -np <GPUs> haze_nccl_over_mpi: every rank's NCCL rank-order sum
// must equal, bit for bit, the MpiCommunicator sum of the same host values
// (both add the ranks' parts in rank order), and NCCL's broadcast must give
// every rank rank 0's values. Built by nvcc in every CUDA + MPI build; ctest
// runs it only where a GPU is. Exit 0: the same bits; 1: they differ.
#include <haze/haze.hpp>
#include <haze/train/mpi_communicator.hpp>
#include <haze/train/nccl_id_over_mpi.hpp>

#include <cstdio>
#include <span>
#include <vector>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int failures = 0;
  try {
    haze::train::MpiCommunicator host(MPI_COMM_WORLD, std::chrono::seconds(60));
    int gpus = 0;
    HAZE_REQUIRE(cudaGetDeviceCount(&gpus) == cudaSuccess && gpus > 0, "no GPU");
    HAZE_REQUIRE(cudaSetDevice(host.rank() % gpus) == cudaSuccess, "cudaSetDevice failed");
    haze::train::NcclCommunicator device(haze::train::nccl_id_over_mpi(MPI_COMM_WORLD), host.rank(), host.size());
    for (const int64_t n : {1, 1000, 65537}) {
      // Values whose sum depends on the order of the additions.
      std::vector<float> values(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i)
        values[size_t(i)] = float((i % 7 + 1) * (host.rank() + 1)) * (i % 3 ? 11.0f : 1.1e-3f);
      auto on_device = haze::Tensor<float, haze::backend::Device>::from_host({n}, values);
      device.sum_in_rank_order(std::span<float>(on_device.data(), size_t(n)));
      std::vector<float> expected = values;
      host.sum_in_rank_order(std::span<float>(expected));
      if (on_device.to_host() != expected) {
        ++failures;
        std::fprintf(stderr, "rank %d: n %lld: the sums differ\n", host.rank(), (long long)n);
      }
      device.broadcast(std::span<float>(on_device.data(), size_t(n)), 0);
      host.broadcast(std::span<float>(expected), 0);
      if (on_device.to_host() != expected) {
        ++failures;
        std::fprintf(stderr, "rank %d: n %lld: the broadcasts differ\n", host.rank(), (long long)n);
      }
    }
    std::fprintf(stderr, "rank %d of %d: %s\n", host.rank(), host.size(), failures ? "FAILED" : "NCCL and MPI agree");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return failures ? 1 : 0;
}
