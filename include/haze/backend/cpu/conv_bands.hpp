#pragma once
// The Cpu's banded form of the convolution products (ops/conv.hpp): a band
// of output rows of one image at a time.
//  - A band's im2col columns are sized (cpu_band_bytes) to stay in L2 cache
//    from im2col through the GEMMs that read them, and the GEMM writes the
//    band of y in NCHW directly, with no axis swap.
//  - Bands of different images run in parallel; the weight gradient goes
//    into one partial per group of images (at most 16 groups, fixed by the
//    batch size alone) summed in order afterwards, so results do not depend
//    on the thread count.
//  - For stride 1 the data gradient is itself a convolution of dy with the
//    flipped kernel, so it too is an im2col and a GEMM, with no col2im
//    scatter; other strides scatter each band's columns into dx.
//  - Images with fewer pixels than 2 Cout take the whole-batch path
//    (cpu_prefers_bands): there a band would pack w about as often as the
//    columns it multiplies.

#include <algorithm>
#include <cstdint>

#include "haze/backend/cpu.hpp"
#include "haze/core/tensor.hpp"
#include "haze/ops/im2col.hpp"

namespace haze::backend::cpu_conv {

using ops::ConvGeometry;
using ops::detail::Geometry;
using ops::detail::clamp_index;
using ops::detail::geometry;

// im2col_band for a "same" convolution (stride 1, 2p = k - 1, so Wo = W):
// one kernel tap's band is the plane shifted by a constant offset, so it is
// copied as one long run, and then the positions that read padding are
// zeroed: the rows above or below the image and |j - p| columns at one edge.
template <class T>
void im2col_band_same(const T* image, const Geometry& g, int64_t ho0, int64_t rows, T* cols) {
  const int64_t width = rows * g.W, plane_size = g.H * g.W;
  for (int64_t r = 0; r < g.C * g.kh * g.kw; ++r) {
    const int64_t j = r % g.kw, i = (r / g.kw) % g.kh, c = r / (g.kw * g.kh);
    const T* plane = image + c * plane_size;
    T* out = cols + r * width;
    const int64_t shift = j - g.p;
    // Band rows whose input row ho - p + i lies in the image, and the run they read.
    const int64_t first_row = clamp_index(g.p - i - ho0, 0, rows);
    const int64_t last_row = clamp_index(g.H + g.p - i - ho0, first_row, rows);
    const int64_t base = (ho0 - g.p + i) * g.W + shift;  // out[q] reads plane[base + q]
    const int64_t begin = first_row * g.W, end = last_row * g.W;
    const int64_t read_begin = clamp_index(-base, begin, end);
    const int64_t read_end = clamp_index(plane_size - base, read_begin, end);
    for (int64_t q = 0; q < read_begin; ++q) out[q] = T(0);
    for (int64_t q = read_begin; q < read_end; ++q) out[q] = plane[base + q];
    for (int64_t q = read_end; q < width; ++q) out[q] = T(0);
    for (int64_t row = first_row; row < last_row; ++row) {  // the edge columns read padding
      T* line = out + row * g.W;
      for (int64_t wo = 0; wo < clamp_index(-shift, 0, g.W); ++wo) line[wo] = T(0);
      for (int64_t wo = clamp_index(g.W - shift, 0, g.W); wo < g.W; ++wo) line[wo] = T(0);
    }
  }
}

// Rows [ho0, ho0 + rows) of one image's im2col: cols [C kh kw, rows Wo].
template <class T>
void im2col_band(const T* image, const Geometry& g, int64_t ho0, int64_t rows, T* cols) {
  if (g.s == 1 && g.Wo == g.W && 2 * g.p == g.kw - 1) {
    im2col_band_same(image, g, ho0, rows, cols);
    return;
  }
  const int64_t width = rows * g.Wo;
  for (int64_t r = 0; r < g.C * g.kh * g.kw; ++r) {
    const int64_t j = r % g.kw, i = (r / g.kw) % g.kh, c = r / (g.kw * g.kh);
    for (int64_t ho = ho0; ho < ho0 + rows; ++ho)
      im2col_line(image + c * g.H * g.W, g, i, j, ho, cols + r * width + (ho - ho0) * g.Wo);
  }
}

// The adjoint of im2col_band, added into one image's gradient dx [C, H, W].
// The image belongs to one thread, so this scatters without atomics. Only
// convolutions whose dx is not itself a convolution come here (strides
// above 1, or padding above k - 1), so there is no stride-1 fast path.
template <class T>
void col2im_line_add(const T* src, const Geometry& g, int64_t i, int64_t j, int64_t ho, T* plane) {
  const int64_t h = ho * g.s - g.p + i;
  if (h < 0 || h >= g.H) return;
  T* line = plane + h * g.W;
  for (int64_t wo = 0; wo < g.Wo; ++wo) {
    const int64_t w = wo * g.s - g.p + j;
    if (w >= 0 && w < g.W) line[w] += src[wo];
  }
}

template <class T>
void col2im_band_add(const T* cols, const Geometry& g, int64_t ho0, int64_t rows, T* image) {
  const int64_t width = rows * g.Wo;
  for (int64_t r = 0; r < g.C * g.kh * g.kw; ++r) {
    const int64_t j = r % g.kw, i = (r / g.kw) % g.kh, c = r / (g.kw * g.kh);
    for (int64_t ho = ho0; ho < ho0 + rows; ++ho)
      col2im_line_add(cols + r * width + (ho - ho0) * g.Wo, g, i, j, ho, image + c * g.H * g.W);
  }
}

struct Bands {
  int64_t rows;   // output rows per band (the last may have fewer)
  int64_t count;  // bands per image
};

// Rows per band: as many as fit `bytes` of columns, but at least enough
// for 4 columns per row of the weight matrix (weight_rows), since every
// band's GEMM packs the whole weight matrix again.
template <class T>
Bands bands_of(const ConvGeometry& g, int64_t weight_rows, int64_t bytes) {
  const int64_t per_row = g.patch() * g.out_width() * int64_t(sizeof(T));
  const int64_t for_weights = (4 * weight_rows + g.out_width() - 1) / g.out_width();
  const int64_t rows = std::clamp<int64_t>(std::max(bytes / per_row, for_weights), 1, g.out_height());
  return {rows, (g.out_height() + rows - 1) / rows};
}

// Bands of about 512 KiB of columns (half of a 1 MiB L2; 256 KiB and 1 MiB
// measured no better on the U-Net benchmarks); below two weight matrices of
// columns per image, the whole batch at once.
inline bool cpu_prefers_bands(const ConvGeometry& g, int64_t out_channels) {
  return g.out_height() * g.out_width() >= 2 * out_channels;
}
inline constexpr int64_t cpu_band_bytes = 512 << 10;

template <Real T>
void conv2d_forward_banded(const Tensor<T, backend::Cpu>& x, const Tensor<T, backend::Cpu>& w,
                           const Tensor<T, backend::Cpu>& b, const ConvGeometry& g, Tensor<T, backend::Cpu>& y,
                           Bands bands) {
  using backend::Cpu;
  const Geometry geo = geometry(g, x.dim(0));
  const int64_t cout = w.dim(0), k = g.patch(), plane = geo.Ho * geo.Wo, tasks = geo.N * bands.count;
  const bool pointwise = g.pointwise();
  Tensor<T, Cpu> workspace({pointwise ? 1 : backend::Cpu::max_threads(), pointwise ? 1 : k * bands.rows * geo.Wo});
  const T *xd = x.data(), *wd = w.data(), *bd = b.data();
  T *yd = y.data(), *wsd = workspace.data();
#pragma omp parallel for schedule(static) if (tasks > 1 && cout * k * plane * geo.N >= Cpu::parallel_threshold)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t n = task / bands.count, ho0 = (task % bands.count) * bands.rows;
    const int64_t rows = std::min(bands.rows, geo.Ho - ho0), width = rows * geo.Wo;
    const T* image = xd + n * geo.C * geo.H * geo.W;
    const T* cols = image + ho0 * geo.Wo;  // 1x1: x's own plane rows are the columns
    int64_t ld = plane;
    if (!pointwise) {
      T* band = wsd + backend::Cpu::thread_index() * k * bands.rows * geo.Wo;
      im2col_band(image, geo, ho0, rows, band);
      cols = band;
      ld = width;
    }
    T* out = yd + n * cout * plane + ho0 * geo.Wo;
    for (int64_t c = 0; c < cout; ++c) std::fill_n(out + c * plane, width, bd[c]);  // the bias, then += w cols
    Cpu::gemm(Transpose::No, Transpose::No, cout, width, k, T(1), wd, k, 0, cols, ld, 0, T(1), out, plane, 0, 1);
  }
}

