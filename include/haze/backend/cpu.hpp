#pragma once
// backend::Cpu: the reference backend. Plain loops and Eigen maps over host
// memory, OpenMP-parallel where the work is large enough to pay for it. It
// shares no code with backend::Device beyond the functors both run, so the
// parity tests between them compare two independent implementations.

// In an nvcc translation unit Eigen stays host code: the Cpu backend never
// runs on the GPU, and Eigen's own CUDA support only adds warnings.
#if defined(__CUDACC__) && !defined(EIGEN_NO_CUDA)
#define EIGEN_NO_CUDA
#endif
#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <string_view>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "haze/core/backend_concept.hpp"
#include "haze/core/dtype.hpp"
#include "haze/core/generator.hpp"
#include "haze/backend/cpu/index_loop.hpp"
#include "haze/backend/cpu/packed_gemm.hpp"
#include "haze/backend/host_block_cache.hpp"
#include "haze/backend/memory_stats.hpp"

namespace haze::backend {

namespace cpu_conv {
struct Convolution;  // backend/cpu/convolution.hpp, included below
}

struct Cpu {
  static constexpr std::string_view name = "cpu";
  static constexpr bool row_calls = true;  // see prefers_row_calls
  using convolution = cpu_conv::Convolution;  // see owns_convolution

  // Loops shorter than this run on one thread: below it the OpenMP fork/join
  // (a few microseconds) costs more than the loop.
  static constexpr int64_t parallel_threshold = 1 << 15;

  // ---- memory ------------------------------------------------------------
  // Freed blocks are kept for reuse (up to 4 GiB); block_cache().trim()
  // returns them to the system.
  static HostBlockCache& block_cache() { return host_block_cache<Cpu>(); }

