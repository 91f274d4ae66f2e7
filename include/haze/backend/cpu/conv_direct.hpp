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
// The tiles (conv_direct_tiles.inc) are written with GCC's vector
// extensions and compiled once per SIMD ISA the build holds
// (backend/cpu/simd_isa.hpp); each call runs the processor's best. Other
// compilers and nvcc's host pass use the banded GEMM form.

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <utility>

#include "haze/backend/cpu.hpp"
#include "haze/backend/cpu/conv_bands.hpp"
#include "haze/backend/cpu/packed_gemm.hpp"
#include "haze/backend/cpu/simd_isa.hpp"
#include "haze/core/tensor.hpp"
#include "haze/ops/im2col.hpp"

#if defined(__GNUC__) && !defined(__CUDACC__)
#define HAZE_DIRECT_CONV 1
#endif

namespace haze::backend::cpu_conv {

#if defined(HAZE_DIRECT_CONV)

// One ISA's tiles, sized to its register file (conv_direct_tiles.inc).
template <class T>
struct DirectKernels {
  backend::SimdIsa isa;
  int64_t lanes;  // pixels per vector
  int mr;         // output channels per forward tile
  // The forward tiles of one image and block of mr output channels, for
  // vectors of 1, 2 and 4 segments (rows narrower than a vector).
  void (*image_block[3])(const T* padded, int64_t C, int64_t H, int64_t W, int64_t k, const T* weights,
                         const T* bias, T* out, int64_t count);
  int64_t weight_grad_width[2];  // output channels per dw tile for k = 3 and 5; 0: no dw tile fits
  void (*weight_grad_image[2])(const T* padded, const T* dy_t, int64_t C, int64_t H, int64_t W, int64_t pitch,
                               bool add, T* partial);
};

namespace simd_baseline {
inline constexpr backend::SimdIsa isa = backend::SimdIsa::baseline;
inline constexpr backend::SimdShape shape = backend::baseline_simd;
#include "haze/backend/cpu/conv_direct_tiles.inc"
}  // namespace simd_baseline

#define HAZE_SIMD_TILES "haze/backend/cpu/conv_direct_tiles.inc"
#include "haze/backend/cpu/simd_targets.inc"
#undef HAZE_SIMD_TILES

// The tiles for `isa`, which must be available (backend::simd_isa_available).
template <class T>
const DirectKernels<T>& direct_kernels_for(backend::SimdIsa isa) {
#if defined(HAZE_SIMD_DISPATCH)
  if (isa == backend::SimdIsa::avx512) return simd_avx512::tiles<T>;
  if (isa == backend::SimdIsa::avx2) return simd_avx2::tiles<T>;
#endif
  (void)isa;
  return simd_baseline::tiles<T>;
}

// The tiles this processor runs best (backend::cpu_isa()).
template <class T>
const DirectKernels<T>& direct_kernels() {
  return direct_kernels_for<T>(backend::cpu_isa());
}

// A vector of output pixels is `lanes` consecutive pixels of one row, or,
// for rows narrower than a vector, `segments` whole rows (each its own load).
inline int64_t direct_segments(const ConvGeometry& g, int64_t lanes) {
  if (g.width % lanes == 0) return 1;
  for (int64_t segments : {2, 4})
    if (g.width * segments == lanes && g.height % segments == 0) return segments;
  return 0;  // no whole vectors: the banded form
}

template <class T>
bool direct_conv_applies(const ConvGeometry& g, const DirectKernels<T>& kernels = direct_kernels<T>()) {
  return g.stride == 1 && g.kernel_h == g.kernel_w && g.kernel_h % 2 == 1 && g.kernel_h > 1 &&
         2 * g.padding == g.kernel_h - 1 && direct_segments(g, kernels.lanes) > 0;
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

// The weights w [outputs, reduction] of a convolution (reduction = inputs
// k k terms per output channel), in blocks of mr output channels:
// packed[block][t][m] = w[block mr + m, t], zero past the last channel
// (the GEMM's panels of a row-major A).
template <class T>
void pack_direct_weights(int64_t outputs, int64_t reduction, int mr, const T* w, T* packed) {
  backend::detail::pack_panels(w, reduction, false, 0, outputs, 0, reduction, int64_t(mr), packed);
}

// The same blocks for the data gradient's convolution, whose weights are
// w~[c, o, tap] = w[o, c, taps - 1 - tap] (the kernel flipped, inputs and
// outputs swapped): packed[block][o taps + tap][m] = w~[block mr + m, o, tap].
template <class T>
void pack_direct_flipped_weights(int64_t cout, int64_t channels, int64_t taps, int mr, const T* w, T* packed) {
  const int64_t reduction = cout * taps;
  for (int64_t c0 = 0; c0 < channels; c0 += mr, packed += reduction * mr) {
    const int64_t lanes = std::min<int64_t>(mr, channels - c0);
    for (int64_t t = 0; t < reduction; ++t) std::fill(packed + t * mr + lanes, packed + (t + 1) * mr, T(0));
    for (int64_t m = 0; m < lanes; ++m)
      for (int64_t o = 0; o < cout; ++o) {
        const T* kernel = w + (o * channels + c0 + m) * taps;
        for (int64_t tap = 0; tap < taps; ++tap) packed[(o * taps + tap) * mr + m] = kernel[taps - 1 - tap];
      }
  }
}

inline int64_t direct_blocks(int64_t outputs, int mr) { return (outputs + mr - 1) / mr; }

// y [N, outputs, H, W] = conv(x [N, C, H, W]) + bias, for weights packed by
// pack_direct_weights (or pack_direct_flipped_weights) and bias padded to
// whole blocks (zeros for dx).
template <Real T>
void direct_same_conv(const DirectKernels<T>& kernels, const T* x, int64_t N, const ConvGeometry& g,
                      const T* packed, const T* bias, int64_t outputs, T* y) {
  const int MR = kernels.mr;
  const int64_t C = g.channels, H = g.height, W = g.width, k = g.kernel_h, p = g.padding;
  const int64_t padded_size = C * (H + 2 * p) * (W + 2 * p), out_plane = H * W;
  const int64_t reduction = g.patch(), blocks = direct_blocks(outputs, MR);
  const auto image_block = kernels.image_block[std::bit_width(uint64_t(direct_segments(g, kernels.lanes))) - 1];
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
      image_block(padded, C, H, W, k, weights, bias + block * MR, y + (n * outputs + block * MR) * out_plane, count);
    }
  }
}