// Group of image n when a batch of `images` is split into `groups` runs.
inline int64_t group_begin(int64_t group, int64_t groups, int64_t images) { return group * images / groups; }

// For stride 1 and padding p <= k - 1, dx is itself a convolution:
// dx = conv(dy, w~) with padding k - 1 - p and w~[c, o, i, j] =
// w[o, c, k-1-i, k-1-j]; an im2col of dy then replaces col2im's scatter.
inline bool dx_is_a_convolution(const ConvGeometry& g) {
  return !g.pointwise() && g.stride == 1 && g.kernel_h == g.kernel_w && g.padding <= g.kernel_h - 1;
}

inline ConvGeometry dx_geometry(const ConvGeometry& g, int64_t out_channels) {
  return {out_channels, g.out_height(), g.out_width(), g.kernel_h, g.kernel_w, 1, g.kernel_h - 1 - g.padding};
}

// w~ [C, Cout kh kw] from w [Cout, C kh kw]: swap the channel axes and flip the kernel.
template <class T>
void flip_kernel(const T* w, int64_t cout, const ConvGeometry& g, T* flipped) {
  const int64_t taps = g.kernel_h * g.kernel_w;
  for (int64_t o = 0; o < cout; ++o)
    for (int64_t c = 0; c < g.channels; ++c)
      for (int64_t t = 0; t < taps; ++t)
        flipped[(c * cout + o) * taps + (taps - 1 - t)] = w[(o * g.channels + c) * taps + t];
}

