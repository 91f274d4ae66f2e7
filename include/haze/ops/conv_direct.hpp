#pragma once
// The Cpu's direct form of a "same" convolution: stride 1, an odd square
// kernel k, padding (k - 1)/2, on images whose rows are whole SIMD vectors.
//  - Each image is copied once into a zero-bordered buffer, so every tap
//    (i, j) of a vector of output pixels is one unaligned load of a padded
//    row: no im2col, no packing of the image, no edge cases in the loop.
//  - A register tile of MR output channels x R vectors of pixels sums
//    w[o, c, i, j] * x_padded[c, h + i, w + j] over all (c, i, j); the
//    weights are packed once per call into MR-wide columns, so each tap's
//    weights are MR consecutive scalars broadcast against R loaded vectors.
//  - The data gradient of a stride-1 convolution is itself such a
//    convolution (of dy, with the flipped kernel; see conv_bands.hpp), so
//    the backward pass uses the same kernel.
//  - Each output element is summed by one thread in a fixed order, so
//    results do not depend on the thread count.
// Written with GCC's vector extensions, so the compiler picks the
// instructions (AVX-512, AVX or SSE); other compilers and nvcc's host pass
// use the banded GEMM form.

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "haze/backend/cpu.hpp"
#include "haze/core/tensor.hpp"
#include "haze/ops/conv_bands.hpp"
#include "haze/ops/im2col.hpp"

#if defined(__GNUC__) && !defined(__CUDACC__)
#define HAZE_DIRECT_CONV 1
#endif

