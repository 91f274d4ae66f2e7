#pragma once
// exp for the hot elementwise kernels (SiLU, softmax): branch-free and built
// from +, *, a float-to-int conversion and a bit cast, so a compiler turns a
// loop of it into SIMD code, where a call to <cmath>'s exp keeps the loop
// scalar. Float: Cody-Waite reduction x = k ln2 + r, |r| <= ln2/2, a degree-7
// polynomial for exp(r) (Cephes' minimax coefficients), then 2^k from the
// exponent bits. Within 2 ulp of std::exp (tested); inputs are clamped to
// [-87, 88], so the result stays a finite normal float, and NaN propagates.
// Double (the gradient checks) uses std::exp unchanged.

#include <cmath>
#include <cstdint>
#include <cstring>

#include "haze/core/macros.hpp"

namespace haze {

HAZE_HD inline float fast_exp(float x) {
  // Comparisons rather than fminf/fmaxf so NaN passes through.
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  // Round x / ln2 to an integer with the 1.5 * 2^23 shifter (exact for
  // |x / ln2| < 2^22, round-to-nearest).
  constexpr float shifter = 12582912.0f;
  const float k = (x * 1.44269504088896341f + shifter) - shifter;
  // ln2 in two parts; k * 0.693359375 is exact for |k| < 2^12.
  float r = x - k * 0.693359375f;
  r = r + k * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float exp_r = (p * r) * r + r + 1.0f;
  // 2^k from its exponent bits, k in [-126, 127]; a NaN k would make the
  // conversion undefined, so it converts 0 instead (exp_r is NaN already).
  const int32_t bits = (static_cast<int32_t>(k == k ? k : 0.0f) + 127) << 23;
#if defined(__CUDA_ARCH__)
  return exp_r * __int_as_float(bits);
#else
  float two_to_k;
  std::memcpy(&two_to_k, &bits, sizeof two_to_k);
  return exp_r * two_to_k;
#endif
}

HAZE_HD inline double fast_exp(double x) { return exp(x); }

}  // namespace haze
