#pragma once
// backend::Device: the primitive set written once with Thrust algorithms and
// HAZE_HD functors over index ranges. Built two ways from these sources:
//  - nvcc, THRUST_DEVICE_SYSTEM = CUDA: runs on an NVIDIA GPU; storage from
//    CUB's caching allocator, GEMM on cuBLAS;
//  - a host compiler with -DTHRUST_DEVICE_SYSTEM=THRUST_DEVICE_SYSTEM_OMP:
//    the same algorithms run on the CPU through Thrust's OpenMP system, so the
//    device path is built and tested on machines without a GPU.
// CUDA-only pieces (CUB, cuBLAS, cuDNN, cudaMemcpy) sit behind HAZE_DEVICE_IS_CUDA,
// each with a Thrust twin. Never link translation units that include this
// header with different THRUST_DEVICE_SYSTEM values into one program.

#include <thrust/detail/config.h>

#if !defined(__CUDACC__) && (THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA)
#error "haze/backend/device.hpp needs a device system: compile with nvcc, or define THRUST_DEVICE_SYSTEM=THRUST_DEVICE_SYSTEM_OMP (the CMake target haze::device_omp does) to run it on the host"
#endif

#include <thrust/copy.h>
#include <thrust/execution_policy.h>
#include <thrust/fill.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/iterator/transform_iterator.h>
#include <thrust/iterator/transform_output_iterator.h>
#include <thrust/transform_reduce.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <string_view>

#include "haze/backend/device_counters.hpp"
#include "haze/backend/host_block_cache.hpp"
#include "haze/backend/memory_stats.hpp"
#include "haze/backend/tf32.hpp"
#include "haze/core/backend_concept.hpp"
#include "haze/core/dtype.hpp"
#include "haze/core/generator.hpp"
#include "haze/core/lane_sum.hpp"
#include "haze/core/macros.hpp"

#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
#define HAZE_DEVICE_IS_CUDA 1
#include <cub/device/device_reduce.cuh>
#include <cub/device/device_segmented_reduce.cuh>

#include "haze/backend/cuda/caching_allocator.hpp"
#include "haze/backend/cuda/cublas_gemm.hpp"
#include "haze/backend/cuda/softmax_rows.hpp"
#include "haze/backend/cuda/stream.hpp"
#if defined(HAZE_CUDNN)
#include "haze/backend/cuda/cudnn_convolution.hpp"
#endif
#else
#define HAZE_DEVICE_IS_CUDA 0
#endif

namespace haze::backend {

namespace device_detail {

struct AddAccumulators {
  HAZE_HD Accumulator operator()(Accumulator a, Accumulator b) const { return a + b; }
};

template <class T>
struct ToAccumulator {
  HAZE_HD Accumulator operator()(T v) const { return static_cast<Accumulator>(v); }
};

template <class U>
struct FromAccumulator {
  HAZE_HD U operator()(Accumulator v) const { return static_cast<U>(v); }
};

template <class T>
struct Axpy {
  T alpha;
  const T* x;
  T* y;
  HAZE_HD void operator()(int64_t i) const { y[i] += alpha * x[i]; }
};

template <class T>
struct Scale {
  T alpha;
  T* x;
  HAZE_HD void operator()(int64_t i) const { x[i] *= alpha; }
};

// Where segment s starts.
struct SegmentStart {
  int64_t inner;
  HAZE_HD int64_t operator()(int64_t s) const { return s * inner; }
};

// out[s] = the sum of segment s's terms, in lane_sum's order (the Cpu's):
// the host twin of CUB's segmented reduction.
template <class Terms, class Out>
struct SegmentSum {
  Terms terms;
  int64_t inner;
  Out out;
  HAZE_HD void operator()(int64_t s) const {
    const Terms row = terms + s * inner;
    *(out + s) = haze::detail::lane_sum([row](int64_t j) { return Accumulator(row[j]); }, inner);
  }
};

// The term f(x[i], m) that flat index i contributes, m being its mid index.
template <class T, class F>
struct SegmentTerm {
  const T* x;
  int64_t mid;
  int64_t inner;
  F f;
  HAZE_HD Accumulator operator()(int64_t i) const { return f(x[i], (i / inner) % mid); }
};

// out[m] = sum over o of partial[o, m] + beta out[m].
template <class U>
struct SumOverOuter {
  const Accumulator* partial;
  int64_t outer;
  int64_t mid;
  U beta;
  U* out;
  HAZE_HD void operator()(int64_t m) const {
    Accumulator acc = 0;
    for (int64_t o = 0; o < outer; ++o) acc += partial[o * mid + m];
    out[m] = beta == U(0) ? static_cast<U>(acc) : static_cast<U>(acc + static_cast<Accumulator>(beta) * out[m]);
  }
};

// One output element of a row-major batched GEMM, as a dot product: the
// Thrust twin of cuBLAS, used when the device system is not CUDA.
template <class T>
struct GemmEntry {
  bool ta, tb;
  int64_t M, N, K;
  T alpha;
  const T* A;
  int64_t lda, stride_a;
  const T* B;
  int64_t ldb, stride_b;
  T beta;
  T* C;
  int64_t ldc, stride_c;