  template <class T>
  static T* allocate(int64_t n) {
    const size_t bytes = static_cast<size_t>(n) * sizeof(T);
    bool fresh = false;
    void* p = block_cache().allocate(bytes, fresh);
    memory_stats<Cpu>().record_allocation(static_cast<int64_t>(bytes), fresh);
    return static_cast<T*>(p);
  }
  template <class T>
  static void deallocate(T* p, int64_t n) {
    const size_t bytes = static_cast<size_t>(n) * sizeof(T);
    memory_stats<Cpu>().record_release(static_cast<int64_t>(bytes));
    block_cache().release(p, bytes);
  }
  template <class T>
  static void copy_from_host(T* dst, const T* src, int64_t n) {
    std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(T));
  }
  template <class T>
  static void copy_to_host(T* dst, const T* src, int64_t n) {
    std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(T));
  }
  template <class T>
  static void copy(T* dst, const T* src, int64_t n) {
    in_ranges(n, [=](int64_t begin, int64_t end) {
      std::memcpy(dst + begin, src + begin, static_cast<size_t>(end - begin) * sizeof(T));
    });
  }
  template <class T>
  static void fill(T* p, int64_t n, T value) {
    in_ranges(n, [=](int64_t begin, int64_t end) { std::fill(p + begin, p + end, value); });
  }

  // ---- parallel loop -----------------------------------------------------
  // Threads a parallel loop may use, and the calling thread's index in its
  // team (for per-thread workspaces).
  static int64_t max_threads() {
#if defined(_OPENMP)
    return omp_get_max_threads();
#else
    return 1;
#endif
  }
  static int64_t max_threads_here() {  // the threads of the current parallel region
#if defined(_OPENMP)
    return omp_get_num_threads();
#else
    return 1;
#endif
  }
  static int64_t thread_index() {
#if defined(_OPENMP)
    return omp_get_thread_num();
#else
    return 0;
#endif
  }

  // work_per_index: roughly how many elements one call touches (a row
  // kernel passes its row length), so short loops of long rows still run
  // on every thread.
  // Each thread takes one contiguous share of [0, n) (see cpu/index_loop.hpp).
  template <class F>
  static void for_each_index(int64_t n, F f, int64_t work_per_index = 1) {
    const detail::IndexLoop<F> loop = detail::best_index_loop<F>();
    in_shares(n, n > 1 && n * work_per_index >= parallel_threshold,
              [&f, loop](int64_t begin, int64_t end) { loop(f, begin, end); });
  }

  // body(begin, end) over one contiguous share of [0, n) per thread: for
  // passes over memory long enough to pay for the fork (a serial pass there
  // leaves the other threads waiting).
  template <class F>
  static void in_ranges(int64_t n, F body) {
    in_shares(n, n >= 2 * parallel_threshold, body);
  }

  // body(begin, end) on each thread's share of [0, n) (empty shares too),
  // in parallel when `parallel`; on a private copy of body, which vectorizes
  // where the shared one would not (see cpu/index_loop.hpp).
  template <class F>
  static void in_shares(int64_t n, bool parallel, const F& body) {
#pragma omp parallel if (parallel)
    {
      const int64_t threads = max_threads_here(), t = thread_index();
      const F local = body;
      local(n * t / threads, n * (t + 1) / threads);
    }
  }

  // body(first, last) on one contiguous share of a batch [0, n) per team:
  // min(n, threads) teams of threads / teams threads each, every share run
  // as a program of its team's threads (one each, unless the batch is
  // smaller than the thread count): one fork and join for a whole network
  // instead of one per op on every thread. For items computed
  // independently of each other by ops whose bits do not depend on the
  // thread count, the result is body(0, n)'s. A team that would get no
  // item gets no call; the first exception is rethrown.
  template <class F>
  static void in_batch_shares(int64_t n, const F& body) {
    std::exception_ptr error;
    [[maybe_unused]] const int64_t threads = max_threads(), teams = std::clamp<int64_t>(n, 1, threads), team_threads = threads / teams;
#if defined(_OPENMP)
    // Teams of several threads need nested regions active; the setting is
    // global, so it is put back afterwards.
    const int levels = omp_get_max_active_levels();
    const bool nest = teams > 1 && team_threads > 1 && omp_get_active_level() == 0 && levels < 2;
    if (nest) omp_set_max_active_levels(2);
#endif
#pragma omp parallel num_threads(int(teams)) if (teams > 1)
    {
      const int64_t count = max_threads_here(), t = thread_index();
      const int64_t first = n * t / count, last = n * (t + 1) / count;
#if defined(_OPENMP)
      omp_set_num_threads(int(team_threads));  // this implicit task's own setting; the caller's stays
#endif
      try {
        if (first < last) body(first, last);
      } catch (...) {
#pragma omp critical(haze_batch_shares)
        if (!error) error = std::current_exception();
      }
    }
#if defined(_OPENMP)
    if (nest) omp_set_max_active_levels(levels);
#endif
    if (error) std::rethrow_exception(error);
  }

  // ---- BLAS-1 ------------------------------------------------------------
  template <class T>
  using Vec = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
  template <class T>
  using ConstVec = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

  // Plain loops rather than Eigen maps: Eigen computes an unaligned head
  // with scalar code, which the compiler may fuse into FMAs while the
  // packets do not, so a share's starting address would change the bits.
  template <class T>
  static void axpy(int64_t n, T alpha, const T* x, T* y) {  // y += alpha x
    in_ranges(n, [=](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) y[i] += alpha * x[i];
    });
  }
  template <class T>
  static void scale(int64_t n, T alpha, T* x) {  // x *= alpha
    in_ranges(n, [=](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) x[i] *= alpha;
    });
  }

  // ---- reductions --------------------------------------------------------
  template <class T>
  static Accumulator sum(const T* x, int64_t n) {
    return ConstVec<T>(x, n).template cast<Accumulator>().sum();
  }

  // Views x as [outer, mid, inner] and writes
  //   out[m] = sum over (o, i) of f(x[o, m, i], m)  +  beta out[m],
  // accumulated in double and stored as U (T, or double for a sum kept at
  // full precision); beta == 0 never reads out. Covers per-row sums (outer = 1),
  // per-column sums (inner = 1), per-channel sums of NCHW (N, C, H*W) and
  // per-group statistics (1, N*G, C/G*H*W).
  template <class T, class F, class U>
  static void sum_axes(const T* x, int64_t outer, int64_t mid, int64_t inner, F f, U beta, U* out) {
    if (inner == 1 && outer > 1) {
      column_sums(x, outer, mid, f, beta, out);
      return;
    }
    const auto body = [&](int64_t m) {
      // Eight independent partial sums: one chain would wait on the add
      // latency at every element; eight let the adds overlap and vectorise.
      constexpr int lanes = 8;
      Accumulator part[lanes] = {};
      for (int64_t o = 0; o < outer; ++o) {
        const T* row = x + (o * mid + m) * inner;
        int64_t i = 0;
        for (; i + lanes <= inner; i += lanes)
          for (int l = 0; l < lanes; ++l) part[l] += f(row[i + l], m);
        for (; i < inner; ++i) part[0] += f(row[i], m);
      }
      const Accumulator acc = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
      out[m] = beta == U(0) ? static_cast<U>(acc) : static_cast<U>(acc + static_cast<Accumulator>(beta) * out[m]);
    };
#pragma omp parallel for schedule(static) if (outer * mid * inner >= parallel_threshold && mid > 1)
    for (int64_t m = 0; m < mid; ++m) body(m);
  }

  // Per-column sums of x [outer, mid] (a Linear layer's bias gradient): a
  // block of columns at a time, every row read contiguously, each column's
  // sum taken over the rows in order.
  template <class T, class F, class U>
  static void column_sums(const T* x, int64_t outer, int64_t mid, F f, U beta, U* out) {
    constexpr int64_t block = 64;
    const int64_t blocks = (mid + block - 1) / block;
#pragma omp parallel for schedule(static) if (outer * mid >= parallel_threshold && blocks > 1)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t m0 = b * block, width = std::min(block, mid - m0);
      Accumulator acc[block] = {};
      for (int64_t o = 0; o < outer; ++o) {
        const T* row = x + o * mid + m0;
        for (int64_t m = 0; m < width; ++m) acc[m] += f(row[m], m0 + m);
      }
      for (int64_t m = 0; m < width; ++m)
        out[m0 + m] = beta == U(0) ? static_cast<U>(acc[m])
                                   : static_cast<U>(acc[m] + static_cast<Accumulator>(beta) * out[m0 + m]);
    }
  }

  // ---- GEMM --------------------------------------------------------------
  // Eigen takes its thread count from omp_get_max_threads() unless told by
  // Eigen::setNbThreads, which is the user's global; this holds the calling
  // task's count at 1 for the scope instead.
  struct OneThreadForEigen {
#if defined(_OPENMP)
    int saved = omp_get_max_threads();
    OneThreadForEigen() { omp_set_num_threads(1); }
    ~OneThreadForEigen() { omp_set_num_threads(saved); }
#else
    OneThreadForEigen() {}
#endif
    OneThreadForEigen(const OneThreadForEigen&) = delete;
    OneThreadForEigen& operator=(const OneThreadForEigen&) = delete;
  };

  // Whether every product gives each element of C the same bits whatever
  // the product's extent, as the packed GEMM does (a fixed KC, one tile
  // order). Eigen's blocking follows M, N and K, so a row's result may
  // change with the rows beside it; batch shares need this to hold.
  static bool gemm_extent_exact() {
#if defined(HAZE_SIMD_DISPATCH) || defined(HAZE_PACKED_GEMM_BASELINE)
    return detail::packed_gemm_kernel<float>(cpu_isa()) != nullptr &&
           detail::packed_gemm_kernel<double>(cpu_isa()) != nullptr;
#else
    return false;
#endif
  }

  // Row-major C[b] = alpha op(A[b]) op(B[b]) + beta C[b] for b < batch, with
  // element strides between batch members (stride 0 broadcasts an operand).
  // op(A) is M x K, op(B) is K x N; lda/ldb/ldc are row pitches as stored.
  // beta == 0 never reads C, so C may hold garbage.
  template <class T>
  static void gemm(Transpose trans_a, Transpose trans_b, int64_t M, int64_t N, int64_t K, T alpha,
                   const T* A, int64_t lda, int64_t stride_a, const T* Bm, int64_t ldb, int64_t stride_b,
                   T beta, T* C, int64_t ldc, int64_t stride_c, int64_t batch) {
    using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using ConstMap = Eigen::Map<const Matrix, Eigen::Unaligned, Eigen::OuterStride<>>;
    using Map = Eigen::Map<Matrix, Eigen::Unaligned, Eigen::OuterStride<>>;
    const bool ta = trans_a == Transpose::Yes, tb = trans_b == Transpose::Yes;
#if defined(HAZE_SIMD_DISPATCH) || defined(HAZE_PACKED_GEMM_BASELINE)
    if (const auto* kernel = detail::packed_gemm_kernel<T>(cpu_isa())) {  // see packed_gemm.hpp
#pragma omp parallel for schedule(static) if (batch > 1 && batch >= max_threads() && batch * M * N * K >= parallel_threshold)
      for (int64_t b = 0; b < batch; ++b)
        detail::packed_gemm(*kernel, ta, tb, M, N, K, alpha, A + b * stride_a, lda, Bm + b * stride_b, ldb, beta,
                            C + b * stride_c, ldc);
      return;
    }
#endif
    // A batch of at least one product per thread (attention's per-image
    // products) runs one product per thread. Eigen's own threads are off:
    // it blocks a product for the threads it may use, so its bits changed
    // with the thread count.
#pragma omp parallel for schedule(static) if (batch > 1 && batch >= max_threads() && batch * M * N * K >= parallel_threshold)
    for (int64_t b = 0; b < batch; ++b) {
      const OneThreadForEigen eigen_alone;
      ConstMap a(A + b * stride_a, ta ? K : M, ta ? M : K, Eigen::OuterStride<>(lda));
      ConstMap bm(Bm + b * stride_b, tb ? N : K, tb ? K : N, Eigen::OuterStride<>(ldb));
      Map c(C + b * stride_c, M, N, Eigen::OuterStride<>(ldc));
      if (beta == T(0)) c.setZero();
      else if (beta != T(1)) c *= beta;
      if (ta && tb) c.noalias() += alpha * a.transpose() * bm.transpose();
      else if (ta) c.noalias() += alpha * a.transpose() * bm;
      else if (tb) c.noalias() += alpha * a * bm.transpose();
      else c.noalias() += alpha * a * bm;
    }
  }

  // ---- random ------------------------------------------------------------
  template <class T>
  static void randn(T* out, int64_t n, uint64_t seed, uint64_t offset) {
    const philox::NormalFill<T> fill_block{out, n, seed, offset};
    const int64_t blocks = philox::blocks_for(n);
#pragma omp parallel for schedule(static) if (n >= parallel_threshold)
    for (int64_t b = 0; b < blocks; ++b) fill_block(b);
  }
};

}  // namespace haze::backend

// Last, since it is written against the complete Cpu: whoever can name the
// Cpu gets its convolution too.
#include "haze/backend/cpu/convolution.hpp"