// The weight gradient in the direct form: dw[o, c, i, j] is a sum over
// pixels of dy[o, h, w] x_padded[c, h + i, w + j], so with dy transposed to
// [pixels, Cout] a register tile of vectors of output channels x the K K
// taps of one input channel sums a whole image with no horizontal
// reduction: per pixel, a load of dy per vector and K K broadcasts of x.
// Output channels in whole tiles only: a 3-channel conv_out padded to 32
// measured slower than the banded GEMM.
template <class T>
bool direct_weight_grad_applies(const ConvGeometry& g, int64_t cout,
                                const DirectKernels<T>& kernels = direct_kernels<T>()) {
  if (!direct_conv_applies<T>(g, kernels) || (g.kernel_h != 3 && g.kernel_h != 5)) return false;
  const int64_t width = kernels.weight_grad_width[g.kernel_h == 5];
  return width > 0 && cout % width == 0;
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
                               const ConvGeometry& g, Tensor<T, backend::Cpu>& dw,
                               const DirectKernels<T>& kernels = direct_kernels<T>()) {
  const int64_t N = x.dim(0), C = g.channels, H = g.height, W = g.width, k = g.kernel_h, p = g.padding;
  const int64_t cout = dy.dim(1), plane = H * W, padded_size = C * (H + 2 * p) * (W + 2 * p);
  const int64_t pitch = cout;  // whole tiles (direct_weight_grad_applies)
  const auto image_sums = kernels.weight_grad_image[k == 5];
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
      image_sums(padded, dy_t, C, H, W, pitch, n > first, partial);
    }
  }
  add_partials_transposed(partials, cout, dw);
}

// y = conv(x, w) + b in the direct form (direct_conv_applies(g) holds).
template <Real T>
void conv2d_forward_direct(const Tensor<T, backend::Cpu>& x, const Tensor<T, backend::Cpu>& w,
                           const Tensor<T, backend::Cpu>& b, const ConvGeometry& g, Tensor<T, backend::Cpu>& y,
                           const DirectKernels<T>& kernels = direct_kernels<T>()) {
  const int MR = kernels.mr;
  const int64_t cout = w.dim(0), reduction = g.patch(), blocks = direct_blocks(cout, MR);
  Tensor<T, backend::Cpu> packed({blocks * MR * reduction}), bias({blocks * MR});
  pack_direct_weights(cout, reduction, MR, w.data(), packed.data());
  std::fill_n(std::copy_n(b.data(), cout, bias.data()), blocks * MR - cout, T(0));
  direct_same_conv(kernels, x.data(), x.dim(0), g, packed.data(), bias.data(), cout, y.data());
}

// dx = conv(dy, w~) in the direct form, w~[c, o, i, j] = w[o, c, k-1-i, k-1-j]
// (the same flip as flip_kernel; a "same" convolution stays one).
template <Real T>
void conv2d_data_grad_direct(const Tensor<T, backend::Cpu>& w, const Tensor<T, backend::Cpu>& dy,
                             const ConvGeometry& g, Tensor<T, backend::Cpu>& dx,
                             const DirectKernels<T>& kernels = direct_kernels<T>()) {
  const int MR = kernels.mr;
  const int64_t cout = w.dim(0), taps = g.kernel_h * g.kernel_w, blocks = direct_blocks(g.channels, MR);
  Tensor<T, backend::Cpu> packed({blocks * MR * cout * taps}), zeros({blocks * MR});
  pack_direct_flipped_weights(cout, g.channels, taps, MR, w.data(), packed.data());
  std::fill_n(zeros.data(), blocks * MR, T(0));
  direct_same_conv(kernels, dy.data(), dy.dim(0), dx_geometry(g, cout), packed.data(), zeros.data(), g.channels,
                   dx.data());
}

#endif  // HAZE_DIRECT_CONV

}  // namespace haze::backend::cpu_conv