  HAZE_HD void operator()(int64_t index) const {
    const int64_t b = index / (M * N);
    const int64_t i = (index / N) % M;
    const int64_t j = index % N;
    const T* a = A + b * stride_a;
    const T* bm = B + b * stride_b;
    Accumulator dot = 0;
    for (int64_t k = 0; k < K; ++k) {
      const T a_ik = ta ? a[k * lda + i] : a[i * lda + k];
      const T b_kj = tb ? bm[j * ldb + k] : bm[k * ldb + j];
      dot += static_cast<Accumulator>(a_ik) * static_cast<Accumulator>(b_kj);
    }
    T& c = C[b * stride_c + i * ldc + j];
    const T scaled = alpha * static_cast<T>(dot);
    c = beta == T(0) ? scaled : beta * c + scaled;  // beta == 0 never reads C
  }
};

}  // namespace device_detail

struct Device {
  static constexpr std::string_view name = HAZE_DEVICE_IS_CUDA ? "device(cuda)" : "device(omp)";
  static constexpr bool is_cuda = HAZE_DEVICE_IS_CUDA;
#if HAZE_DEVICE_IS_CUDA
  // Softmax rows a warp each (see owns_softmax); the OpenMP build runs
  // ops/softmax.hpp's row functors, their twin.
  using softmax = cuda::WarpSoftmax;
#endif
#if HAZE_DEVICE_IS_CUDA && defined(HAZE_CUDNN)
  // Convolutions on cuDNN (see owns_convolution); without it, and in the
  // OpenMP build that tests it on the host, ops/conv.hpp's im2col + GEMM.
  using convolution = cuda::CudnnConvolution;
#endif

  // Execution policy for every Thrust call. On CUDA: queued on haze's
  // stream without waiting for it (par_nosync: a Thrust call returns once
  // its kernels are launched), temporaries from the caching allocator.
  static auto policy() {
#if HAZE_DEVICE_IS_CUDA
    return thrust::cuda::par_nosync(cuda::thrust_allocator()).on(cuda::stream());
#else
    return thrust::device;
#endif
  }