// dw [Cout, K] += (the sum of partials [groups, K, pitch >= Cout], in group order)^T.
// Rows of K in parallel; each element's sum runs over the groups in order.
template <class T>
void add_partials_transposed(Tensor<T, backend::Cpu>& partials, int64_t cout, Tensor<T, backend::Cpu>& dw) {
  const int64_t groups = partials.dim(0), k = partials.dim(1), pitch = partials.dim(2);
  T* pd = partials.data();
#pragma omp parallel for schedule(static) if (groups * k * pitch >= backend::Cpu::parallel_threshold)
  for (int64_t i = 0; i < k; ++i)
    for (int64_t group = 1; group < groups; ++group) {
      const T* partial = pd + (group * k + i) * pitch;
      for (int64_t o = 0; o < pitch; ++o) pd[i * pitch + o] += partial[o];
    }
  T* dwd = dw.data();
  for (int64_t o = 0; o < cout; ++o)
    for (int64_t i = 0; i < k; ++i) dwd[o * k + i] += pd[i * pitch + o];
}

// bands: over the output rows (for dw); dx_bands: over the input rows, used
// when dx is a convolution of dy. With with_dx false, dx is left alone (the
// direct form computes it).
template <Real T>
void conv2d_backward_banded(const Tensor<T, backend::Cpu>& x, const Tensor<T, backend::Cpu>& w,
                            const Tensor<T, backend::Cpu>& dy, const ConvGeometry& g, Tensor<T, backend::Cpu>& dw,
                            Tensor<T, backend::Cpu>& dx, Bands bands, Bands dx_bands, bool with_dx = true) {
  using backend::Cpu;
  const Geometry geo = geometry(g, x.dim(0));
  const int64_t cout = w.dim(0), k = g.patch(), plane = geo.Ho * geo.Wo, image_size = geo.C * geo.H * geo.W;
  const int64_t groups = std::min<int64_t>(geo.N, 16);
  const bool pointwise = g.pointwise(), by_conv = with_dx && dx_is_a_convolution(g);
  const ConvGeometry gt = dx_geometry(g, cout);
  const Geometry geo_t = geometry(gt, geo.N);
  const int64_t kt = gt.patch();
  // Per thread: the band's columns of x, then those of dy (or dw's w^T dy band for col2im).
  const int64_t band_size = k * bands.rows * geo.Wo;
  const int64_t second_size = by_conv ? kt * dx_bands.rows * geo.W : (with_dx ? band_size : 0);
  Tensor<T, Cpu> partials({groups, k, cout});  // each group's dw, transposed (see whole-batch dw)
  Tensor<T, Cpu> workspace({backend::Cpu::max_threads(), pointwise ? 1 : band_size + second_size});
  Tensor<T, Cpu> flipped({by_conv ? geo.C : 1, by_conv ? kt : 1});
  if (by_conv) flip_kernel(w.data(), cout, g, flipped.data());
  const T *xd = x.data(), *wd = w.data(), *dyd = dy.data(), *wt = flipped.data();
  T *dxd = dx.data(), *pd = partials.data(), *wsd = workspace.data();
#pragma omp parallel for schedule(static) if (groups > 1 && cout * k * plane * geo.N >= Cpu::parallel_threshold)
  for (int64_t group = 0; group < groups; ++group) {
    T* partial = pd + group * k * cout;
    T* cols_band = wsd + backend::Cpu::thread_index() * (band_size + second_size);
    T* second_band = cols_band + band_size;
    T beta = T(0);  // the group's first band overwrites its partial
    for (int64_t n = group_begin(group, groups, geo.N); n < group_begin(group + 1, groups, geo.N); ++n) {
      const T* image = xd + n * image_size;
      const T* dy_image = dyd + n * cout * plane;
      T* dimage = dxd + n * image_size;
      const bool by_col2im = with_dx && !pointwise && !by_conv;
      if (by_col2im) std::fill_n(dimage, image_size, T(0));
      for (int64_t ho0 = 0; ho0 < geo.Ho; ho0 += bands.rows) {
        const int64_t rows = std::min(bands.rows, geo.Ho - ho0), width = rows * geo.Wo;
        const T* dy_band = dy_image + ho0 * geo.Wo;  // [Cout, width], row pitch plane
        const T* cols = image + ho0 * geo.Wo;       // 1x1: x's own plane rows are the columns
        int64_t ld = plane;
        if (!pointwise) {
          im2col_band(image, geo, ho0, rows, cols_band);
          cols = cols_band;
          ld = width;
        }
        // partial [K, Cout] += cols dy_band^T
        Cpu::gemm(Transpose::No, Transpose::Yes, k, cout, width, T(1), cols, ld, 0, dy_band, plane, 0, beta,
                  partial, cout, 0, 1);
        beta = T(1);
        if (with_dx && pointwise) {  // dx's band = w^T dy_band
          Cpu::gemm(Transpose::Yes, Transpose::No, k, width, cout, T(1), wd, k, 0, dy_band, plane, 0, T(0),
                    dimage + ho0 * geo.Wo, plane, 0, 1);
        } else if (by_col2im) {  // dcols = w^T dy_band, scattered into dx
          Cpu::gemm(Transpose::Yes, Transpose::No, k, width, cout, T(1), wd, k, 0, dy_band, plane, 0, T(0),
                    second_band, width, 0, 1);
          col2im_band_add(second_band, geo, ho0, rows, dimage);
        }
      }
      if (!by_conv) continue;
      for (int64_t h0 = 0; h0 < geo.H; h0 += dx_bands.rows) {  // dx's band = w~ im2col(dy)
        const int64_t rows = std::min(dx_bands.rows, geo.H - h0), width = rows * geo.W;
        im2col_band(dy_image, geo_t, h0, rows, second_band);
        Cpu::gemm(Transpose::No, Transpose::No, geo.C, width, kt, T(1), wt, kt, 0, second_band, width, 0, T(0),
                  dimage + h0 * geo.W, geo.H * geo.W, 0, 1);
      }
    }
  }
  add_partials_transposed(partials, cout, dw);
}

}  // namespace haze::backend::cpu_conv
