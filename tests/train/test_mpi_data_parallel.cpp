// Data-parallel training over MPI (run by ctest as `mpirun -np 2` and
// `-np 3`): each rank trains its share through train::MpiCommunicator and
// compares its whole state with the one-rank run with accumulation N, which
// it computes itself; the same after a resume where each rank reads its own
// file. Also the chunked sum and broadcast on their own.
#define CATCH_CONFIG_RUNNER
#include <haze/train/mpi_communicator.hpp>

#include <unistd.h>

#include "train/data_parallel_resume.hpp"

using namespace haze::test::parallel;
namespace fs = std::filesystem;

TEST_CASE("MPI: N ranks with accumulation 1 give the bits of one rank with accumulation N", "[train][parallel][mpi]") {
  train::MpiCommunicator world;
  const train::Dataset data = images();  // 37 items: not a multiple of the global batch
  const State parallel = run_rank(world, 4, data);
  require_same(parallel, one_rank(world.size(), 4, data));
}

TEST_CASE("MPI: a resume continues from rank 0's checkpoint whatever the others read", "[train][parallel][mpi]") {
  train::MpiCommunicator world;
  const train::Dataset data = images();
  // Each rank writes files of its own (no shared folder is assumed): rank 0
  // resumes from 2 steps, the others from 1.
  const fs::path file = fs::temp_directory_path() / ("haze-mpi-resume-" + std::to_string(::getpid()) + ".safetensors");
  save_one_rank(world.size(), world.rank() == 0 ? 2 : 1, data, file);
  const State resumed = resume_rank(world, file, 2, data);
  fs::remove(file);
  require_same(resumed, one_rank_tail(world.size(), 4, 2, data));
}

TEST_CASE("MPI: the chunked sum adds each value once in rank order, and broadcast copies the root's",
          "[train][parallel][mpi]") {
  train::MpiCommunicator world;
  const int n = world.size();
  // 7 values, cut into a chunk per rank, each summed by one rank.
  std::vector<float> v(7);
  for (int i = 0; i < 7; ++i) v[size_t(i)] = float((world.rank() + 1) * (i + 1));
  world.sum_in_rank_order(std::span<float>(v));
  for (int i = 0; i < 7; ++i) CHECK(v[size_t(i)] == float((i + 1) * n * (n + 1) / 2));
  // The order shows from 3 ranks on: (1e8 + -1e8) + 1 = 1 in float, where
  // 1e8 + (-1e8 + 1) = 0. Every chunk holds such a value.
  const float order[] = {1e8f, -1e8f, 1.0f};
  std::vector<float> w(7, world.rank() < 3 ? order[world.rank()] : 0.0f);
  world.sum_in_rank_order(std::span<float>(w));
  CHECK(w == std::vector<float>(7, n == 2 ? 0.0f : 1.0f));
  std::vector<double> root{double(world.rank() + 5)};
  world.broadcast(std::span<double>(root), 1);
  CHECK(root[0] == 6);
  std::vector<double> none;  // nothing to sum is no error
  world.sum_in_rank_order(std::span<double>(none));
  // MPI's own all-reduce: the same sums of small integers, whatever its order.
  for (int i = 0; i < 7; ++i) v[size_t(i)] = float((world.rank() + 1) * (i + 1));
  world.sum_any_order(std::span<float>(v));
  for (int i = 0; i < 7; ++i) CHECK(v[size_t(i)] == float((i + 1) * n * (n + 1) / 2));
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int failed = 1;
  if (size < 2) std::fprintf(stderr, "haze_mpi_tests: run under mpirun with 2 or more ranks\n");
  else failed = Catch::Session().run(argc, argv);
  MPI_Finalize();
  return failed;
}
