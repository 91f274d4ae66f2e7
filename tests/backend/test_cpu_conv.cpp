// The convolution products of ops/conv.hpp on the Cpu, in all of its forms
// (bands of one image, the whole batch at once, and the SIMD direct form of
// "same" convolutions), against a direct convolution summed in long double.
#include <haze/backend/cpu.hpp>
#include <haze/ops/conv.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

#include "test_support.hpp"

using haze::Shape;
using haze::backend::Cpu;
using haze::ops::ConvGeometry;
using Tensor = haze::Tensor<double, Cpu>;
namespace detail = haze::ops::detail;
namespace cpu_conv = haze::backend::cpu_conv;

namespace {

struct Direct {  // the three products, and the sum of |terms| for each output (the error scale)
  std::vector<long double> y, y_scale, dw, dw_scale, dx, dx_scale;
};

Direct direct(const std::vector<double>& x, const std::vector<double>& w, const std::vector<double>& b,
              const std::vector<double>& dy, int64_t n, int64_t cout, const ConvGeometry& g) {
  const int64_t C = g.channels, H = g.height, W = g.width, kh = g.kernel_h, kw = g.kernel_w;
  const int64_t Ho = g.out_height(), Wo = g.out_width();
  Direct d;
  d.y.assign(n * cout * Ho * Wo, 0), d.y_scale.assign(d.y.size(), 0);
  d.dw.assign(cout * C * kh * kw, 0), d.dw_scale.assign(d.dw.size(), 0);
  d.dx.assign(n * C * H * W, 0), d.dx_scale.assign(d.dx.size(), 0);
  for (int64_t s = 0; s < n; ++s)
    for (int64_t o = 0; o < cout; ++o)
      for (int64_t ho = 0; ho < Ho; ++ho)
        for (int64_t wo = 0; wo < Wo; ++wo) {
          const int64_t yi = ((s * cout + o) * Ho + ho) * Wo + wo;
          d.y[yi] = b[o], d.y_scale[yi] = std::abs(b[o]);
          for (int64_t c = 0; c < C; ++c)
            for (int64_t i = 0; i < kh; ++i)
              for (int64_t j = 0; j < kw; ++j) {
                const int64_t h = ho * g.stride - g.padding + i, v = wo * g.stride - g.padding + j;
                if (h < 0 || h >= H || v < 0 || v >= W) continue;
                const int64_t xi = ((s * C + c) * H + h) * W + v, wi = ((o * C + c) * kh + i) * kw + j;
                d.y[yi] += (long double)w[wi] * x[xi], d.y_scale[yi] += std::abs((long double)w[wi] * x[xi]);
                d.dw[wi] += (long double)dy[yi] * x[xi], d.dw_scale[wi] += std::abs((long double)dy[yi] * x[xi]);
                d.dx[xi] += (long double)dy[yi] * w[wi], d.dx_scale[xi] += std::abs((long double)dy[yi] * w[wi]);
              }
        }
  return d;
}

// Each output within (terms + 2) rounding errors of its magnitude scale
// (Higham's bound for a sum of products), terms = the patch size or, for
// dw, the patch positions of the whole batch.
void check_close(const std::vector<double>& got, const std::vector<long double>& want,
                 const std::vector<long double>& scale, double terms, const char* what) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO(what << "[" << i << "]: got " << got[i] << ", want " << double(want[i]));
    REQUIRE(std::abs(got[i] - double(want[i])) <= (terms + 2) * 2.3e-16 * double(scale[i]) + 1e-300);
  }
}

}  // namespace

