// What one failing rank does to the others (run by mpi_rank_failure.cmake
// under mpirun -np 2), through the example programs' examples::Ranks:
//
//   throws   rank 1 fails before the first collective; rank 0 waits in it.
//            Rank 1's error ends the job (MPI_Abort), so rank 0 cannot hang.
//   hangs    rank 1 sleeps past rank 0's timeout (1 s); rank 0's collective
//            throws, naming what it waited for, and its error ends the job.
//
// Either way the job must end in seconds with an exit status other than 0.
#include <chrono>
#include <cstdio>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "../../examples/common/ranks.hpp"

int main(int argc, char** argv) {
  examples::Ranks ranks(argc, argv);
  const std::string mode = argc > 1 ? argv[1] : "";
  int code = 0;
  try {
    HAZE_REQUIRE(ranks.size() == 2, "run under mpirun -np 2");
    HAZE_REQUIRE(mode == "throws" || mode == "hangs", "mode '", mode, "': expected throws or hangs");
    ranks.set_timeout(std::chrono::seconds(1));
    if (ranks.communicator().rank() == 1) {
      if (mode == "throws") HAZE_FAIL("rank 1 could not read its data");
      std::this_thread::sleep_for(std::chrono::seconds(120));
    }
    std::vector<float> gradients(1000, 1.0f);
    ranks.communicator().sum_in_rank_order(std::span<float>(gradients));
    std::fprintf(stderr, "rank %d: the collective finished\n", ranks.communicator().rank());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    code = 1;
  }
  return ranks.finish(code);
}
