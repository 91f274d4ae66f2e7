#pragma once
// The one CUDA stream haze's device work runs on: every Thrust algorithm
// (through the non-blocking policy), cuBLAS, cuDNN, the caching allocator
// and the copies are queued on it in order, so a step's kernels follow one
// another without the host waiting; only a copy to the host (a round trip,
// device_counters) waits for what is queued before it. One stream for the
// process, not one per model: models built in one program share it.

#include <cuda_runtime.h>

#include "haze/backend/cuda/check.hpp"

namespace haze::backend::cuda {

inline cudaStream_t stream() {
  // Never destroyed, like the allocator: work may be queued at exit.
  static const cudaStream_t s = [] {
    cudaStream_t created = nullptr;
    HAZE_CUDA_CHECK(cudaStreamCreateWithFlags(&created, cudaStreamNonBlocking));
    return created;
  }();
  return s;
}

}  // namespace haze::backend::cuda
