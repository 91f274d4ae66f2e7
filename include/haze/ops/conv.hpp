#pragma once
// The products of a 2-D convolution (cross-correlation, as in PyTorch), with
// the weights as the matrix w [Cout, C kh kw]:
//   conv2d_forward:  y = conv(x, w) + b                     y [N, Cout, Ho, Wo]
//   conv2d_backward: dw += dL/dw,  dx = dL/dx               (the bias gradient is a plain sum of dy)
//
// Any backend: im2col of the whole batch, cols [C kh kw, N Ho Wo], and one
// GEMM each way (Y [Cout, N Ho Wo] = w cols, dw += (cols dY^T)^T,
// dx = col2im(w^T dY), with dY = dy's batch and channel axes swapped): few,
// large launches, which is what a GPU wants.
//
// This whole-batch form is also the reference the backends' own forms are
// tested against. A backend with its own (owns_convolution: the Cpu's
// direct and banded forms in backend/cpu/) is asked first.

#include "haze/core/backend_concept.hpp"
#include "haze/core/tensor.hpp"
#include "haze/ops/elementwise.hpp"
#include "haze/ops/gemm.hpp"
#include "haze/ops/im2col.hpp"
#include "haze/ops/layout.hpp"

namespace haze::ops {

namespace detail {

template <class T, class B>
void require_conv_shapes(const char* op, const Tensor<T, B>& x, const Tensor<T, B>& w, const ConvGeometry& g) {
  x.require_nonempty(op);
  w.require_nonempty(op);
  HAZE_REQUIRE(x.rank() == 4 && x.dim(1) == g.channels && x.dim(2) == g.height && x.dim(3) == g.width, op,
               ": input ", x.shape(), " does not match the geometry [N, ", g.channels, ", ", g.height, ", ",
               g.width, "]");
  HAZE_REQUIRE(w.rank() == 2 && w.dim(1) == g.patch(), op, ": weights must be [Cout, ", g.patch(), "], got ",
               w.shape());
}

template <class T, class B>
Shape conv_output_shape(const Tensor<T, B>& x, const Tensor<T, B>& w, const ConvGeometry& g) {
  return Shape{x.dim(0), w.dim(0), g.out_height(), g.out_width()};
}

// The whole-batch forms (any backend; the Cpu's for small images).
template <Real T, Backend B>
Tensor<T, B> whole_batch_columns(const Tensor<T, B>& x, const ConvGeometry& g) {
  Tensor<T, B> cols({g.patch(), x.dim(0) * g.out_height() * g.out_width()});
  if (g.pointwise()) swap_leading(x, x.dim(0), g.channels, cols);
  else im2col(x, g, cols);
  return cols;
}

template <Real T, Backend B>
void conv2d_forward_whole_batch(const Tensor<T, B>& x, const Tensor<T, B>& w, const Tensor<T, B>& b,
                                const ConvGeometry& g, Tensor<T, B>& y) {
  const int64_t n = x.dim(0), cout = w.dim(0);
  Tensor<T, B> y_channel_major({cout, n * g.out_height() * g.out_width()});
  matmul(w, whole_batch_columns(x, g), y_channel_major);
  swap_leading(y_channel_major, cout, n, y);
  add_bias(y, b);
}

template <Real T, Backend B>
void conv2d_backward_whole_batch(const Tensor<T, B>& x, const Tensor<T, B>& w, const Tensor<T, B>& dy,
                                 const ConvGeometry& g, Tensor<T, B>& dw, Tensor<T, B>& dx) {
  const int64_t n = x.dim(0), cout = w.dim(0), k = g.patch();
  Tensor<T, B> dy_channel_major({cout, n * g.out_height() * g.out_width()});
  swap_leading(dy, n, cout, dy_channel_major);
  // dw += (cols dY^T)^T: in this orientation Eigen's row-major product runs
  // its transposing pack over dY (Cout rows) rather than over cols (K rows,
  // usually several times more); that pack had been a tenth of a U-Net step.
  Tensor<T, B> dw_transposed({1, k, cout});
  Tensor<T, B> dw_transposed_matrix = dw_transposed.reshape({k, cout});
  matmul(whole_batch_columns(x, g), dy_channel_major, dw_transposed_matrix, Transpose::No, Transpose::Yes);
  Tensor<T, B> dw_step({1, cout, k});
  transpose12(dw_transposed, dw_step);
  Tensor<T, B> dw_view = dw.reshape({1, cout, k});
  axpy(T(1), dw_step, dw_view);

  Tensor<T, B> dcols({k, n * g.out_height() * g.out_width()});
  matmul(w, dy_channel_major, dcols, Transpose::Yes, Transpose::No);
  if (g.pointwise()) swap_leading(dcols, g.channels, n, dx);
  else col2im(dcols, g, dx);
}

}  // namespace detail

// y [N, Cout, Ho, Wo] = conv(x, w) + b, for x [N, C, H, W], w [Cout, C kh kw], b [Cout].
template <Real T, Backend B>
void conv2d_forward(const Tensor<T, B>& x, const Tensor<T, B>& w, const Tensor<T, B>& b, const ConvGeometry& g,
                    Tensor<T, B>& y) {
  detail::require_conv_shapes("ops::conv2d_forward", x, w, g);
  HAZE_REQUIRE(b.shape() == (Shape{w.dim(0)}), "ops::conv2d_forward: bias must be [", w.dim(0), "], got ",
               b.shape());
  HAZE_REQUIRE(y.shape() == detail::conv_output_shape(x, w, g), "ops::conv2d_forward: y must be ",
               detail::conv_output_shape(x, w, g), ", got ", y.shape());
  if constexpr (owns_convolution<B>)
    if (B::convolution::forward(x, w, b, g, y)) return;
  detail::conv2d_forward_whole_batch(x, w, b, g, y);
}

// dw [Cout, C kh kw] += dL/dw and dx [N, C, H, W] = dL/dx for the output gradient dy.
template <Real T, Backend B>
void conv2d_backward(const Tensor<T, B>& x, const Tensor<T, B>& w, const Tensor<T, B>& dy, const ConvGeometry& g,
                     Tensor<T, B>& dw, Tensor<T, B>& dx) {
  detail::require_conv_shapes("ops::conv2d_backward", x, w, g);
  HAZE_REQUIRE(dy.shape() == detail::conv_output_shape(x, w, g), "ops::conv2d_backward: dy ", dy.shape(),
               " does not match the forward output ", detail::conv_output_shape(x, w, g));
  HAZE_REQUIRE(dw.shape() == w.shape() && dx.shape() == x.shape(), "ops::conv2d_backward: dw ", dw.shape(),
               " and dx ", dx.shape(), " must match w ", w.shape(), " and x ", x.shape());
  if constexpr (owns_convolution<B>)
    if (B::convolution::backward(x, w, dy, g, dw, dx)) return;
  detail::conv2d_backward_whole_batch(x, w, dy, g, dw, dx);
}

}  // namespace haze::ops
