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
// (unique_id()) and the others get it by any channel (MPI_Bcast, a file).
//
// Not yet: ncclCommAbort on a timeout (a rank that dies can leave the
// others waiting in a collective until the job is killed).

#include <nccl.h>

#include <string>

#include "haze/backend/cuda/stream.hpp"
#include "haze/backend/device.hpp"
#include "haze/core/error.hpp"
#include "haze/core/tensor.hpp"
#include "haze/train/communicator.hpp"

namespace haze::train {

namespace detail {

template <class T>
struct SumChunksInRankOrder {  // summed[i] = ((parts[0][i] + parts[1][i]) + ...)
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
