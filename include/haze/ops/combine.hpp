#pragma once
// Linear combinations of same-shaped tensors in one pass, the arithmetic of
// every diffusion update:
//   lincomb(out, a, x, b, y)            out = a x + b y
//   lincomb(out, a, x, b, y, c, z)      out = a x + b y + c z
//   lincomb_per_sample(out, a, x, b, y) out[n] = a[n] x[n] + b[n] y[n]
//   divide_per_sample(x, d)             x[n] = x[n] / d[n]
// where n indexes the leading (batch) axis and a, b are host spans with one
// coefficient per sample (each sample may sit at its own timestep).
// Coefficients arrive as double and are applied in T.

#include <span>
#include <vector>

#include "haze/core/error.hpp"
#include "haze/core/macros.hpp"
#include "haze/core/tensor.hpp"
#include "haze/ops/elementwise.hpp"

namespace haze::ops {

namespace detail {

template <class T>
struct Combine2 {
  T a, b;
  HAZE_HD T operator()(T x, T y) const { return a * x + b * y; }
};

template <class T>
struct Combine3 {
  T a, b, c;
  HAZE_HD T operator()(T x, T y, T z) const { return a * x + b * y + c * z; }
};

// out[i] = a[n] x[i] + b[n] y[i], n = i / per_sample; a and b in backend memory.
template <class T>
struct CombinePerSample {
  T* out;
  const T* x;
  const T* y;
  const T* a;
  const T* b;
  int64_t per_sample;
  HAZE_HD void operator()(int64_t i) const {
    const int64_t n = i / per_sample;
    out[i] = a[n] * x[i] + b[n] * y[i];
  }
};

template <class T>
struct DividePerSample {
  T* x;
  const T* divisors;
  int64_t per_sample;
  HAZE_HD void operator()(int64_t i) const { x[i] = x[i] / divisors[i / per_sample]; }
};

}  // namespace detail

template <Real T, Backend B>
void lincomb(Tensor<T, B>& out, double a, const Tensor<T, B>& x, double b, const Tensor<T, B>& y) {
  detail::require_same_shape("ops::lincomb", "x", x, "y", y);
  map(out, detail::Combine2<T>{static_cast<T>(a), static_cast<T>(b)}, x, y);
}

template <Real T, Backend B>
void lincomb(Tensor<T, B>& out, double a, const Tensor<T, B>& x, double b, const Tensor<T, B>& y, double c,
             const Tensor<T, B>& z) {
  detail::require_same_shape("ops::lincomb", "x", x, "y", y);
  detail::require_same_shape("ops::lincomb", "x", x, "z", z);
  map(out, detail::Combine3<T>{static_cast<T>(a), static_cast<T>(b), static_cast<T>(c)}, x, y, z);
}

template <Real T, Backend B>
void lincomb_per_sample(Tensor<T, B>& out, std::span<const double> a, const Tensor<T, B>& x,
                        std::span<const double> b, const Tensor<T, B>& y) {
  detail::require_same_shape("ops::lincomb_per_sample", "x", x, "y", y);
  detail::require_same_shape("ops::lincomb_per_sample", "x", x, "out", out);
  const int64_t batch = x.dim(0);
  HAZE_REQUIRE(static_cast<int64_t>(a.size()) == batch && static_cast<int64_t>(b.size()) == batch,
               "ops::lincomb_per_sample: ", a.size(), " and ", b.size(), " coefficients for a batch of ", batch,
               " (x is ", x.shape(), ")");
  const std::vector<T> host_a(a.begin(), a.end()), host_b(b.begin(), b.end());
  const auto coef_a = Tensor<T, B>::from_host({batch}, host_a);
  const auto coef_b = Tensor<T, B>::from_host({batch}, host_b);
  B::for_each_index(x.numel(), detail::CombinePerSample<T>{out.data(), x.data(), y.data(), coef_a.data(),
                                                           coef_b.data(), x.numel() / batch});
}

// (A division in T, not a product with 1 / d: the bits of diffusers' sample / t.)
template <Real T, Backend B>
void divide_per_sample(Tensor<T, B>& x, std::span<const double> divisors) {
  x.require_nonempty("ops::divide_per_sample");
  const int64_t batch = x.dim(0);
  HAZE_REQUIRE(static_cast<int64_t>(divisors.size()) == batch, "ops::divide_per_sample: ", divisors.size(),
               " divisors for a batch of ", batch, " (x is ", x.shape(), ")");
  const std::vector<T> host(divisors.begin(), divisors.end());
  const auto device = Tensor<T, B>::from_host({batch}, host);
  B::for_each_index(x.numel(), detail::DividePerSample<T>{x.data(), device.data(), x.numel() / batch});
}

}  // namespace haze::ops
