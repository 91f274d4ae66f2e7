#pragma once
// Moving data between layouts, and broadcasting adds:
//   transpose12   [N, A, B] -> [N, B, A]            (channels <-> tokens for attention)
//   swap_leading  [A, B, P] -> [B, A, P]            (batch-major <-> channel-major for conv GEMMs)
//   concat_channels / split_channels                 (U-Net skip connections)
//   upsample_nearest2x and its adjoint               (Upsample)
//   pad_bottom_right and its adjoint                 (Downsample with diffusers' downsample_padding 0)
//   add_bias       y[.., c] += b[c] over the last axis, or per channel of NCHW
//   add_per_sample_channel  y[n, c, h, w] += v[n, c] (the time embedding in a ResBlock)
//   scale_shift_per_sample_channel and its backward
//                  y[n, c] = x[n, c] (1 + v[n, c]) + v[n, C + c] (a ResBlock's "scale_shift" time embedding)

#include <cstdint>

#include "haze/core/error.hpp"
#include "haze/core/macros.hpp"
#include "haze/core/tensor.hpp"

namespace haze::ops {

namespace detail {

template <class T>
struct Transpose12 {
  const T* x;
  T* y;
  int64_t A, Bn;
  HAZE_HD void operator()(int64_t index) const {  // index over y [N, B, A]
    const int64_t a = index % A, b = (index / A) % Bn, n = index / (A * Bn);
    y[index] = x[(n * A + a) * Bn + b];
  }
};

template <class T>
struct SwapLeading {  // one contiguous run of P per call
  const T* x;
  T* y;
  int64_t A, Bn, P;
  HAZE_HD void operator()(int64_t run) const {  // run over y's [B, A]
    const int64_t a = run % A, b = run / A;
    const T* src = x + (a * Bn + b) * P;
    T* dst = y + run * P;
    for (int64_t p = 0; p < P; ++p) dst[p] = src[p];
  }
};

template <class T>
struct ConcatChannels {  // one channel plane per call
  const T* first;
  const T* second;
  T* out;
  int64_t c1, c2, plane;
  HAZE_HD void operator()(int64_t run) const {  // run over out [N, c1 + c2]
    const int64_t c = run % (c1 + c2), n = run / (c1 + c2);
    const T* src = c < c1 ? first + (n * c1 + c) * plane : second + (n * c2 + c - c1) * plane;
    T* dst = out + run * plane;
    for (int64_t p = 0; p < plane; ++p) dst[p] = src[p];
  }
};

template <class T>
struct SplitChannels {  // the adjoint of ConcatChannels, one channel plane of the part per call
  const T* in;
  T* part;
  int64_t offset, count, total, plane;
  HAZE_HD void operator()(int64_t run) const {  // run over part [N, count]
    const int64_t c = run % count, n = run / count;
    const T* src = in + (n * total + offset + c) * plane;
    T* dst = part + run * plane;
    for (int64_t p = 0; p < plane; ++p) dst[p] = src[p];
  }
};

// The Cpu's form: a tile of up to 16 rows of x per call, written as 16-long
// runs of y's rows, so reads and writes both stay within a few cache lines.
template <class T>
struct Transpose12Tile {
  static constexpr int64_t size = 16;
  const T* x;
  T* y;
  int64_t A, Bn;
  HAZE_HD void operator()(int64_t tile) const {  // tile over [N, ceil(A / size)]
    const int64_t tiles = (A + size - 1) / size, n = tile / tiles, a0 = (tile % tiles) * size;
    const int64_t a1 = a0 + size < A ? a0 + size : A;
    const T* in = x + n * A * Bn;
    T* out = y + n * A * Bn;
    for (int64_t b0 = 0; b0 < Bn; b0 += size)
      for (int64_t b = b0; b < (b0 + size < Bn ? b0 + size : Bn); ++b)
        for (int64_t a = a0; a < a1; ++a) out[b * A + a] = in[a * Bn + b];
  }
};

template <class T>
struct Nearest2x {
  const T* x;
  T* y;
  int64_t H, W;  // input extents
  HAZE_HD void operator()(int64_t index) const {  // index over y [N, C, 2H, 2W]
    const int64_t w = index % (2 * W), h = (index / (2 * W)) % (2 * H), nc = index / (4 * H * W);
    y[index] = x[(nc * H + h / 2) * W + w / 2];
  }
};

template <class T>
struct Nearest2xAdjoint {
  const T* dy;
  T* dx;
  int64_t H, W;
  HAZE_HD void operator()(int64_t index) const {  // index over dx [N, C, H, W]
    const int64_t w = index % W, h = (index / W) % H, nc = index / (H * W);
    const T* row0 = dy + (nc * 2 * H + 2 * h) * 2 * W + 2 * w;
    dx[index] = row0[0] + row0[1] + row0[2 * W] + row0[2 * W + 1];
  }
};

// The Cpu's forms: one row of y (two output rows from one input row) or of dx per call.
template <class T>
struct Nearest2xRows {
  const T* x;
  T* y;
  int64_t W;
  HAZE_HD void operator()(int64_t row) const {  // row over x's rows [N, C, H]
    const T* in = x + row * W;
    T* out = y + row * 4 * W;
    for (int64_t w = 0; w < 2 * W; ++w) out[w] = in[w / 2];
    for (int64_t w = 0; w < 2 * W; ++w) out[2 * W + w] = out[w];
  }
};

template <class T>
struct Nearest2xAdjointRow {
  const T* dy;
  T* dx;
  int64_t W;
  HAZE_HD void operator()(int64_t row) const {  // row over dx's rows [N, C, H]
    const T* top = dy + row * 4 * W;
    const T* bottom = top + 2 * W;
    T* out = dx + row * W;
    for (int64_t w = 0; w < W; ++w) out[w] = top[2 * w] + top[2 * w + 1] + bottom[2 * w] + bottom[2 * w + 1];
  }
};

template <class T>
struct AddBroadcast {  // y[i] += v[(i / inner) % count], one run of `inner` per call
  T* y;
  const T* v;
  int64_t inner, count;
  HAZE_HD void operator()(int64_t run) const {
    const T add = v[run % count];
    for (int64_t i = run * inner; i < (run + 1) * inner; ++i) y[i] += add;
  }
};

template <class T>
struct AddRowBias {  // y[i] += b[i % cols]
  T* y;
  const T* b;
  int64_t cols;
  HAZE_HD void operator()(int64_t i) const { y[i] += b[i % cols]; }
};

template <class T>
struct AddRowBiasRow {  // the Cpu's form: one row of y per call
  T* y;
  const T* b;
  int64_t cols;
  HAZE_HD void operator()(int64_t row) const {
    for (int64_t c = 0; c < cols; ++c) y[row * cols + c] += b[c];
  }
};

template <class T>
struct ScaleShift {  // one plane (n, c) per call: y = x (1 + scale) + shift
  const T* x;
  const T* v;  // [N, 2C]: the scales, then the shifts
  T* y;
  int64_t C, plane;
  HAZE_HD void operator()(int64_t run) const {
    const int64_t n = run / C, c = run % C;
    const T scale = v[n * 2 * C + c], shift = v[n * 2 * C + C + c];
    for (int64_t p = run * plane; p < (run + 1) * plane; ++p) y[p] = x[p] * (T(1) + scale) + shift;
  }
};

template <class T>
struct ScaleShiftBackward {  // one plane per call: dx = dy (1 + scale), dscale = sum dy x, dshift = sum dy
  const T* dy;
  const T* x;
  const T* v;
  T* dx;
  T* dv;  // [N, 2C]
  int64_t C, plane;
  HAZE_HD void operator()(int64_t run) const {
    const int64_t n = run / C, c = run % C;
    const T scale = v[n * 2 * C + c];
    T dscale = 0, dshift = 0;
    for (int64_t p = run * plane; p < (run + 1) * plane; ++p) {
      dx[p] = dy[p] * (T(1) + scale);
      dscale += dy[p] * x[p];
      dshift += dy[p];
    }
    dv[n * 2 * C + c] = dscale;
    dv[n * 2 * C + C + c] = dshift;
  }
};

template <class T>
struct PadBottomRight {  // one row of y [N, C, H + 1, W + 1] per call; the last row and column are 0
  const T* x;
  T* y;
  int64_t H, W;
  HAZE_HD void operator()(int64_t row) const {
    const int64_t h = row % (H + 1), nc = row / (H + 1);
    T* dst = y + row * (W + 1);
    const T* src = x + (nc * H + h) * W;
    for (int64_t w = 0; w < W; ++w) dst[w] = h < H ? src[w] : T(0);
    dst[W] = T(0);
  }
};

template <class T>
struct CropBottomRight {  // the adjoint: one row of dx [N, C, H, W] per call
  const T* dy;
  T* dx;
  int64_t H, W;
  HAZE_HD void operator()(int64_t row) const {
    const int64_t h = row % H, nc = row / H;
    const T* src = dy + (nc * (H + 1) + h) * (W + 1);
    T* dst = dx + row * W;
    for (int64_t w = 0; w < W; ++w) dst[w] = src[w];
  }
};

}  // namespace detail

template <Real T, Backend B>
void transpose12(const Tensor<T, B>& x, Tensor<T, B>& y) {
  x.require_nonempty("ops::transpose12");
  HAZE_REQUIRE(x.rank() == 3 && y.shape() == (Shape{x.dim(0), x.dim(2), x.dim(1)}),
               "ops::transpose12: expects x [N, A, B] and y [N, B, A], got x ", x.shape(), " and y ", y.shape());
  if constexpr (prefers_row_calls<B>) {
    using Tile = detail::Transpose12Tile<T>;
    const int64_t tiles = x.dim(0) * ((x.dim(1) + Tile::size - 1) / Tile::size);
    B::for_each_index(tiles, Tile{x.data(), y.data(), x.dim(1), x.dim(2)}, Tile::size * x.dim(2));
  } else {
    B::for_each_index(y.numel(), detail::Transpose12<T>{x.data(), y.data(), x.dim(1), x.dim(2)});
  }
}

// x [A, B, P] -> y [B, A, P] (given as any shapes with those extents).
template <Real T, Backend B>
void swap_leading(const Tensor<T, B>& x, int64_t a, int64_t b, Tensor<T, B>& y) {
  x.require_nonempty("ops::swap_leading");
  y.require_nonempty("ops::swap_leading");
  HAZE_REQUIRE(a > 0 && b > 0 && x.numel() % (a * b) == 0 && y.numel() == x.numel() && !y.shares_storage_with(x),
               "ops::swap_leading: cannot view ", x.shape(), " as [", a, ", ", b, ", P] into ", y.shape());
  const int64_t p = x.numel() / (a * b);
  B::for_each_index(a * b, detail::SwapLeading<T>{x.data(), y.data(), a, b, p}, p);
}

// out = cat([first, second], channel axis), all NCHW with equal N, H, W.
template <Real T, Backend B>
void concat_channels(const Tensor<T, B>& first, const Tensor<T, B>& second, Tensor<T, B>& out) {
  first.require_nonempty("ops::concat_channels");
  second.require_nonempty("ops::concat_channels");
  HAZE_REQUIRE(first.rank() == 4 && second.rank() == 4 && first.dim(0) == second.dim(0) &&
                   first.dim(2) == second.dim(2) && first.dim(3) == second.dim(3),
               "ops::concat_channels: cannot concatenate ", first.shape(), " and ", second.shape());
  const Shape expected{first.dim(0), first.dim(1) + second.dim(1), first.dim(2), first.dim(3)};
  HAZE_REQUIRE(out.shape() == expected, "ops::concat_channels: output must be ", expected, ", got ", out.shape());
  const int64_t plane = first.dim(2) * first.dim(3);
  B::for_each_index(out.numel() / plane,
                    detail::ConcatChannels<T>{first.data(), second.data(), out.data(), first.dim(1), second.dim(1),
                                              plane},
                    plane);
}

// part = in[:, offset : offset + part.C]
template <Real T, Backend B>
void split_channels(const Tensor<T, B>& in, int64_t offset, Tensor<T, B>& part) {
  in.require_nonempty("ops::split_channels");
  HAZE_REQUIRE(in.rank() == 4 && part.rank() == 4 && part.dim(0) == in.dim(0) && part.dim(2) == in.dim(2) &&
                   part.dim(3) == in.dim(3) && offset >= 0 && offset + part.dim(1) <= in.dim(1),
               "ops::split_channels: cannot take ", part.shape(), " at channel ", offset, " of ", in.shape());
  const int64_t plane = in.dim(2) * in.dim(3);
  B::for_each_index(part.numel() / plane,
                    detail::SplitChannels<T>{in.data(), part.data(), offset, part.dim(1), in.dim(1), plane}, plane);
}

template <Real T, Backend B>
void upsample_nearest2x(const Tensor<T, B>& x, Tensor<T, B>& y) {
  x.require_nonempty("ops::upsample_nearest2x");
  const Shape expected{x.dim(0), x.dim(1), 2 * x.dim(2), 2 * x.dim(3)};
  HAZE_REQUIRE(x.rank() == 4 && y.shape() == expected, "ops::upsample_nearest2x: output must be ", expected,
               ", got ", y.shape());
  if constexpr (prefers_row_calls<B>)
    B::for_each_index(x.numel() / x.dim(3), detail::Nearest2xRows<T>{x.data(), y.data(), x.dim(3)}, 4 * x.dim(3));
  else
    B::for_each_index(y.numel(), detail::Nearest2x<T>{x.data(), y.data(), x.dim(2), x.dim(3)});
}

template <Real T, Backend B>
void upsample_nearest2x_backward(const Tensor<T, B>& dy, Tensor<T, B>& dx) {
  dy.require_nonempty("ops::upsample_nearest2x_backward");
  HAZE_REQUIRE(dx.rank() == 4 && dy.shape() == (Shape{dx.dim(0), dx.dim(1), 2 * dx.dim(2), 2 * dx.dim(3)}),
               "ops::upsample_nearest2x_backward: dy ", dy.shape(), " is not twice dx ", dx.shape());
  if constexpr (prefers_row_calls<B>)
    B::for_each_index(dx.numel() / dx.dim(3), detail::Nearest2xAdjointRow<T>{dy.data(), dx.data(), dx.dim(3)},
                      4 * dx.dim(3));
  else
    B::for_each_index(dx.numel(), detail::Nearest2xAdjoint<T>{dy.data(), dx.data(), dx.dim(2), dx.dim(3)});
}

// y[..., c] += b[c] when y is [R, C]; y[n, c, h, w] += b[c] when y is NCHW.
template <Real T, Backend B>
void add_bias(Tensor<T, B>& y, const Tensor<T, B>& b) {
  y.require_nonempty("ops::add_bias");
  const bool nchw = y.rank() == 4;
  const int64_t channels = nchw ? y.dim(1) : y.dim(y.rank() - 1);
  HAZE_REQUIRE(b.shape() == Shape{channels}, "ops::add_bias: bias ", b.shape(), " does not match ", y.shape());
  const int64_t inner = nchw ? y.dim(2) * y.dim(3) : 1;
  if (nchw) {
    B::for_each_index(y.numel() / inner, detail::AddBroadcast<T>{y.data(), b.data(), inner, channels}, inner);
  } else {  // rows of length `channels`: the bias index varies fastest
    if constexpr (prefers_row_calls<B>)
      B::for_each_index(y.numel() / channels, detail::AddRowBiasRow<T>{y.data(), b.data(), channels}, channels);
    else
      B::for_each_index(y.numel(), detail::AddRowBias<T>{y.data(), b.data(), channels});
  }
}

// y[n, c, h, w] += v[n, c]
template <Real T, Backend B>
void add_per_sample_channel(Tensor<T, B>& y, const Tensor<T, B>& v) {
  y.require_nonempty("ops::add_per_sample_channel");
  HAZE_REQUIRE(y.rank() == 4 && v.shape() == (Shape{y.dim(0), y.dim(1)}), "ops::add_per_sample_channel: ",
               v.shape(), " does not match [N, C] of ", y.shape());
  const int64_t plane = y.dim(2) * y.dim(3);
  B::for_each_index(y.numel() / plane, detail::AddBroadcast<T>{y.data(), v.data(), plane, y.dim(0) * y.dim(1)}, plane);
}

// y = x with one row of zeros below and one column of zeros to the right:
// x [N, C, H, W] -> y [N, C, H + 1, W + 1].
template <Real T, Backend B>
void pad_bottom_right(const Tensor<T, B>& x, Tensor<T, B>& y) {
  x.require_nonempty("ops::pad_bottom_right");
  const Shape expected{x.dim(0), x.dim(1), x.dim(2) + 1, x.dim(3) + 1};
  HAZE_REQUIRE(x.rank() == 4 && y.shape() == expected, "ops::pad_bottom_right: output must be ", expected, ", got ",
               y.shape());
  B::for_each_index(y.numel() / y.dim(3), detail::PadBottomRight<T>{x.data(), y.data(), x.dim(2), x.dim(3)},
                    y.dim(3));
}

// The adjoint of pad_bottom_right: dx = dy without its last row and column.
template <Real T, Backend B>
void pad_bottom_right_backward(const Tensor<T, B>& dy, Tensor<T, B>& dx) {
  dy.require_nonempty("ops::pad_bottom_right_backward");
  HAZE_REQUIRE(dx.rank() == 4 && dy.shape() == (Shape{dx.dim(0), dx.dim(1), dx.dim(2) + 1, dx.dim(3) + 1}),
               "ops::pad_bottom_right_backward: dy ", dy.shape(), " is not dx ", dx.shape(), " plus one row and column");
  B::for_each_index(dx.numel() / dx.dim(3), detail::CropBottomRight<T>{dy.data(), dx.data(), dx.dim(2), dx.dim(3)},
                    dx.dim(3));
}

// y[n, c] = x[n, c] (1 + v[n, c]) + v[n, C + c] over each plane: x, y
// [N, C, H, W], v [N, 2C] (diffusers' torch.chunk(temb, 2, dim=1): the
// scales first). y may be x.
template <Real T, Backend B>
void scale_shift_per_sample_channel(const Tensor<T, B>& x, const Tensor<T, B>& v, Tensor<T, B>& y) {
  x.require_nonempty("ops::scale_shift_per_sample_channel");
  HAZE_REQUIRE(x.rank() == 4 && v.shape() == (Shape{x.dim(0), 2 * x.dim(1)}) && y.shape() == x.shape(),
               "ops::scale_shift_per_sample_channel: x ", x.shape(), ", v ", v.shape(), " (want [N, 2C]), y ",
               y.shape());
  const int64_t plane = x.dim(2) * x.dim(3);
  B::for_each_index(x.numel() / plane, detail::ScaleShift<T>{x.data(), v.data(), y.data(), x.dim(1), plane}, plane);
}

// Its backward: dx = dy (1 + scale); dv = [sum over the plane of dy x, of dy].
template <Real T, Backend B>
void scale_shift_per_sample_channel_backward(const Tensor<T, B>& dy, const Tensor<T, B>& x, const Tensor<T, B>& v,
                                             Tensor<T, B>& dx, Tensor<T, B>& dv) {
  dy.require_nonempty("ops::scale_shift_per_sample_channel_backward");
  HAZE_REQUIRE(dy.shape() == x.shape() && dx.shape() == x.shape() && x.rank() == 4 &&
                   v.shape() == (Shape{x.dim(0), 2 * x.dim(1)}) && dv.shape() == v.shape(),
               "ops::scale_shift_per_sample_channel_backward: dy ", dy.shape(), ", x ", x.shape(), ", v ", v.shape(),
               ", dx ", dx.shape(), ", dv ", dv.shape());
  const int64_t plane = x.dim(2) * x.dim(3);
  B::for_each_index(x.numel() / plane,
                    detail::ScaleShiftBackward<T>{dy.data(), x.data(), v.data(), dx.data(), dv.data(), x.dim(1), plane},
                    plane);
}

}  // namespace haze::ops
