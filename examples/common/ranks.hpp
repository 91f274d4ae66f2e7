#pragma once
// The ranks a program runs as. Launched by mpirun, in a build with MPI
// (HAZE_WITH_MPI, from CMake's HAZE_MPI): MPI_Init here, MPI_Finalize at
// the end, and MPI_COMM_WORLD as the data-parallel communicator. Otherwise
// one rank, and a clear error when mpirun started several copies of a
// build without MPI (each would train alone and write the same files).
#include <haze/core/error.hpp>
#include <haze/train/communicator.hpp>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>

#if defined(HAZE_WITH_MPI)
#include <haze/train/mpi_communicator.hpp>
#endif

namespace examples {

class Ranks {
 public:
  Ranks(int& argc, char**& argv) {
#if defined(HAZE_WITH_MPI)
    if (launched_by_mpirun()) {
      MPI_Init(&argc, &argv);
      mpi_ = true;
      communicator_ = std::make_unique<haze::train::MpiCommunicator>();
      return;
    }
#else
    (void)argc, (void)argv;
#endif
    communicator_ = std::make_unique<haze::train::SingleRank>();
  }
  Ranks(const Ranks&) = delete;
  Ranks& operator=(const Ranks&) = delete;
  ~Ranks() {
#if defined(HAZE_WITH_MPI)
    if (mpi_) MPI_Finalize();
#endif
  }

  haze::train::Communicator& communicator() { return *communicator_; }
  // The longest a collective waits for the other ranks before it fails.
  void set_timeout([[maybe_unused]] std::chrono::milliseconds timeout) {
#if defined(HAZE_WITH_MPI)
    if (mpi_) static_cast<haze::train::MpiCommunicator&>(*communicator_).set_timeout(timeout);
#endif
  }
  int size() const { return communicator_->size(); }
  // Rank 0 alone writes checkpoints, logs and pictures and prints progress.
  bool writer() const { return communicator_->rank() == 0; }

  // Throws when mpirun started several processes that cannot talk.
  void require_transport() const {
    const char* world = std::getenv("OMPI_COMM_WORLD_SIZE");
    if (!world) world = std::getenv("PMI_SIZE");
    HAZE_REQUIRE(size() > 1 || !world || std::string(world) == "1", "started as one of ", world,
                 " processes by mpirun, but built without MPI (configure with -DHAZE_MPI=ON, which needs "
                 "libopenmpi-dev)");
  }

  // Ends the program with `code`: with several ranks, every rank, since
  // the others would wait for this one in their next collective.
  int finish(int code) {
#if defined(HAZE_WITH_MPI)
    if (mpi_ && code != 0 && size() > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    return code;
  }

 private:
  static bool launched_by_mpirun() {
    return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK");
  }

  std::unique_ptr<haze::train::Communicator> communicator_;
  bool mpi_ = false;
};

}  // namespace examples
