#pragma once
// Communicator: what data-parallel training asks of a transport. Each of
// `size()` ranks holds a replica of the model; the Trainer sums their
// gradients with sum_in_rank_order, whose result is the same bits on every
// rank and for every transport:
//
//   data[i] <- ((d_0[i] + d_1[i]) + d_2[i]) + ...     (d_r: rank r's data, in T)
//
// which is exactly what one rank computes when it adds the same gradients
// one after another (accumulation), so N ranks can equal one.
//
// Implementations: SingleRank (below; the default, no transport), LocalGroup
// (ranks as threads of one process, train/local_group.hpp: the tests' and a
// reference for the others), MpiCommunicator (processes, host memory;
// train/mpi_communicator.hpp) and NcclCommunicator (GPUs, device memory;
// train/nccl_communicator.hpp).

#include <cstdint>
#include <span>

#include "haze/core/macros.hpp"

namespace haze::train {

namespace detail {

// The addition every chunked transport does once it holds one chunk of
// every rank's data, parts = [chunk of rank 0 | chunk of rank 1 | ...]:
// summed[i] = ((parts[0][i] + parts[1][i]) + ...). MPI runs it on the host,
// NCCL on the GPU, so the MPI tests check the GPU's arithmetic too. summed
// may be parts itself (element i reads only index i of each rank's chunk).
template <class T>
struct SumChunksInRankOrder {
  T* summed;
  const T* parts;
  int64_t chunk;
  int ranks;
  HAZE_HD void operator()(int64_t i) const {
    T total = parts[i];
    for (int r = 1; r < ranks; ++r) total = total + parts[int64_t(r) * chunk + i];
    summed[i] = total;
  }
};

}  // namespace detail

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Whether the buffers are device memory (NCCL: the Device backend's
  // tensors as they are); otherwise host memory.
  virtual bool device_memory() const { return false; }
  // Every rank calls these in the same order with the same n.
  virtual void sum_in_rank_order(std::span<float> data) = 0;
  virtual void sum_in_rank_order(std::span<double> data) = 0;
  // The transport's own all-reduce (MPI_Allreduce): often faster on many
  // ranks, but it adds in an order of its choosing, so the bits may change
  // with the rank count and the transport, and N ranks no longer equal one.
  // (A transport without one sums in rank order.)
  virtual void sum_any_order(std::span<float> data) { sum_in_rank_order(data); }
  virtual void sum_any_order(std::span<double> data) { sum_in_rank_order(data); }
  // data <- rank `root`'s data.
  virtual void broadcast(std::span<float> data, int root) = 0;
  virtual void broadcast(std::span<double> data, int root) = 0;
};

// One rank: every sum is its own data.
class SingleRank final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void sum_in_rank_order(std::span<float>) override {}
  void sum_in_rank_order(std::span<double>) override {}
  void broadcast(std::span<float>, int) override {}
  void broadcast(std::span<double>, int) override {}
};

}  // namespace haze::train
