#pragma once
// im2col and col2im: a convolution as a GEMM. For x [N, C, H, W], kernel
// kh x kw, stride s and zero padding p, the output is Ho x Wo with
// Ho = (H + 2p - kh)/s + 1, and
//   cols[(c, i, j), (n, ho, wo)] = x[n, c, ho s - p + i, wo s - p + j]   (0 outside)
// so the whole batch is one GEMM: Y [Cout, N Ho Wo] = W [Cout, C kh kw] cols.
// col2im is its adjoint, written as a gather over input pixels (no two
// threads write one element, so no atomics). Both run one row per call:
// fewer index divisions, contiguous writes.

#include <cstdint>

#include "haze/core/error.hpp"
#include "haze/core/macros.hpp"
#include "haze/core/tensor.hpp"

namespace haze::ops {

struct ConvGeometry {
  int64_t channels, height, width;  // input
  int64_t kernel_h, kernel_w, stride, padding;

  int64_t out_height() const { return (height + 2 * padding - kernel_h) / stride + 1; }
  int64_t out_width() const { return (width + 2 * padding - kernel_w) / stride + 1; }
  int64_t patch() const { return channels * kernel_h * kernel_w; }  // rows of cols
  bool pointwise() const { return kernel_h == 1 && kernel_w == 1 && stride == 1 && padding == 0; }  // cols = x
};

namespace detail {

struct Geometry {  // ConvGeometry with the output extents and the batch, for kernels
  int64_t C, H, W, kh, kw, s, p, Ho, Wo, N;
};

inline Geometry geometry(const ConvGeometry& g, int64_t batch) {
  return {g.channels, g.height, g.width, g.kernel_h, g.kernel_w, g.stride, g.padding, g.out_height(), g.out_width(),
          batch};
}

// std::clamp is not callable from device code without relaxed constexpr.
HAZE_HD inline int64_t clamp_index(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

// One output row ho of kernel tap (i, j) over one channel plane [H, W]:
// out[wo] = plane[ho s - p + i, wo s - p + j], 0 outside the image. With
// stride 1, positions [first, last) read the image and the rest padding.
template <class T>
HAZE_HD void im2col_line(const T* plane, const Geometry& g, int64_t i, int64_t j, int64_t ho, T* out) {
  const int64_t h = ho * g.s - g.p + i;
  if (h < 0 || h >= g.H) {
    for (int64_t wo = 0; wo < g.Wo; ++wo) out[wo] = T(0);
    return;
  }
  const T* line = plane + h * g.W;
  if (g.s == 1) {  // the common case: a shifted, contiguous run between zeros
    const int64_t first = clamp_index(g.p - j, 0, g.Wo), last = clamp_index(g.W + g.p - j, first, g.Wo);
    for (int64_t wo = 0; wo < first; ++wo) out[wo] = T(0);
    for (int64_t wo = first; wo < last; ++wo) out[wo] = line[wo - g.p + j];
    for (int64_t wo = last; wo < g.Wo; ++wo) out[wo] = T(0);
    return;
  }
  for (int64_t wo = 0; wo < g.Wo; ++wo) {
    const int64_t w = wo * g.s - g.p + j;
    out[wo] = (w >= 0 && w < g.W) ? line[w] : T(0);
  }
}

// One row of cols per call: (n, c, i, j) fixed, all Ho x Wo positions, so
// the index arithmetic is paid once per row and writes are contiguous.
template <class T>
struct Im2colRow {
  const T* x;
  T* cols;
  Geometry g;
  HAZE_HD void operator()(int64_t row_index) const {  // row_index over [C kh kw, N]
    const int64_t n = row_index % g.N, row = row_index / g.N;
    const int64_t j = row % g.kw, i = (row / g.kw) % g.kh, c = row / (g.kw * g.kh);
    const T* plane = x + (n * g.C + c) * g.H * g.W;
    T* out = cols + row_index * g.Ho * g.Wo;
    for (int64_t ho = 0; ho < g.Ho; ++ho) im2col_line(plane, g, i, j, ho, out + ho * g.Wo);
  }
};

// One input row (n, c, h) per call; each pixel gathers the cols entries
// that read it, so no two calls write one element.
template <class T>
struct Col2imRow {
  const T* cols;
  T* dx;
  Geometry g;
  HAZE_HD void operator()(int64_t row_index) const {  // row_index over [N, C, H]
    const int64_t h = row_index % g.H, c = (row_index / g.H) % g.C, n = row_index / (g.H * g.C);
    const int64_t plane = g.Ho * g.Wo;
    T* out = dx + row_index * g.W;
    for (int64_t w = 0; w < g.W; ++w) out[w] = T(0);
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t hs = h + g.p - i;  // = ho * s when this kernel row reads h
      if (hs < 0 || hs % g.s != 0 || hs / g.s >= g.Ho) continue;
      const int64_t ho = hs / g.s;
      for (int64_t j = 0; j < g.kw; ++j) {
        const T* src = cols + (((c * g.kh + i) * g.kw + j) * g.N + n) * plane + ho * g.Wo;
        if (g.s == 1) {  // the common case: a shifted, contiguous run
          const int64_t first = j - g.p > 0 ? j - g.p : 0;
          const int64_t last = j - g.p + g.Wo < g.W ? j - g.p + g.Wo : g.W;
          for (int64_t w = first; w < last; ++w) out[w] += src[w + g.p - j];
          continue;
        }
        for (int64_t w = 0; w < g.W; ++w) {
          const int64_t ws = w + g.p - j;
          if (ws < 0 || ws % g.s != 0 || ws / g.s >= g.Wo) continue;
          out[w] += src[ws / g.s];
        }
      }
    }
  }
};

}  // namespace detail

// x [N, C, H, W] -> cols [C kh kw, N Ho Wo]
template <Real T, Backend B>
void im2col(const Tensor<T, B>& x, const ConvGeometry& g, Tensor<T, B>& cols) {
  x.require_nonempty("ops::im2col");
  HAZE_REQUIRE(x.rank() == 4 && x.dim(1) == g.channels && x.dim(2) == g.height && x.dim(3) == g.width,
               "ops::im2col: input ", x.shape(), " does not match the geometry [N, ", g.channels, ", ", g.height,
               ", ", g.width, "]");
  const Shape expected{g.patch(), x.dim(0) * g.out_height() * g.out_width()};
  HAZE_REQUIRE(cols.shape() == expected, "ops::im2col: cols must be ", expected, ", got ", cols.shape());
  B::for_each_index(x.dim(0) * g.patch(), detail::Im2colRow<T>{x.data(), cols.data(), detail::geometry(g, x.dim(0))},
                    g.out_height() * g.out_width());
}

// cols [C kh kw, N Ho Wo] -> dx [N, C, H, W], summing overlapping patches.
template <Real T, Backend B>
void col2im(const Tensor<T, B>& cols, const ConvGeometry& g, Tensor<T, B>& dx) {
  cols.require_nonempty("ops::col2im");
  dx.require_nonempty("ops::col2im");
  HAZE_REQUIRE(dx.rank() == 4 && dx.dim(1) == g.channels && dx.dim(2) == g.height && dx.dim(3) == g.width,
               "ops::col2im: output ", dx.shape(), " does not match the geometry");
  const Shape expected{g.patch(), dx.dim(0) * g.out_height() * g.out_width()};
  HAZE_REQUIRE(cols.shape() == expected, "ops::col2im: cols must be ", expected, ", got ", cols.shape());
  B::for_each_index(dx.dim(0) * g.channels * g.height,
                    detail::Col2imRow<T>{cols.data(), dx.data(), detail::geometry(g, dx.dim(0))},
                    g.width * g.kernel_h * g.kernel_w);
}

}  // namespace haze::ops