namespace haze::ops::detail {

#if defined(HAZE_DIRECT_CONV)

// The tile fits the register file: MR x R accumulators, R loaded vectors
// and one broadcast weight (24 + 3 + 1 of AVX-512's 32 registers).
template <class T>
struct DirectTile {
#if defined(__AVX512F__)
  static constexpr int bytes = 64, MR = 8;
#elif defined(__AVX__)
  static constexpr int bytes = 32, MR = 4;
#else
  static constexpr int bytes = 16, MR = 4;
#endif
  static constexpr int R = 3;
  static constexpr int64_t lanes = bytes / int64_t(sizeof(T));
  typedef T Vec __attribute__((vector_size(bytes)));
};

// A vector of output pixels is `lanes` consecutive pixels of one row, or,
// for rows narrower than a vector, `segments` whole rows (each its own load).
template <class T>
int64_t direct_segments(const ConvGeometry& g) {
  constexpr int64_t lanes = DirectTile<T>::lanes;
  if (g.width % lanes == 0) return 1;
  for (int64_t segments : {2, 4})
    if (g.width * segments == lanes && g.height % segments == 0) return segments;
  return 0;  // no whole vectors: the banded form
}

template <class T>
bool direct_conv_applies(const ConvGeometry& g) {
  return g.stride == 1 && g.kernel_h == g.kernel_w && g.kernel_h % 2 == 1 && g.kernel_h > 1 &&
         2 * g.padding == g.kernel_h - 1 && direct_segments<T>(g) > 0;
}

// One image [C, H, W] into padded [C, H + 2p, W + 2p] with zero borders.
template <class T>
void pad_image(const T* image, int64_t C, int64_t H, int64_t W, int64_t p, T* padded) {
  const int64_t Wp = W + 2 * p, Hp = H + 2 * p;
  for (int64_t c = 0; c < C; ++c) {
    T* plane = padded + c * Hp * Wp;
    std::fill_n(plane, p * Wp, T(0));
    for (int64_t h = 0; h < H; ++h) {
      T* line = plane + (h + p) * Wp;
      std::fill_n(line, p, T(0));
      std::copy_n(image + (c * H + h) * W, W, line + p);
      std::fill_n(line + p + W, p, T(0));
    }
    std::fill_n(plane + (H + p) * Wp, p * Wp, T(0));
  }
}

// The weights of a convolution with `outputs` output channels and
// `reduction` = inputs k k terms each, in blocks of MR output channels:
// packed[block][t][m] = weight(block MR + m, t), zero past the last channel.
template <class T, class Weight>
void pack_direct_weights(int64_t outputs, int64_t reduction, Weight weight, T* packed) {
  constexpr int MR = DirectTile<T>::MR;
  for (int64_t o0 = 0; o0 < outputs; o0 += MR)
    for (int64_t t = 0; t < reduction; ++t)
      for (int m = 0; m < MR; ++m) *packed++ = o0 + m < outputs ? weight(o0 + m, t) : T(0);
}

inline int64_t direct_blocks(int64_t outputs, int mr) { return (outputs + mr - 1) / mr; }

// One register tile: `count` (<= MR) output channels starting at `out`
// (channel pitch out_plane), and the R vectors of output pixels whose
// top-left taps are at in[r] in each padded plane and whose outputs are at
// out + v[r]; a vector of SEG segments reads them a padded row apart.
// acc starts at the bias (or 0) and is stored, not added.
template <class T, int R, int SEG>
[[gnu::always_inline]] inline void direct_tile(const T* padded, int64_t channels, int64_t plane, int64_t Wp,
                                               int64_t k, const T* weights, const T* bias, const int64_t* in,
                                               const int64_t* v, T* out, int64_t out_plane, int64_t count) {
  using Tile = DirectTile<T>;
  using Vec = typename Tile::Vec;
  constexpr int MR = Tile::MR;
  Vec acc[MR][R];
  for (int m = 0; m < MR; ++m)
    for (int r = 0; r < R; ++r) acc[m][r] = Vec{} + bias[m];
  const T* w = weights;
  for (int64_t c = 0; c < channels; ++c) {
    const T* x = padded + c * plane;
    for (int64_t i = 0; i < k; ++i, x += Wp)
      for (int64_t j = 0; j < k; ++j, w += MR) {
        Vec b[R];
        for (int r = 0; r < R; ++r)
          for (int seg = 0; seg < SEG; ++seg)
            std::memcpy(reinterpret_cast<T*>(&b[r]) + seg * (Tile::lanes / SEG), x + j + in[r] + seg * Wp,
                        sizeof(Vec) / SEG);
        for (int m = 0; m < MR; ++m) {
          const T s = w[m];
          for (int r = 0; r < R; ++r) acc[m][r] += s * b[r];
        }
      }
  }
  for (int64_t m = 0; m < count; ++m)
    for (int r = 0; r < R; ++r) std::memcpy(out + m * out_plane + v[r], &acc[m][r], sizeof(Vec));
}

// The tiles of one image and block of output channels, R vectors at a time.
template <class T, int SEG>
void direct_image_block(const T* padded, int64_t C, int64_t H, int64_t W, int64_t k, const T* weights,
                        const T* bias, T* out, int64_t count) {
  using Tile = DirectTile<T>;
  constexpr int R = Tile::R;
  const int64_t p = (k - 1) / 2, Wp = W + 2 * p, plane = (H + 2 * p) * Wp, out_plane = H * W;
  const int64_t per_row = SEG == 1 ? W / Tile::lanes : 1, vectors = out_plane / Tile::lanes;
  const auto input_offset = [&](int64_t u) {  // vector u's first pixel, in the padded plane
    return SEG == 1 ? (u / per_row) * Wp + (u % per_row) * Tile::lanes : u * SEG * Wp;
  };
  int64_t in[R], v[R];
  int64_t first = 0;
  for (; first + R <= vectors; first += R) {
    for (int r = 0; r < R; ++r) in[r] = input_offset(first + r), v[r] = (first + r) * Tile::lanes;
    direct_tile<T, R, SEG>(padded, C, plane, Wp, k, weights, bias, in, v, out, out_plane, count);
  }
  for (; first < vectors; ++first) {
    in[0] = input_offset(first), v[0] = first * Tile::lanes;
    direct_tile<T, 1, SEG>(padded, C, plane, Wp, k, weights, bias, in, v, out, out_plane, count);
  }
}

// y [N, outputs, H, W] = conv(x [N, C, H, W]) + bias, for weights packed by
// pack_direct_weights and bias padded to whole blocks (zeros for dx).
template <Real T>
void direct_same_conv(const T* x, int64_t N, const ConvGeometry& g, const T* packed, const T* bias,
                      int64_t outputs, T* y) {
  constexpr int MR = DirectTile<T>::MR;
  const int64_t C = g.channels, H = g.height, W = g.width, k = g.kernel_h, p = g.padding;
  const int64_t padded_size = C * (H + 2 * p) * (W + 2 * p), out_plane = H * W;
  const int64_t reduction = g.patch(), blocks = direct_blocks(outputs, MR), segments = direct_segments<T>(g);
  // Batches smaller than twice the threads also split the output channels.
  const int64_t threads = backend::Cpu::max_threads();
  const int64_t slices = N >= 2 * threads ? 1 : std::min(blocks, (2 * threads + N - 1) / N);
  const int64_t tasks = N * slices;
  Tensor<T, backend::Cpu> workspace({threads, padded_size});
  T* wsd = workspace.data();
#pragma omp parallel for schedule(static) if (tasks > 1 && outputs * reduction * out_plane * N >= backend::Cpu::parallel_threshold)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t n = task / slices, slice = task % slices;
    T* padded = wsd + backend::Cpu::thread_index() * padded_size;
    pad_image(x + n * C * H * W, C, H, W, p, padded);
    for (int64_t block = slice * blocks / slices; block < (slice + 1) * blocks / slices; ++block) {
      const T* weights = packed + block * reduction * MR;
      const int64_t count = std::min<int64_t>(MR, outputs - block * MR);
      T* out = y + (n * outputs + block * MR) * out_plane;
      if (segments == 1) direct_image_block<T, 1>(padded, C, H, W, k, weights, bias + block * MR, out, count);
      else if (segments == 2) direct_image_block<T, 2>(padded, C, H, W, k, weights, bias + block * MR, out, count);
      else direct_image_block<T, 4>(padded, C, H, W, k, weights, bias + block * MR, out, count);
    }
  }
}