TEST_CASE("Cpu conv2d: banded, whole-batch and direct forms match a direct convolution", "[cpu][conv]") {
  struct Case {
    int64_t n, cin, cout, h, w, k, stride, pad;
  };
  const Case cases[] = {{3, 3, 5, 7, 6, 3, 1, 1},  {2, 3, 4, 8, 7, 3, 2, 1}, {2, 6, 3, 4, 5, 1, 1, 0},
                        {1, 2, 3, 9, 8, 5, 3, 2},  {3, 2, 2, 6, 6, 3, 1, 0}, {17, 2, 3, 5, 4, 3, 1, 1},
                        {2, 3, 2, 7, 9, 5, 1, 2},  {2, 2, 3, 6, 5, 3, 1, 2}, {2, 2, 3, 5, 1, 5, 1, 2},
                        {2, 2, 3, 1, 6, 3, 1, 1},
                        // "same" convolutions over whole SIMD vectors (the direct form) for 2 to 16 lanes:
                        // rows of 16 and 8, and rows of 4, 2 and 1 taken several to a vector; output
                        // channels that are and are not whole register tiles; a 5x5 kernel
                        {2, 3, 5, 8, 16, 3, 1, 1}, {3, 4, 9, 4, 4, 3, 1, 1}, {2, 3, 8, 8, 2, 3, 1, 1},
                        {2, 5, 3, 4, 1, 3, 1, 1},  {2, 2, 3, 8, 8, 5, 1, 2}, {1, 9, 16, 16, 8, 3, 1, 1},
                        {2, 3, 32, 8, 8, 3, 1, 1}, {2, 2, 16, 8, 8, 5, 1, 2}, {17, 2, 16, 4, 8, 3, 1, 1}};
  std::map<haze::backend::SimdIsa, int> direct_cases, direct_dw_cases;
#if defined(HAZE_DIRECT_CONV)
  std::vector<const cpu_conv::DirectKernels<double>*> direct_kernel_sets;
  for (auto isa : {haze::backend::SimdIsa::baseline, haze::backend::SimdIsa::avx2, haze::backend::SimdIsa::avx512})
    if (haze::backend::simd_isa_available(isa)) direct_kernel_sets.push_back(&cpu_conv::direct_kernels_for<double>(isa));
#endif
  for (const Case& cs : cases) {
    const ConvGeometry g{cs.cin, cs.h, cs.w, cs.k, cs.k, cs.stride, cs.pad};
    const Shape x_shape{cs.n, cs.cin, cs.h, cs.w}, w_shape{cs.cout, g.patch()};
    const Shape y_shape{cs.n, cs.cout, g.out_height(), g.out_width()};
    const auto xv = haze::test::uniform<double>(x_shape.numel(), 1);
    const auto wv = haze::test::uniform<double>(w_shape.numel(), 2);
    const auto bv = haze::test::uniform<double>(cs.cout, 3), dyv = haze::test::uniform<double>(y_shape.numel(), 4);
    const auto dw0 = haze::test::uniform<double>(w_shape.numel(), 5);  // dw accumulates onto this
    const Direct want = direct(xv, wv, bv, dyv, cs.n, cs.cout, g);
    const Tensor x = Tensor::from_host(x_shape, xv), w = Tensor::from_host(w_shape, wv);
    const Tensor b = Tensor::from_host({cs.cout}, bv), dy = Tensor::from_host(y_shape, dyv);
    std::vector<long double> dw_want(want.dw.size()), dw_scale(want.dw.size());
    for (size_t i = 0; i < dw_want.size(); ++i) {
      dw_want[i] = want.dw[i] + dw0[i];
      dw_scale[i] = want.dw_scale[i] + std::abs(dw0[i]);
    }
    const double dw_terms = double(cs.n * g.out_height() * g.out_width());

    // band heights of 1 and 2 rows, all rows, and whatever the real budget gives
    for (int64_t rows : {int64_t(1), int64_t(2), g.out_height(), int64_t(0)}) {
      CAPTURE(cs.n, cs.cin, cs.cout, cs.h, cs.w, cs.k, cs.stride, cs.pad, rows);
      const auto bands_over = [&](int64_t extent, const ConvGeometry& geometry, int64_t weight_rows) {
        return rows == 0 ? cpu_conv::bands_of<double>(geometry, weight_rows, cpu_conv::cpu_band_bytes)
                         : cpu_conv::Bands{std::min(rows, extent), (extent + rows - 1) / rows};
      };
      const cpu_conv::Bands bands = bands_over(g.out_height(), g, cs.cout);
      const cpu_conv::Bands dx_bands = bands_over(cs.h, cpu_conv::dx_geometry(g, cs.cout), cs.cin);
      Tensor y = Tensor::full(y_shape, std::nan("")), dx = Tensor::full(x_shape, std::nan(""));
      Tensor dw = Tensor::from_host(w_shape, dw0);
      cpu_conv::conv2d_forward_banded(x, w, b, g, y, bands);
      cpu_conv::conv2d_backward_banded(x, w, dy, g, dw, dx, bands, dx_bands);
      check_close(y.to_host(), want.y, want.y_scale, double(g.patch()), "banded y");
      check_close(dw.to_host(), dw_want, dw_scale, dw_terms, "banded dw");
      check_close(dx.to_host(), want.dx, want.dx_scale, double(cs.cout * cs.k * cs.k), "banded dx");
    }
#if defined(HAZE_DIRECT_CONV)
    for (const auto* kernels : direct_kernel_sets) {  // the tiles of every ISA this processor runs
      if (!cpu_conv::direct_conv_applies<double>(g, *kernels)) continue;
      CAPTURE(cs.n, cs.cin, cs.cout, cs.h, cs.w, cs.k, haze::backend::simd_isa_name(kernels->isa), kernels->lanes);
      Tensor y = Tensor::full(y_shape, std::nan("")), dx = Tensor::full(x_shape, std::nan(""));
      cpu_conv::conv2d_forward_direct(x, w, b, g, y, *kernels);
      cpu_conv::conv2d_data_grad_direct(w, dy, g, dx, *kernels);
      check_close(y.to_host(), want.y, want.y_scale, double(g.patch()), "direct y");
      check_close(dx.to_host(), want.dx, want.dx_scale, double(cs.cout * cs.k * cs.k), "direct dx");
      ++direct_cases[kernels->isa];
      if (cpu_conv::direct_weight_grad_applies<double>(g, cs.cout, *kernels)) {
        Tensor dw = Tensor::from_host(w_shape, dw0);
        cpu_conv::conv2d_weight_grad_direct(x, dy, g, dw, *kernels);
        check_close(dw.to_host(), dw_want, dw_scale, dw_terms, "direct dw");
        ++direct_dw_cases[kernels->isa];
      }
    }
#endif
    Tensor y = Tensor::full(y_shape, std::nan("")), dx = Tensor::full(x_shape, std::nan(""));
    Tensor dw = Tensor::from_host(w_shape, dw0);
    detail::conv2d_forward_whole_batch(x, w, b, g, y);
    detail::conv2d_backward_whole_batch(x, w, dy, g, dw, dx);
    check_close(y.to_host(), want.y, want.y_scale, double(g.patch()), "whole-batch y");
    check_close(dw.to_host(), dw_want, dw_scale, dw_terms, "whole-batch dw");
    check_close(dx.to_host(), want.dx, want.dx_scale, double(cs.cout * cs.k * cs.k), "whole-batch dx");
  }
#if defined(HAZE_DIRECT_CONV)
  for (const auto* kernels : direct_kernel_sets) {  // at every SIMD width, several cases take the direct form
    CAPTURE(haze::backend::simd_isa_name(kernels->isa));
    CHECK(direct_cases[kernels->isa] >= 4);
    CHECK(direct_dw_cases[kernels->isa] >= 2);
  }
#endif
}

