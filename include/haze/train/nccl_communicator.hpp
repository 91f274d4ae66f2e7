#pragma once
// NcclCommunicator: data-parallel ranks on GPUs, one rank per GPU, over
// NCCL (the CUDA build with HAZE_NCCL). Its buffers are device memory (the
// Trainer hands it the gradient arena as it is), and everything is queued on
// haze's CUDA stream, so the sum follows the backward pass without the host
// waiting. The rank-order sum is written out as MpiCommunicator's is:
//
//   the n values, padded to `size` equal chunks, are exchanged so that rank
//   c holds chunk c of every rank (grouped ncclSend / ncclRecv); a kernel
//   adds them in rank order; ncclAllGather gives every rank every chunk.
//
// so the bits are MpiCommunicator's, LocalGroup's and one rank's with
// accumulation. sum_any_order is ncclAllReduce (a ring or tree of NCCL's
// choosing). Each rank needs the same ncclUniqueId: rank 0 makes one
// (unique_id()) and the others get it over MPI (nccl_id_over_mpi.hpp) or
// through a shared file (unique_id_through_file).
//
// Not yet: ncclCommAbort on a timeout. The collectives are queued without
// the host waiting, so a rank that dies leaves the others blocked in their
// next stream synchronisation until the launcher kills the job; a watchdog
// thread polling ncclCommGetAsyncError is the way to add it.

#include <nccl.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "haze/backend/cuda/stream.hpp"
#include "haze/backend/device.hpp"
#include "haze/core/error.hpp"
#include "haze/core/tensor.hpp"
#include "haze/train/communicator.hpp"
#include "haze/train/rendezvous_file.hpp"

namespace haze::train {

namespace detail {

inline void nccl_check(ncclResult_t result, const char* call) {
  HAZE_REQUIRE(result == ncclSuccess, "NcclCommunicator: ", call, " failed: ", ncclGetErrorString(result));
}

}  // namespace detail

class NcclCommunicator final : public Communicator {
 public:
  // A new id, on rank 0, for every rank to pass to the constructor.
  static ncclUniqueId unique_id() {
    ncclUniqueId id;
    detail::nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    return id;
  }

  // The same id on every rank without MPI: rank 0 makes it and writes it
  // to `path` (which must not exist yet); the others wait up to `timeout`
  // for it there (rendezvous_file.hpp).
  static ncclUniqueId unique_id_through_file(const std::filesystem::path& path, int rank,
                                             std::chrono::milliseconds timeout) {
    ncclUniqueId id;
    if (rank == 0) {
      id = unique_id();
      publish_rendezvous(path, std::as_bytes(std::span(id.internal)));
    } else {
      const std::vector<std::byte> bytes = wait_for_rendezvous(path, sizeof id.internal, timeout);
      std::memcpy(id.internal, bytes.data(), sizeof id.internal);
    }
    return id;
  }

  // Rank `rank` of `size`, on the current CUDA device (cudaSetDevice first).
  NcclCommunicator(const ncclUniqueId& id, int rank, int size) : rank_(rank), size_(size) {
    HAZE_REQUIRE(size >= 1 && rank >= 0 && rank < size, "NcclCommunicator: rank ", rank, " of ", size);
    detail::nccl_check(ncclCommInitRank(&comm_, size, id, rank), "ncclCommInitRank");
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;
  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool device_memory() const override { return true; }
  void sum_in_rank_order(std::span<float> data) override { ordered(data, ncclFloat32); }
  void sum_in_rank_order(std::span<double> data) override { ordered(data, ncclFloat64); }
  void sum_any_order(std::span<float> data) override { all_reduce(data, ncclFloat32); }
  void sum_any_order(std::span<double> data) override { all_reduce(data, ncclFloat64); }
  void broadcast(std::span<float> data, int root) override { bcast(data, ncclFloat32, root); }
  void broadcast(std::span<double> data, int root) override { bcast(data, ncclFloat64, root); }

 private:
  template <class T>
  void ordered(std::span<T> data, ncclDataType_t type) {
    if (data.empty()) return;  // (one rank runs the whole exchange too: gpu-check tests it so)
    using Device = backend::Device;
    const int64_t n = int64_t(data.size()), chunk = (n + size_ - 1) / size_, padded = chunk * size_;
    Tensor<T, Device> mine = Tensor<T, Device>::zeros({padded}), parts({padded}), summed({chunk});
    Device::copy(mine.data(), data.data(), n);
    const cudaStream_t stream = backend::cuda::stream();
    detail::nccl_check(ncclGroupStart(), "ncclGroupStart");
    for (int r = 0; r < size_; ++r) {
      detail::nccl_check(ncclSend(mine.data() + int64_t(r) * chunk, size_t(chunk), type, r, comm_, stream), "ncclSend");
      detail::nccl_check(ncclRecv(parts.data() + int64_t(r) * chunk, size_t(chunk), type, r, comm_, stream),
                         "ncclRecv");
    }
    detail::nccl_check(ncclGroupEnd(), "ncclGroupEnd");
    Device::for_each_index(chunk, detail::SumChunksInRankOrder<T>{summed.data(), parts.data(), chunk, size_});
    detail::nccl_check(ncclAllGather(summed.data(), mine.data(), size_t(chunk), type, comm_, stream), "ncclAllGather");
    Device::copy(data.data(), mine.data(), n);
  }

  template <class T>
  void all_reduce(std::span<T> data, ncclDataType_t type) {
    if (data.empty()) return;
    detail::nccl_check(ncclAllReduce(data.data(), data.data(), data.size(), type, ncclSum, comm_,
                                     backend::cuda::stream()),
                       "ncclAllReduce");
  }

  template <class T>
  void bcast(std::span<T> data, ncclDataType_t type, int root) {
    HAZE_REQUIRE(root >= 0 && root < size_, "NcclCommunicator::broadcast: root ", root, " outside [0, ", size_, ")");
    if (data.empty()) return;
    detail::nccl_check(ncclBroadcast(data.data(), data.data(), data.size(), type, root, comm_, backend::cuda::stream()),
                       "ncclBroadcast");
  }

  ncclComm_t comm_ = nullptr;
  int rank_, size_;
};

}  // namespace haze::train