// The weight gradient in the direct form: dw[o, c, i, j] is a sum over
// pixels of dy[o, h, w] x_padded[c, h + i, w + j], so with dy transposed to
// [pixels, Cout] a register tile of OV vectors of output channels x the
// K K taps of one input channel sums a whole image with no horizontal
// reduction: per pixel, OV loads of dy and K K broadcasts of x.
template <class T, int K>
struct WeightGradTile {
  static constexpr int64_t lanes = DirectTile<T>::lanes;
  static constexpr int OV = DirectTile<T>::bytes == 64 && K == 3 ? 2 : 1;  // 2 x 9 of AVX-512's 32 registers
  static constexpr int64_t width = OV * lanes;                           // output channels per tile
  static int64_t pitch(int64_t cout) { return (cout + width - 1) / width * width; }
};

// Output channels in whole tiles only: a 3-channel conv_out padded to 32
// measured slower than the banded GEMM.
template <class T>
bool direct_weight_grad_applies(const ConvGeometry& g, int64_t cout) {
  if (!direct_conv_applies<T>(g)) return false;
  if (g.kernel_h == 3) return cout % WeightGradTile<T, 3>::width == 0;
  return g.kernel_h == 5 && cout % WeightGradTile<T, 5>::width == 0;
}

// partial [C K K, pitch] (+)= the sums of one image, for dy_t [H W, pitch]
// (zero past Cout) and the padded image; `add` false overwrites.
template <class T, int K>
void direct_weight_grad_image(const T* padded, const T* dy_t, int64_t C, int64_t H, int64_t W, int64_t pitch,
                              bool add, T* partial) {
  using Tile = WeightGradTile<T, K>;
  using Vec = typename DirectTile<T>::Vec;
  constexpr int OV = Tile::OV;
  constexpr int64_t lanes = Tile::lanes;
  const int64_t Wp = W + K - 1, plane = (H + K - 1) * Wp;
  for (int64_t o0 = 0; o0 < pitch; o0 += Tile::width)
    for (int64_t c = 0; c < C; ++c) {
      Vec acc[K * K][OV] = {};
      const T* xc = padded + c * plane;
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w) {
          const T* dyp = dy_t + (h * W + w) * pitch + o0;
          Vec d[OV];
          for (int v = 0; v < OV; ++v) std::memcpy(&d[v], dyp + v * lanes, sizeof(Vec));
          const T* xp = xc + h * Wp + w;
          for (int i = 0; i < K; ++i)
            for (int j = 0; j < K; ++j) {
              const T s = xp[i * Wp + j];
              for (int v = 0; v < OV; ++v) acc[i * K + j][v] += s * d[v];
            }
        }
      for (int t = 0; t < K * K; ++t)
        for (int v = 0; v < OV; ++v) {
          T* out = partial + (c * K * K + t) * pitch + o0 + v * lanes;
          Vec sum = acc[t][v];
          if (add) {
            Vec before;
            std::memcpy(&before, out, sizeof(Vec));
            sum = before + sum;
          }
          std::memcpy(out, &sum, sizeof(Vec));
        }
    }
}

// out [plane, pitch] = in [rows, plane] transposed, zero past `rows`; in
// blocks of 16 columns of `in`, so the rows written stay in L1.
template <class T>
void transpose_padded(const T* in, int64_t rows, int64_t plane, int64_t pitch, T* out) {
  constexpr int64_t block = 16;
  for (int64_t q0 = 0; q0 < plane; q0 += block) {
    const int64_t q1 = std::min(q0 + block, plane);
    for (int64_t o = 0; o < rows; ++o)
      for (int64_t q = q0; q < q1; ++q) out[q * pitch + o] = in[o * plane + q];
    for (int64_t q = q0; q < q1; ++q) std::fill(out + q * pitch + rows, out + (q + 1) * pitch, T(0));
  }
}