TEST_CASE("Cpu conv2d bands fit the budget, cover the image, and outnumber the weights", "[cpu][conv]") {
  const ConvGeometry g{64, 32, 32, 3, 3, 1, 1};  // 576 x 32 floats of columns per output row
  const auto bands = cpu_conv::bands_of<float>(g, 8, 256 << 10);
  CHECK(bands.rows == (256 << 10) / (576 * 32 * 4));  // 3 rows fit; 8 weight rows need only 1
  CHECK(bands.rows * bands.count >= 32);
  CHECK((bands.count - 1) * bands.rows < 32);
  CHECK(cpu_conv::bands_of<float>(g, 64, 256 << 10).rows == 8);  // 4 x 64 columns = 8 rows of 32
  CHECK(cpu_conv::bands_of<float>(g, 1024, 256 << 10).rows == 32);  // capped at the image
  const ConvGeometry huge{4096, 4, 64, 3, 3, 1, 1};  // one row exceeds the budget: still one row per band
  CHECK(cpu_conv::bands_of<float>(huge, 1, 256 << 10).rows == 1);
}

TEST_CASE("ops::conv2d rejects mismatched shapes", "[cpu][conv][errors]") {
  const ConvGeometry g{3, 6, 6, 3, 3, 1, 1};
  const Tensor x = Tensor::zeros({2, 3, 6, 6}), w = Tensor::zeros({4, 27}), b = Tensor::zeros({4});
  Tensor y = Tensor::zeros({2, 4, 5, 6});
  CHECK_THROWS_WITH(haze::ops::conv2d_forward(x, w, b, g, y),
                    haze::test::mentions("y must be [2, 4, 6, 6], got [2, 4, 5, 6]"));
  const Tensor bad_w = Tensor::zeros({4, 26});
  Tensor y_ok = Tensor::zeros({2, 4, 6, 6});
  CHECK_THROWS_WITH(haze::ops::conv2d_forward(x, bad_w, b, g, y_ok),
                    haze::test::mentions("weights must be [Cout, 27], got [4, 26]"));
  const Tensor bad_b = Tensor::zeros({3});
  CHECK_THROWS_WITH(haze::ops::conv2d_forward(x, w, bad_b, g, y_ok), haze::test::mentions("bias must be [4], got [3]"));
  Tensor dw = Tensor::zeros({4, 27}), dx = Tensor::zeros({2, 3, 6, 6});
  CHECK_THROWS_WITH(haze::ops::conv2d_backward(x, w, y, g, dw, dx),
                    haze::test::mentions("dy [2, 4, 5, 6] does not match the forward output [2, 4, 6, 6]"));
}

