#pragma once
// A packed, register-tiled matrix product for x86 with AVX2 or AVX-512,
// whether the build's flags name the ISA or it is chosen at run time
// (simd_isa.hpp): Eigen's kernels are fixed by the compiler flags, so a
// plain x86-64 build would multiply with SSE2; and on Zen 3 the U-Net's
// forward (small preset, batch 16) ran 1.35x faster with this product in a
// default build than with Eigen's in a -march=native one. SSE2-only and ARM
// builds use Eigen (backend::Cpu::gemm).
//
// The usual blocking (Goto and van de Geijn; BLIS): panels of B (KC x NR)
// and of A (MC x KC) are copied into contiguous, zero-padded buffers
// sized for the caches, and an MR x NR tile of C stays in registers while
// it sums a panel. Every element of C sums its K products in the same
// order (k blocks of KC in turn, each in k order), whichever thread or
// tile computes it, so results do not depend on the thread count.

#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "haze/backend/cpu/simd_isa.hpp"

namespace haze::backend::detail {

template <class T>
struct GemmKernel {
  SimdIsa isa;
  int64_t mr, nr;  // the register tile
  void (*tile)(int64_t kc, const T* a, const T* b, T alpha, T beta, T* c, int64_t ldc, int64_t rows, int64_t cols);
};

#if defined(__GNUC__) && !defined(__CUDACC__) && defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__)
#define HAZE_PACKED_GEMM_BASELINE 1  // the build's own flags are wide enough
namespace simd_baseline {
inline constexpr SimdIsa isa = SimdIsa::baseline;
inline constexpr SimdShape shape = baseline_simd;
#include "haze/backend/cpu/gemm_tiles.inc"
}  // namespace simd_baseline
#endif

#define HAZE_SIMD_TILES "haze/backend/cpu/gemm_tiles.inc"
#include "haze/backend/cpu/simd_targets.inc"
#undef HAZE_SIMD_TILES

// The tile for `isa`, or null where this build multiplies with Eigen.
template <class T>
const GemmKernel<T>* packed_gemm_kernel(SimdIsa isa) {
#if defined(HAZE_SIMD_DISPATCH)
  if (isa == SimdIsa::avx512) return &simd_avx512::gemm_kernel<T>;
  if (isa == SimdIsa::avx2) return &simd_avx2::gemm_kernel<T>;
#endif
#if defined(HAZE_PACKED_GEMM_BASELINE)
  if (isa == SimdIsa::baseline) return &simd_baseline::gemm_kernel<T>;
#endif
  (void)isa;
  return nullptr;
}

// Cache blocks: KC x NR of B (16 KiB of floats for AVX2) stays in L1 while
// MC x KC of A (about 150 KiB) stays in L2.
inline constexpr int64_t gemm_kc = 256, gemm_mc_tiles = 24, gemm_nc = 3072;

// Lanes [l0, l0 + extent) x k [k0, k0 + kc) of a row-major source with
// leading dimension ld as panels [kc][width], zero past extent. Element
// (lane l, k) is src[k ld + l] when the lanes run along memory, else
// src[l ld + k]. Either way the source is read along memory and the small,
// cache-resident panel written with a stride: reading A down a column
// instead was 6% of a training step.
template <class T>
void pack_panels(const T* src, int64_t ld, bool lanes_along_memory, int64_t l0, int64_t extent, int64_t k0,
                 int64_t kc, int64_t width, T* packed) {
  for (int64_t p = 0; p < extent; p += width, packed += kc * width) {
    const int64_t lanes = std::min(width, extent - p);
    for (int64_t k = 0; k < kc; ++k) std::fill(packed + k * width + lanes, packed + (k + 1) * width, T(0));
    if (lanes_along_memory) {
      for (int64_t k = 0; k < kc; ++k) std::copy_n(src + (k0 + k) * ld + l0 + p, lanes, packed + k * width);
      continue;
    }
    for (int64_t l = 0; l < lanes; ++l) {
      const T* line = src + (l0 + p + l) * ld + k0;
      for (int64_t k = 0; k < kc; ++k) packed[k * width + l] = line[k];
    }
  }
}

// Rows [i0, i0 + mc) x k [k0, k0 + kc) of op(A) as panels [kc][mr], zero past mc.
template <class T>
void pack_gemm_a(const T* a, int64_t lda, bool ta, int64_t i0, int64_t mc, int64_t k0, int64_t kc, int64_t mr,
                 T* packed) {
  pack_panels(a, lda, ta, i0, mc, k0, kc, mr, packed);
}

// k [k0, k0 + kc) x columns [j0, j0 + nc) of op(B) as panels [kc][nr], zero past nc.
template <class T>
void pack_gemm_b(const T* b, int64_t ldb, bool tb, int64_t k0, int64_t kc, int64_t j0, int64_t nc, int64_t nr,
                 T* packed) {
  pack_panels(b, ldb, !tb, j0, nc, k0, kc, nr, packed);
}

// C[rows, cols] block of C = beta C + alpha op(A) op(B), on this thread.
template <class T>
void packed_gemm_block(const GemmKernel<T>& kernel, bool ta, bool tb, int64_t i_begin, int64_t i_end,
                       int64_t j_begin, int64_t j_end, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                       int64_t ldb, T beta, T* C, int64_t ldc) {
  const int64_t mr = kernel.mr, nr = kernel.nr, mc_max = mr * gemm_mc_tiles;
  static thread_local std::vector<T> a_buffer, b_buffer;
  a_buffer.resize(size_t(mc_max * gemm_kc));
  b_buffer.resize(size_t(std::min(gemm_nc, (j_end - j_begin + nr - 1) / nr * nr) * gemm_kc));
  for (int64_t j0 = j_begin; j0 < j_end; j0 += gemm_nc) {
    const int64_t nc = std::min(gemm_nc, j_end - j0);
    for (int64_t k0 = 0; k0 < K; k0 += gemm_kc) {
      const int64_t kc = std::min(gemm_kc, K - k0);
      const T beta_here = k0 == 0 ? beta : T(1);  // later k blocks add onto the first
      pack_gemm_b(B, ldb, tb, k0, kc, j0, nc, nr, b_buffer.data());
      for (int64_t i0 = i_begin; i0 < i_end; i0 += mc_max) {
        const int64_t mc = std::min(mc_max, i_end - i0);
        pack_gemm_a(A, lda, ta, i0, mc, k0, kc, mr, a_buffer.data());
        for (int64_t jp = 0; jp < nc; jp += nr)
          for (int64_t ip = 0; ip < mc; ip += mr)
            kernel.tile(kc, a_buffer.data() + ip * kc, b_buffer.data() + jp * kc, alpha, beta_here,
                        C + (i0 + ip) * ldc + j0 + jp, ldc, std::min(mr, mc - ip), std::min(nr, nc - jp));
      }
    }
  }
}

// C [M, N] = beta C + alpha op(A) op(B), row-major, split between threads
// by columns (or, for narrow products, rows) when not already inside a
// parallel region. K = 0 scales C by beta.
template <class T>
void packed_gemm(const GemmKernel<T>& kernel, bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha,
                 const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
    return;
  }
  int64_t threads = 1;
#if defined(_OPENMP)
  if (!omp_in_parallel() && M * N * K >= (int64_t(1) << 18)) threads = omp_get_max_threads();
#endif
  const int64_t nr = kernel.nr, mr = kernel.mr;
  const bool by_columns = N >= 2 * nr * threads || M < 2 * mr * threads;
  const int64_t extent = by_columns ? N : M, unit = by_columns ? nr : mr;
  const int64_t units = (extent + unit - 1) / unit, chunk = (units + threads - 1) / threads * unit;
  const int64_t tasks = (extent + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) num_threads(threads) if (tasks > 1)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t begin = task * chunk, end = std::min(extent, begin + chunk);
    if (by_columns) packed_gemm_block(kernel, ta, tb, 0, M, begin, end, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else packed_gemm_block(kernel, ta, tb, begin, end, 0, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
}

}  // namespace haze::backend::detail
