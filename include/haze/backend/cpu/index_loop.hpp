#pragma once
// The loop behind backend::Cpu::for_each_index: f(i) for i in [begin, end).
//  - It runs on a private copy of f. OpenMP's outlined loop body reaches a
//    shared f only through memory, so the compiler must reload f's pointers
//    after every store and the loop stays scalar; a copy whose address is
//    never taken keeps them in registers, and the loop vectorizes.
//  - A plain x86-64 build (simd_isa.hpp) also compiles the loop for AVX2
//    and runs that on processors that have it. Without FMA: the compiler
//    then never fuses a multiply and an add, so each element's result has
//    the same bits as the SSE2 loop's (AVX-512's target string brings FMA
//    with it, so AVX-512 processors run the AVX2 loop too).

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
#endif

template <class F>
using IndexLoop = void (*)(const F&, int64_t, int64_t);

// The loop this processor runs best.
template <class F>
IndexLoop<F> best_index_loop() {
#if defined(HAZE_SIMD_DISPATCH)
  if (cpu_isa() != SimdIsa::baseline) return &simd_avx2_without_fma::index_loop<F>;
#endif
  return &index_loop<F>;
}

}  // namespace haze::backend::detail
