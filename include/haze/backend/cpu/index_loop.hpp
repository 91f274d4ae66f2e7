#pragma once
// The loop behind backend::Cpu::for_each_index: f(i) for i in [begin, end).
//  - It runs on a private copy of f. OpenMP's outlined loop body reaches a
//    shared f only through memory, so the compiler must reload f's pointers
//    after every store and the loop stays scalar; a copy whose address is
//    never taken keeps them in registers, and the loop vectorizes.
//  - A plain x86-64 build (simd_isa.hpp) also compiles the loop for AVX2,
//    and with GCC for AVX-512, and runs the widest the processor has. In
//    neither does the compiler fuse a multiply and an add, so each
//    element's result has the same bits as the SSE2 loop's: the AVX2 loop
//    targets AVX2 without FMA; AVX-512 brings FMA with it, so its loop
//    turns contraction off (GCC's optimize pragma; clang fuses in its front
//    end, where a pragma here cannot reach the functor's body, so a clang
//    build runs the AVX2 loop on AVX-512 processors). On Zen 5, AVX-512
//    halved SiLU's passes: 3% of a training step.

#include <cstdint>

#include "haze/backend/cpu/simd_isa.hpp"

namespace haze::backend::detail {

template <class F>
void index_loop(const F& f, int64_t begin, int64_t end) {
  const F local = f;
  for (int64_t i = begin; i < end; ++i) local(i);
}

#if defined(HAZE_SIMD_DISPATCH)
HAZE_SIMD_TARGET_BEGIN("avx2")
namespace simd_avx2_without_fma {
template <class F>
void index_loop(const F& f, int64_t begin, int64_t end) {
  const F local = f;
  for (int64_t i = begin; i < end; ++i) local(i);
}
}  // namespace simd_avx2_without_fma
HAZE_SIMD_TARGET_END
#if !defined(__clang__)
#define HAZE_AVX512_INDEX_LOOP 1
#pragma GCC push_options
#pragma GCC target("avx2,avx512f")
#pragma GCC optimize("fp-contract=off")
namespace simd_avx512_without_fma {
template <class F>
void index_loop(const F& f, int64_t begin, int64_t end) {
  const F local = f;
  for (int64_t i = begin; i < end; ++i) local(i);
}
}  // namespace simd_avx512_without_fma
#pragma GCC pop_options
#endif
#endif

template <class F>
using IndexLoop = void (*)(const F&, int64_t, int64_t);

// The loop this processor runs best.
template <class F>
IndexLoop<F> best_index_loop() {
#if defined(HAZE_SIMD_DISPATCH)
#if defined(HAZE_AVX512_INDEX_LOOP)
  if (cpu_isa() == SimdIsa::avx512) return &simd_avx512_without_fma::index_loop<F>;
#endif
  if (cpu_isa() != SimdIsa::baseline) return &simd_avx2_without_fma::index_loop<F>;
#endif
  return &index_loop<F>;
}

}  // namespace haze::backend::detail