// dw += dL/dw in the direct form (direct_weight_grad_applies(g) holds): one
// partial per group of images as in conv2d_backward_banded, so the result
// does not depend on the thread count.
template <Real T>
void conv2d_weight_grad_direct(const Tensor<T, backend::Cpu>& x, const Tensor<T, backend::Cpu>& dy,
                               const ConvGeometry& g, Tensor<T, backend::Cpu>& dw) {
  const int64_t N = x.dim(0), C = g.channels, H = g.height, W = g.width, k = g.kernel_h, p = g.padding;
  const int64_t cout = dy.dim(1), plane = H * W, padded_size = C * (H + 2 * p) * (W + 2 * p);
  const int64_t pitch = k == 3 ? WeightGradTile<T, 3>::pitch(cout) : WeightGradTile<T, 5>::pitch(cout);
  const int64_t groups = std::min<int64_t>(N, 16), reduction = g.patch();
  Tensor<T, backend::Cpu> partials({groups, reduction, pitch});
  Tensor<T, backend::Cpu> workspace({backend::Cpu::max_threads(), padded_size + plane * pitch});
  const T *xd = x.data(), *dyd = dy.data();
  T *pd = partials.data(), *wsd = workspace.data();
#pragma omp parallel for schedule(static) if (groups > 1 && cout * reduction * plane * N >= backend::Cpu::parallel_threshold)
  for (int64_t group = 0; group < groups; ++group) {
    T* partial = pd + group * reduction * pitch;
    T* padded = wsd + backend::Cpu::thread_index() * (padded_size + plane * pitch);
    T* dy_t = padded + padded_size;
    const int64_t first = group_begin(group, groups, N);
    for (int64_t n = first; n < group_begin(group + 1, groups, N); ++n) {
      pad_image(xd + n * C * plane, C, H, W, p, padded);
      transpose_padded(dyd + n * cout * plane, cout, plane, pitch, dy_t);
      if (k == 3) direct_weight_grad_image<T, 3>(padded, dy_t, C, H, W, pitch, n > first, partial);
      else direct_weight_grad_image<T, 5>(padded, dy_t, C, H, W, pitch, n > first, partial);
    }
  }
  add_partials_transposed(partials, cout, dw);
}

// y = conv(x, w) + b in the direct form (direct_conv_applies(g) holds).
template <Real T>
void conv2d_forward_direct(const Tensor<T, backend::Cpu>& x, const Tensor<T, backend::Cpu>& w,
                           const Tensor<T, backend::Cpu>& b, const ConvGeometry& g, Tensor<T, backend::Cpu>& y) {
  constexpr int MR = DirectTile<T>::MR;
  const int64_t cout = w.dim(0), reduction = g.patch(), blocks = direct_blocks(cout, MR);
  Tensor<T, backend::Cpu> packed({blocks * MR * reduction}), bias({blocks * MR});
  const T* wd = w.data();
  pack_direct_weights<T>(cout, reduction, [wd, reduction](int64_t o, int64_t t) { return wd[o * reduction + t]; },
                         packed.data());
  std::fill_n(std::copy_n(b.data(), cout, bias.data()), blocks * MR - cout, T(0));
  direct_same_conv(x.data(), x.dim(0), g, packed.data(), bias.data(), cout, y.data());
}

// dx = conv(dy, w~) in the direct form, w~[c, o, i, j] = w[o, c, k-1-i, k-1-j]
// (the same flip as flip_kernel; a "same" convolution stays one).
template <Real T>
void conv2d_data_grad_direct(const Tensor<T, backend::Cpu>& w, const Tensor<T, backend::Cpu>& dy,
                             const ConvGeometry& g, Tensor<T, backend::Cpu>& dx) {
  constexpr int MR = DirectTile<T>::MR;
  const int64_t cout = w.dim(0), taps = g.kernel_h * g.kernel_w, blocks = direct_blocks(g.channels, MR);
  Tensor<T, backend::Cpu> packed({blocks * MR * cout * taps}), zeros({blocks * MR});
  const T* wd = w.data();
  const int64_t channels = g.channels;
  pack_direct_weights<T>(channels, cout * taps,
                         [wd, channels, taps](int64_t c, int64_t t) {
                           return wd[((t / taps) * channels + c) * taps + (taps - 1 - t % taps)];
                         },
                         packed.data());
  std::fill_n(zeros.data(), blocks * MR, T(0));
  direct_same_conv(dy.data(), dy.dim(0), dx_geometry(g, cout), packed.data(), zeros.data(), g.channels, dx.data());
}

#endif  // HAZE_DIRECT_CONV

}  // namespace haze::ops::detail
