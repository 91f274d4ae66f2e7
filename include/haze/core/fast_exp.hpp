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

namespace detail {
HAZE_HD inline uint32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits;
#endif
}
HAZE_HD inline float float_of_bits(uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
#endif
}
}  // namespace detail

// Everything is integer or float arithmetic with no branch on a float
// compare: GCC will not if-convert a float compare whose branches feed
// arithmetic that may trap (-ftrapping-math, the default), and a loop with
// control flow stays scalar.
HAZE_HD inline float fast_exp(float x) {
  // Clamp to [-87, 88] on the magnitude's bits (ordered like the values),
  // leaving NaN as it is.
  const uint32_t bits_in = detail::float_bits(x);
  const uint32_t magnitude = bits_in & 0x7fffffffu, sign = bits_in & 0x80000000u;
  const uint32_t bound = sign ? 0x42ae0000u : 0x42b00000u;  // 87.0f, 88.0f
  const uint32_t keep = magnitude > 0x7f800000u ? 0xffffffffu : 0u;  // NaN
  const uint32_t clamped = (magnitude < bound ? magnitude : bound) & ~keep;
  x = detail::float_of_bits(sign | clamped | (magnitude & keep));
  // Round x / ln2 to an integer k with the 1.5 * 2^23 shifter (exact for
  // |x / ln2| < 2^22, round-to-nearest); the shifted sum holds k in its
  // low mantissa bits.
  constexpr float shifter = 12582912.0f;
  const float shifted = x * 1.44269504088896341f + shifter;
  const float k = shifted - shifter;
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
  // 2^k from its exponent bits, k in [-126, 127]; for a NaN x these bits
  // are meaningless, but exp_r is NaN already.
  const uint32_t k_bits = detail::float_bits(shifted) - 0x4b400000u;  // k, two's complement
  return exp_r * detail::float_of_bits((k_bits + 127u) << 23);
}

HAZE_HD inline double fast_exp(double x) { return exp(x); }

}  // namespace haze
