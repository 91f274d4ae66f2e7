// Data-parallel training over MPI (run by ctest as `mpirun -np 2`): each
// rank trains its share through train::MpiCommunicator, and each compares
// its whole state with the one-rank run with accumulation 2, which it
// computes itself. Also the chunked sum and broadcast on their own.
#define CATCH_CONFIG_RUNNER
#include <haze/train/mpi_communicator.hpp>

#include "train/data_parallel_support.hpp"

using namespace haze::test::parallel;

TEST_CASE("MPI: 2 ranks with accumulation 1 give the bits of one rank with accumulation 2", "[train][parallel][mpi]") {
  train::MpiCommunicator world;
  REQUIRE(world.size() == 2);  // (ctest's mpirun -np 2)
  const train::Dataset data = images();
  const State parallel = run_rank(world, 4, data);
  require_same(parallel, one_rank(2, 4, data));
}

TEST_CASE("MPI: the chunked sum adds each value once, and broadcast copies the root's", "[train][parallel][mpi]") {
  train::MpiCommunicator world;
  // 7 values over 2 ranks: chunks of 3 and 4, each summed by one rank.
  // (With 2 ranks the order cannot show: a + b = b + a. LocalGroup's test
  // shows it with 3, and the training test above holds MPI to its bits.)
  std::vector<float> v(7);
  for (int i = 0; i < 7; ++i) v[size_t(i)] = float((world.rank() + 1) * (i + 1));
  world.sum_in_rank_order(std::span<float>(v));
  CHECK(v == std::vector<float>{3, 6, 9, 12, 15, 18, 21});
  std::vector<double> root{double(world.rank() + 5)};
  world.broadcast(std::span<double>(root), 1);
  CHECK(root[0] == 6);
  std::vector<double> none;  // nothing to sum is no error
  world.sum_in_rank_order(std::span<double>(none));
  // MPI's own all-reduce: the same sums here (two ranks: a + b = b + a).
  for (int i = 0; i < 7; ++i) v[size_t(i)] = float((world.rank() + 1) * (i + 1));
  world.sum_any_order(std::span<float>(v));
  CHECK(v == std::vector<float>{3, 6, 9, 12, 15, 18, 21});
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  const int failed = Catch::Session().run(argc, argv);
  MPI_Finalize();
  return failed;
}