#if defined(_OPENMP)
TEST_CASE("Cpu conv2d gives the same bits on 1 and 2 threads", "[cpu][conv]") {
  // Large enough for the parallel loops to engage (Cpu::parallel_threshold);
  // 32 output channels are whole tiles of every form, and a batch of one
  // splits the direct form's output channels between the threads.
  const ConvGeometry g{8, 16, 16, 3, 3, 1, 1};
  using FloatTensor = haze::Tensor<float, Cpu>;
  for (int64_t n : {6, 1}) {
    CAPTURE(n);
    const auto x = FloatTensor::from_host({n, 8, 16, 16}, haze::test::uniform<float>(n * 8 * 16 * 16, 1));
    const auto w = FloatTensor::from_host({32, 72}, haze::test::uniform<float>(32 * 72, 2));
    const auto b = FloatTensor::from_host({32}, haze::test::uniform<float>(32, 3));
    const auto dy = FloatTensor::from_host({n, 32, 16, 16}, haze::test::uniform<float>(n * 32 * 16 * 16, 4));
    const auto run = [&](int threads) {
      const int saved = omp_get_max_threads();
      omp_set_num_threads(threads);
      FloatTensor y({n, 32, 16, 16}), dx({n, 8, 16, 16});
      FloatTensor dw = FloatTensor::zeros({32, 72});
      haze::ops::conv2d_forward(x, w, b, g, y);
      haze::ops::conv2d_backward(x, w, dy, g, dw, dx);
      omp_set_num_threads(saved);
      auto all = y.to_host();
      for (auto v : dw.to_host()) all.push_back(v);
      for (auto v : dx.to_host()) all.push_back(v);
      return all;
    };
    CHECK(run(1) == run(2));
  }
}
#endif
