#pragma once
// Elementwise ops over tensors of one shape, for any backend. map() applies a
// HAZE_HD functor to matching elements of its inputs; the named ops are maps
// or BLAS-1 primitives. Outputs may alias inputs (every element is read
// before it is written, at the same index).

#include <cstddef>
#include <utility>

#include "haze/core/error.hpp"
#include "haze/core/macros.hpp"
#include "haze/core/tensor.hpp"

namespace haze::ops {

namespace detail {

template <class T, class F, size_t N>
struct MapKernel {
  T* out;
  const T* in[N > 0 ? N : 1];
  F f;

  template <size_t... Is>
  HAZE_HD T apply(int64_t i, std::index_sequence<Is...>) const {
    return f(in[Is][i]...);
  }
  HAZE_HD void operator()(int64_t i) const { out[i] = apply(i, std::make_index_sequence<N>{}); }
};

template <class T, class F>
struct IndexMapKernel {
  T* out;
  F f;
  HAZE_HD void operator()(int64_t i) const { out[i] = f(i); }
};

template <class T, class B>
void require_same_shape(const char* op, const char* name_a, const Tensor<T, B>& a, const char* name_b,
                        const Tensor<T, B>& b) {
  a.require_nonempty(op);
  b.require_nonempty(op);
  HAZE_REQUIRE(a.shape() == b.shape(), op, ": shape mismatch: ", name_a, " is ", a.shape(), " but ", name_b,
               " is ", b.shape());
}

}  // namespace detail

struct Plus {
  template <class T>
  HAZE_HD T operator()(T a, T b) const { return a + b; }
};
struct Minus {
  template <class T>
  HAZE_HD T operator()(T a, T b) const { return a - b; }
};
struct Times {
  template <class T>
  HAZE_HD T operator()(T a, T b) const { return a * b; }
};
template <class T>
struct DivideBy {
  T divisor;
  HAZE_HD T operator()(T a) const { return a / divisor; }
};

// out[i] = f(ins[i]...) for every i; every input has out's shape.
template <Real T, Backend B, class F, class... In>
void map(Tensor<T, B>& out, F f, const In&... ins) {
  out.require_nonempty("ops::map (output)");
  int position = 0;
  (
      [&] {
        ins.require_nonempty("ops::map (input)");
        HAZE_REQUIRE(ins.shape() == out.shape(), "ops::map: input ", position, " has shape ", ins.shape(),
                     " but the output has shape ", out.shape());
        ++position;
      }(),
      ...);
  B::for_each_index(out.numel(), detail::MapKernel<T, F, sizeof...(In)>{out.data(), {ins.data()...}, f});
}

// out[i] = f(i) for every flat index i.
template <Real T, Backend B, class F>
void map_index(Tensor<T, B>& out, F f) {
  out.require_nonempty("ops::map_index");
  B::for_each_index(out.numel(), detail::IndexMapKernel<T, F>{out.data(), f});
}

template <Real T, Backend B>
void add(const Tensor<T, B>& a, const Tensor<T, B>& b, Tensor<T, B>& out) {
  detail::require_same_shape("ops::add", "a", a, "b", b);
  map(out, Plus{}, a, b);
}

template <Real T, Backend B>
void sub(const Tensor<T, B>& a, const Tensor<T, B>& b, Tensor<T, B>& out) {
  detail::require_same_shape("ops::sub", "a", a, "b", b);
  map(out, Minus{}, a, b);
}

template <Real T, Backend B>
void mul(const Tensor<T, B>& a, const Tensor<T, B>& b, Tensor<T, B>& out) {
  detail::require_same_shape("ops::mul", "a", a, "b", b);
  map(out, Times{}, a, b);
}

// y += alpha x
template <Real T, Backend B>
void axpy(T alpha, const Tensor<T, B>& x, Tensor<T, B>& y) {
  detail::require_same_shape("ops::axpy", "x", x, "y", y);
  B::axpy(x.numel(), alpha, x.data(), y.data());
}

// x *= alpha
template <Real T, Backend B>
void scale(Tensor<T, B>& x, T alpha) {
  x.require_nonempty("ops::scale");
  B::scale(x.numel(), alpha, x.data());
}

// x /= alpha (a division, not a product with 1 / alpha: diffusers' output
// scale factors divide, and so the bits agree)
template <Real T, Backend B>
void divide(Tensor<T, B>& x, T alpha) {
  map(x, DivideBy<T>{alpha}, x);
}

template <Element T, Backend B>
void fill(Tensor<T, B>& x, T value) {
  x.require_nonempty("ops::fill");
  B::fill(x.data(), x.numel(), value);
}

// dst = src (same shape, same backend; see Tensor::to for other backends).
template <Element T, Backend B>
void copy(const Tensor<T, B>& src, Tensor<T, B>& dst) {
  detail::require_same_shape("ops::copy", "src", src, "dst", dst);
  B::copy(dst.data(), src.data(), src.numel());
}

}  // namespace haze::ops
