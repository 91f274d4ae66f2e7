#pragma once
// Logarithm and sine/cosine built only from IEEE-754 correctly rounded
// operations (+, -, *, /, sqrt) with no fused multiply-add. glibc's log and
// CUDA's log may differ in the last bit; these give the same bits on every
// compiler and processor, which is what makes randn() bit-identical between
// the Cpu and Device backends. Accuracy: a few ulp (tested against <cmath>).

#include <cstdint>
#include <cstring>

#include "haze/core/macros.hpp"

// Keep the host compiler from contracting a*b+c into an FMA (GCC does so with
// -mfma and its default -ffp-contract=fast); device code uses the explicit
// round-to-nearest intrinsics, which nvcc never fuses.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDA_ARCH__)
#if defined(__CUDACC__)
#pragma nv_diag_suppress 1675  // nvcc's front end does not know the GCC pragma; gcc still sees it
#endif
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#define HAZE_EXACT_MATH_PUSHED
#endif

namespace haze::exact {

HAZE_HD inline double mul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

HAZE_HD inline double add(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}

HAZE_HD inline double sub(double a, double b) { return add(a, -b); }

// Split x = m * 2^e with m in [1, 2) by reading the IEEE bits (x > 0, normal).
HAZE_HD inline double split_exponent(double x, int& e) {
#if defined(__CUDA_ARCH__)
  uint64_t bits = static_cast<uint64_t>(__double_as_longlong(x));
#else
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
#endif
  e = static_cast<int>((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(bits));
#else
  double m;
  std::memcpy(&m, &bits, sizeof m);
  return m;
#endif
}

// Natural log of a positive normal double.
// log x = e ln2 + log m, with m moved into [sqrt(1/2), sqrt(2)) and
// log m = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.1716, summed as an odd series.
HAZE_HD inline double log(double x) {
  int e;
  double m = split_exponent(x, e);
  if (m > 1.4142135623730951) {
    m = mul(m, 0.5);
    e += 1;
  }
  const double s = (m - 1.0) / (m + 1.0);  // m-1 is exact (Sterbenz)
  const double s2 = mul(s, s);
  // 2 * sum_{k>=0} s^(2k+1) / (2k+1); s^2 < 0.0295 so 14 terms reach 1e-22.
  double series = 1.0 / 27.0;
  for (int k = 12; k >= 0; --k) series = add(1.0 / (2 * k + 1), mul(s2, series));
  const double log_m = mul(mul(2.0, s), series);
  // ln 2 split in a part exact when multiplied by |e| < 2^11 and a remainder.
  constexpr double ln2_hi = 6.93147180369123816490e-01;
  constexpr double ln2_lo = 1.90821492927058770002e-10;
  const double ed = static_cast<double>(e);
  return add(mul(ed, ln2_hi), add(mul(ed, ln2_lo), log_m));
}

// sin(2 pi u) and cos(2 pi u) for u in [0, 1). Working in turns keeps the
// argument reduction exact: u - k/4 is exact for the dyadic u we feed it.
HAZE_HD inline void sincos_turns(double u, double& sin_out, double& cos_out) {
  const int k = static_cast<int>(add(mul(u, 4.0), 0.5));  // nearest quarter turn, 0..4
  const double r = sub(u, mul(static_cast<double>(k), 0.25));  // [-1/8, 1/8]
  constexpr double two_pi = 6.283185307179586476925;
  const double x = mul(two_pi, r);  // |x| <= pi/4
  const double x2 = mul(x, x);
  // Taylor series to x^17 / x^18: the first dropped term is below 2e-18.
  double sin_poly = 0.0, cos_poly = 0.0;
  for (int n = 17; n >= 1; n -= 2) {  // sin: x - x^3/3! + ...
    sin_poly = sub(1.0, mul(mul(x2, sin_poly), 1.0 / ((n + 1.0) * (n + 2.0))));
  }
  sin_poly = mul(x, sin_poly);
  for (int n = 18; n >= 2; n -= 2) {  // cos: 1 - x^2/2! + ...
    cos_poly = sub(1.0, mul(mul(x2, cos_poly), 1.0 / ((n - 1.0) * n)));
  }
  switch (k & 3) {
    case 0: sin_out = sin_poly; cos_out = cos_poly; break;
    case 1: sin_out = cos_poly; cos_out = -sin_poly; break;
    case 2: sin_out = -sin_poly; cos_out = -cos_poly; break;
    default: sin_out = -cos_poly; cos_out = sin_poly; break;
  }
}

}  // namespace haze::exact

#if defined(HAZE_EXACT_MATH_PUSHED)
#pragma GCC pop_options
#undef HAZE_EXACT_MATH_PUSHED
#endif