  // ---- memory ------------------------------------------------------------
  // Freed blocks are cached for reuse: CUB's caching allocator on CUDA, and
  // its twin on the OpenMP system, a HostBlockCache (so both count the same
  // fresh allocations).
#if !HAZE_DEVICE_IS_CUDA
  static HostBlockCache& block_cache() { return host_block_cache<Device>(); }
#endif
  template <class T>
  static T* allocate(int64_t n) {
    const size_t bytes = static_cast<size_t>(n) * sizeof(T);
    bool fresh = false;
#if HAZE_DEVICE_IS_CUDA
    void* p = cuda::device_allocate(bytes, fresh);
#else
    void* p = block_cache().allocate(bytes, fresh);
#endif
    memory_stats<Device>().record_allocation(static_cast<int64_t>(bytes), fresh);
    return static_cast<T*>(p);
  }
  template <class T>
  static void deallocate(T* p, int64_t n) {
    const size_t bytes = static_cast<size_t>(n) * sizeof(T);
    memory_stats<Device>().record_release(static_cast<int64_t>(bytes));
#if HAZE_DEVICE_IS_CUDA
    cuda::device_release(p);
#else
    block_cache().release(p, bytes);
#endif
  }
  template <class T>
  static void copy_from_host(T* dst, const T* src, int64_t n) {
    device_counters().upload();
    transfer(dst, src, static_cast<size_t>(n) * sizeof(T), /*to_device=*/true);
  }
  template <class T>
  static void copy_to_host(T* dst, const T* src, int64_t n) {
    device_counters().round_trip();
    transfer(dst, src, static_cast<size_t>(n) * sizeof(T), /*to_device=*/false);
  }
  // Host <-> device bytes; on the OpenMP system device memory is host
  // memory. On CUDA both are queued on haze's stream: an upload from
  // pageable memory returns once the bytes are staged (the source may be
  // freed), and only a download waits, for the work queued before it.
  static void transfer(void* dst, const void* src, size_t bytes, bool to_device) {
#if HAZE_DEVICE_IS_CUDA
    HAZE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost,
                                    cuda::stream()));
    if (!to_device) HAZE_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
#else
    (void)to_device;
    std::memcpy(dst, src, bytes);
#endif
  }
  template <class T>
  static void copy(T* dst, const T* src, int64_t n) {
    device_counters().launch();
    thrust::copy_n(policy(), src, n, dst);
  }
  template <class T>
  static void fill(T* p, int64_t n, T value) {
    device_counters().launch();
    thrust::fill_n(policy(), p, n, value);
  }

  // ---- parallel loop -----------------------------------------------------
  // work_per_index is the Cpu backend's threading hint; Thrust needs none.
  template <class F>
  static void for_each_index(int64_t n, F f, int64_t work_per_index = 1) {
    (void)work_per_index;
    device_counters().launch();
    thrust::for_each_n(policy(), thrust::counting_iterator<int64_t>(0), n, f);
  }

  // ---- BLAS-1 ------------------------------------------------------------
  template <class T>
  static void axpy(int64_t n, T alpha, const T* x, T* y) {
    for_each_index(n, device_detail::Axpy<T>{alpha, x, y});
  }
  template <class T>
  static void scale(int64_t n, T alpha, T* x) {
    for_each_index(n, device_detail::Scale<T>{alpha, x});
  }

  // ---- reductions --------------------------------------------------------
  template <class T>
  static Accumulator sum(const T* x, int64_t n) {
    device_counters().launch();
    device_counters().round_trip();  // the value comes back to the host
    return thrust::transform_reduce(policy(), x, x + n, device_detail::ToAccumulator<T>{}, Accumulator(0),
                                    device_detail::AddAccumulators{});
  }

  // Same contract as Cpu::sum_axes (U: T, or double). The outer*mid
  // contiguous rows of `inner` elements are summed as segments; with one
  // outer row and beta = 0 those sums are the output (one launch), else
  // they go to a reused scratch buffer that a second pass sums over outer.
  template <class T, class F, class U>
  static void sum_axes(const T* x, int64_t outer, int64_t mid, int64_t inner, F f, U beta, U* out) {
    const int64_t segments = outer * mid;
    const auto terms = thrust::make_transform_iterator(thrust::counting_iterator<int64_t>(0),
                                                       device_detail::SegmentTerm<T, F>{x, mid, inner, f});
    if (outer == 1 && beta == U(0)) {
      segment_sums(terms, segments, inner,
                   thrust::make_transform_output_iterator(out, device_detail::FromAccumulator<U>{}));
      return;
    }
    auto* partial = static_cast<Accumulator*>(scratch<0>(segments * int64_t(sizeof(Accumulator))));
    segment_sums(terms, segments, inner, partial);
    for_each_index(mid, device_detail::SumOverOuter<U>{partial, outer, mid, beta, out});
  }

  // out[s] = sum of terms[s inner, (s + 1) inner) for s < segments, in
  // one launch. On CUDA, CUB's reductions, queued without a host wait
  // (thrust::reduce_by_key would read the segment count back); on the
  // OpenMP system, a segment per index.
  template <class Terms, class Out>
  static void segment_sums(Terms terms, int64_t segments, int64_t inner, Out out) {
#if HAZE_DEVICE_IS_CUDA
    device_counters().launch();
    const auto starts = thrust::make_transform_iterator(thrust::counting_iterator<int64_t>(0),
                                                        device_detail::SegmentStart{inner});
    size_t bytes = 0;
    const auto reduce = [&](void* temp) {
      if (segments == 1)  // one segment: a grid-wide reduction, not one block
        return cub::DeviceReduce::Reduce(temp, bytes, terms, out, inner, device_detail::AddAccumulators{},
                                         Accumulator(0), cuda::stream());
      return cub::DeviceSegmentedReduce::Reduce(temp, bytes, terms, out, segments, starts, starts + 1,
                                                device_detail::AddAccumulators{}, Accumulator(0), cuda::stream());
    };
    HAZE_CUDA_CHECK(reduce(nullptr));
    HAZE_CUDA_CHECK(reduce(scratch<1>(int64_t(bytes))));
#else
    for_each_index(segments, device_detail::SegmentSum<Terms, Out>{terms, inner, out});
#endif
  }

  // At least `bytes` of device memory, reused from call to call (one host
  // thread queues a model's work and the device runs it in order); grows,
  // never shrinks. Slot 0: sum_axes' partial sums; slot 1: CUB's temporary
  // storage, so a reduction allocates nothing after warm-up.
  template <int Slot>
  static void* scratch(int64_t bytes) {
    static char* buffer = nullptr;
    static int64_t capacity = 0;
    if (bytes > capacity) {
      if (buffer) deallocate(buffer, capacity);
      capacity = std::max<int64_t>({bytes, 2 * capacity, 256});
      buffer = allocate<char>(capacity);
    }
    return buffer;
  }

  // ---- GEMM (same contract as Cpu::gemm) ---------------------------------
  template <class T>
  static void gemm(Transpose trans_a, Transpose trans_b, int64_t M, int64_t N, int64_t K, T alpha,
                   const T* A, int64_t lda, int64_t stride_a, const T* B, int64_t ldb, int64_t stride_b,
                   T beta, T* C, int64_t ldc, int64_t stride_c, int64_t batch) {
#if HAZE_DEVICE_IS_CUDA
    device_counters().launch();
    cuda::gemm_strided_batched(trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C,
                               ldc, stride_c, batch);
#else
    for_each_index(batch * M * N,
                   device_detail::GemmEntry<T>{trans_a == Transpose::Yes, trans_b == Transpose::Yes, M, N, K, alpha,
                                               A, lda, stride_a, B, ldb, stride_b, beta, C, ldc, stride_c});
#endif
  }

  // ---- random ------------------------------------------------------------
  template <class T>
  static void randn(T* out, int64_t n, uint64_t seed, uint64_t offset) {
    for_each_index(philox::blocks_for(n), philox::NormalFill<T>{out, n, seed, offset});
  }
};

}  // namespace haze::backend
