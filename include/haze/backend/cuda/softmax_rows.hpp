#pragma once
// Softmax over rows on CUDA, a row per warp: the 32 lanes read a row
// together (coalesced), each keeps a partial max and sum over every 32nd
// element, and shuffles combine the partials. Eight warps to a block. Same
// contract as ops::softmax_rows and its backward; their per-row functors
// (ops/softmax.hpp) are the twin the OpenMP build tests. The sums' order
// differs from the twin's, so results agree to rounding, not to the bit.

#include <cuda_runtime.h>

#include <cstdint>

#include "haze/backend/cuda/check.hpp"
#include "haze/backend/cuda/stream.hpp"
#include "haze/backend/device_counters.hpp"
#include "haze/core/dtype.hpp"
#include "haze/core/fast_exp.hpp"

namespace haze::backend::cuda {

namespace softmax_detail {

constexpr int warp = 32;
constexpr int warps_per_block = 8;
constexpr unsigned all_lanes = 0xffffffffu;

template <class V>
__device__ V warp_max(V v) {
  for (int offset = warp / 2; offset > 0; offset /= 2) {
    const V other = __shfl_xor_sync(all_lanes, v, offset);
    v = other > v ? other : v;
  }
  return v;
}

template <class V>
__device__ V warp_sum(V v) {
  for (int offset = warp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(all_lanes, v, offset);
  return v;
}

// The warp's row, or -1 past the last (the whole warp leaves together, so
// every shuffle has all 32 lanes).
__device__ inline int64_t warp_row(int64_t rows) {
  const int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / warp;
  return row < rows ? row : -1;
}

template <class T>
__global__ void forward(T* x, int64_t rows, int64_t cols) {
  const int64_t row = warp_row(rows);
  if (row < 0) return;
  const int lane = int(threadIdx.x % warp);
  T* r = x + row * cols;
  T top = r[0];
  for (int64_t j = lane; j < cols; j += warp) top = r[j] > top ? r[j] : top;
  top = warp_max(top);
  Accumulator sum = 0;
  for (int64_t j = lane; j < cols; j += warp) {
    const T e = fast_exp(r[j] - top);
    r[j] = e;
    sum += e;
  }
  const T inv = T(1 / warp_sum(sum));
  for (int64_t j = lane; j < cols; j += warp) r[j] *= inv;
}

template <class T>
__global__ void backward(const T* p, T* d, int64_t rows, int64_t cols) {
  const int64_t row = warp_row(rows);
  if (row < 0) return;
  const int lane = int(threadIdx.x % warp);
  const T* pr = p + row * cols;
  T* dr = d + row * cols;
  Accumulator dot = 0;
  for (int64_t j = lane; j < cols; j += warp) dot += Accumulator(dr[j]) * Accumulator(pr[j]);
  const T total = T(warp_sum(dot));
  for (int64_t j = lane; j < cols; j += warp) dr[j] = pr[j] * (dr[j] - total);
}

inline unsigned blocks_for(int64_t rows) {
  return unsigned((rows + warps_per_block - 1) / warps_per_block);
}

}  // namespace softmax_detail

struct WarpSoftmax {
  template <class T>
  static void forward(T* x, int64_t rows, int64_t cols) {
    using namespace softmax_detail;
    if (rows == 0) return;
    device_counters().launch();
    softmax_detail::forward<<<blocks_for(rows), warp * warps_per_block, 0, stream()>>>(x, rows, cols);
    HAZE_CUDA_CHECK(cudaGetLastError());
  }
  template <class T>
  static void backward(const T* p, T* d, int64_t rows, int64_t cols) {
    using namespace softmax_detail;
    if (rows == 0) return;
    device_counters().launch();
    softmax_detail::backward<<<blocks_for(rows), warp * warps_per_block, 0, stream()>>>(p, d, rows, cols);
    HAZE_CUDA_CHECK(cudaGetLastError());
  }
};

}  // namespace haze::backend::cuda
