#pragma once
// NCCL's unique id shared over MPI: under mpirun or srun, rank 0 of `comm`
// makes it and MPI_Bcast hands it to the others. Collective over `comm`.
//
//   MPI_Init(&argc, &argv);
//   int rank = 0, size = 1;
//   MPI_Comm_rank(MPI_COMM_WORLD, &rank);
//   MPI_Comm_size(MPI_COMM_WORLD, &size);
//   cudaSetDevice(local_rank);  // e.g. $OMPI_COMM_WORLD_LOCAL_RANK or $SLURM_LOCALID
//   haze::train::NcclCommunicator ranks(haze::train::nccl_id_over_mpi(MPI_COMM_WORLD), rank, size);

#include <mpi.h>

#include "haze/core/error.hpp"
#include "haze/train/nccl_communicator.hpp"

namespace haze::train {

inline ncclUniqueId nccl_id_over_mpi(MPI_Comm comm) {
  int rank = 0;
  HAZE_REQUIRE(MPI_Comm_rank(comm, &rank) == MPI_SUCCESS, "nccl_id_over_mpi: MPI_Comm_rank failed");
  ncclUniqueId id{};
  if (rank == 0) id = NcclCommunicator::unique_id();
  HAZE_REQUIRE(MPI_Bcast(id.internal, int(sizeof id.internal), MPI_BYTE, 0, comm) == MPI_SUCCESS,
               "nccl_id_over_mpi: MPI_Bcast of the id failed on rank ", rank);
  return id;
}

}  // namespace haze::train
