#pragma once
// The vector instruction sets the Cpu's register-tiled kernels are built
// for, and which one runs.
//  - A build whose flags already name a vector ISA (-march=native,
//    -march=x86-64-v3, -mavx2, aarch64's NEON) runs that ISA's kernels: the
//    flags are the user's choice.
//  - A plain x86-64 build (SSE2 only, the compiler's default) also compiles
//    the kernels for AVX2+FMA and for AVX-512 and picks the best the
//    processor supports when first asked (`cpu_isa()`), so a program built
//    with no -march flag still runs the wide kernels.
//  - HAZE_CPU_ISA=sse2|avx2|avx512 in the environment caps the choice (to
//    compare ISAs on one machine); an ISA the processor lacks is never run.
// The kernels themselves are templates defined once and compiled per ISA
// between HAZE_SIMD_TARGET_BEGIN and HAZE_SIMD_TARGET_END.

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace haze::backend {

enum class SimdIsa { baseline, avx2, avx512 };

// Registers and width of one ISA's vectors, which size the kernels' tiles.
struct SimdShape {
  int bytes;      // one vector register
  int registers;  // vector registers the compiler may allocate
  bool fma;       // fused multiply-add (one register less per product otherwise)
  bool lane_fma;  // FMA by a lane of a vector register (NEON): scalars are held in registers, not broadcast
};

// What the compiler targets with the build's own flags.
inline constexpr SimdShape baseline_simd =
#if defined(__AVX512F__)
    {64, 32, true, false};
#elif defined(__AVX2__) && defined(__FMA__)
    {32, 16, true, false};
#elif defined(__AVX__)
    {32, 16, false, false};
#elif defined(__aarch64__)
    {16, 32, true, true};
#else
    {16, 16, false, false};
#endif

#if defined(__GNUC__) && !defined(__CUDACC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(__AVX2__)
#define HAZE_SIMD_DISPATCH 1  // the AVX2 and AVX-512 kernels are compiled too
#endif

inline constexpr SimdShape simd_shape(SimdIsa isa) {
  switch (isa) {
    case SimdIsa::avx2: return {32, 16, true, false};
    case SimdIsa::avx512: return {64, 32, true, false};
    default: return baseline_simd;
  }
}

inline constexpr std::string_view simd_isa_name(SimdIsa isa) {
  switch (isa) {
    case SimdIsa::avx2: return "avx2";
    case SimdIsa::avx512: return "avx512";
    default:
#if defined(__AVX512F__)
      return "avx512 (built in)";
#elif defined(__AVX2__)
      return "avx2 (built in)";
#elif defined(__aarch64__)
      return "neon";
#else
      return "sse2";
#endif
  }
}

// Whether this build holds `isa`'s kernels and the processor can run them.
inline bool simd_isa_available(SimdIsa isa) {
  if (isa == SimdIsa::baseline) return true;
#if defined(HAZE_SIMD_DISPATCH)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return isa == SimdIsa::avx2 ? avx2 : avx2 && __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

// The best available ISA at or below HAZE_CPU_ISA's cap.
inline SimdIsa detect_cpu_isa() {
  SimdIsa cap = SimdIsa::avx512;
  if (const char* env = std::getenv("HAZE_CPU_ISA")) {
    const std::string_view want = env;
    if (want == "sse2" || want == "baseline") cap = SimdIsa::baseline;
    else if (want == "avx2") cap = SimdIsa::avx2;
    else if (want != "avx512")
      std::fprintf(stderr, "haze: HAZE_CPU_ISA=%s ignored: it must be sse2, avx2 or avx512\n", env);
  }
  for (SimdIsa isa : {SimdIsa::avx512, SimdIsa::avx2})
    if (int(isa) <= int(cap) && simd_isa_available(isa)) return isa;
  return SimdIsa::baseline;
}

inline SimdIsa cpu_isa() {
  static const SimdIsa isa = detect_cpu_isa();
  return isa;
}

}  // namespace haze::backend

// Every function defined between these two is compiled for `features`
// (a GCC/Clang target string such as "avx2,fma"), templates included.
#define HAZE_SIMD_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define HAZE_SIMD_TARGET_BEGIN(features) \
  HAZE_SIMD_PRAGMA(clang attribute push(__attribute__((target(features))), apply_to = function))
#define HAZE_SIMD_TARGET_END _Pragma("clang attribute pop")
#else
#define HAZE_SIMD_TARGET_BEGIN(features) _Pragma("GCC push_options") HAZE_SIMD_PRAGMA(GCC target(features))
#define HAZE_SIMD_TARGET_END _Pragma("GCC pop_options")
#endif
