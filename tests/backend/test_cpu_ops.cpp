// Every Cpu primitive, in float and double, against naive loops in long
// double. Tolerances are stated where they are used, with the reason.
#include <haze/haze.hpp>
#include <haze/nn/activation.hpp>
#include <haze/ops/layout.hpp>
#include <haze/ops/softmax.hpp>

#include <atomic>
#include <cmath>
#include <limits>
#if defined(_OPENMP)
#include <omp.h>
#endif

#include "test_support.hpp"

using haze::Shape;
using haze::Transpose;
using haze::backend::Cpu;
using haze::test::sentinel;
using haze::test::uniform;

namespace {

template <class T>
using Tensor = haze::Tensor<T, Cpu>;

template <class T>
Tensor<T> random_tensor(Shape shape, uint64_t seed) {
  return Tensor<T>::from_host(shape, uniform<T>(shape.numel(), seed));
}

template <class T>
Tensor<T> sentinel_tensor(Shape shape) {
  return Tensor<T>::full(shape, sentinel<T>());
}

template <class T>
constexpr double eps() {
  return std::numeric_limits<T>::epsilon();
}

struct FusedMultiplyAdd {  // a three-input map: a * b + c
  template <class T>
  HAZE_HD T operator()(T a, T b, T c) const { return a * b + c; }
};

struct Halve {
  template <class T>
  HAZE_HD T operator()(T a) const { return a / T(2); }
};

struct IndexSquared {
  HAZE_HD double operator()(int64_t i) const { return double(i) * double(i); }
};

}  // namespace

// Sizes: small, odd, and past Cpu::parallel_threshold so the OpenMP path runs.
static const int64_t kSizes[] = {1, 7, 1000, 70001};

TEMPLATE_TEST_CASE("Cpu elementwise ops match naive loops exactly", "[cpu][elementwise]", float, double) {
  using T = TestType;
  for (int64_t n : kSizes) {
    CAPTURE(n);
    const auto a = random_tensor<T>({n}, 1), b = random_tensor<T>({n}, 2), c = random_tensor<T>({n}, 3);
    const auto ha = a.to_host(), hb = b.to_host(), hc = c.to_host();
    // One IEEE operation per element on both sides: results are bit-identical.
    auto out = sentinel_tensor<T>({n});
    haze::ops::add(a, b, out);
    auto ho = out.to_host();
    for (int64_t i = 0; i < n; ++i) REQUIRE(ho[i] == T(ha[i] + hb[i]));
    haze::ops::sub(a, b, out);
    ho = out.to_host();
    for (int64_t i = 0; i < n; ++i) REQUIRE(ho[i] == T(ha[i] - hb[i]));
    haze::ops::mul(a, b, out);
    ho = out.to_host();
    for (int64_t i = 0; i < n; ++i) REQUIRE(ho[i] == T(ha[i] * hb[i]));

    haze::ops::map(out, Halve{}, a);
    ho = out.to_host();
    for (int64_t i = 0; i < n; ++i) REQUIRE(ho[i] == ha[i] / T(2));
    haze::ops::map(out, FusedMultiplyAdd{}, a, b, c);
    ho = out.to_host();
    for (int64_t i = 0; i < n; ++i) REQUIRE(ho[i] == T(T(ha[i] * hb[i]) + hc[i]));

    auto indexed = sentinel_tensor<T>({n});
    haze::ops::map_index(indexed, IndexSquared{});
    ho = indexed.to_host();
    for (int64_t i = 0; i < n; ++i) REQUIRE(ho[i] == T(double(i) * double(i)));

    // axpy and scale go through Eigen's vectorised kernels: still one
    // multiply and one add per element, so exact.
    auto y = b.clone();
    haze::ops::axpy(T(0.75), a, y);
    ho = y.to_host();
    for (int64_t i = 0; i < n; ++i) REQUIRE(ho[i] == T(hb[i] + T(T(0.75) * ha[i])));
    haze::ops::scale(y, T(-3));
    const auto hy = y.to_host();
    for (int64_t i = 0; i < n; ++i) REQUIRE(hy[i] == T(ho[i] * T(-3)));

    haze::ops::fill(out, T(2.5));
    CHECK(out.to_host() == std::vector<T>(n, T(2.5)));
    haze::ops::copy(a, out);
    CHECK(out.to_host() == ha);
  }
}

// A default x86 build runs for_each_index's loops compiled for AVX2 or
// AVX-512 where the processor has them (backend/cpu/index_loop.hpp), with
// multiply-adds left unfused: every loop this build holds must give the
// SSE2 loop's bits. SiLU's passes (fast_exp, divisions, products of sums)
// are where fusing would show.
TEMPLATE_TEST_CASE("Cpu elementwise loops give the same bits at every ISA", "[cpu][elementwise]", float, double) {
  using T = TestType;
  namespace bd = haze::backend::detail;
  const int64_t n = 4099;  // odd: the vector loops' remainders run too
  auto x = uniform<T>(n, 5), dy = uniform<T>(n, 6), c = uniform<T>(n, 7);
  for (auto& v : x) v *= T(12);  // [-12, 12]: SiLU's exp far from 1 on both sides
  using Forward = haze::ops::detail::MapKernel<T, haze::nn::SiluForward, 1>;
  using Backward = haze::ops::detail::MapKernel<T, haze::nn::SiluBackward, 2>;
  using Fma = haze::ops::detail::MapKernel<T, FusedMultiplyAdd, 3>;
  struct Outputs {
    std::vector<T> forward, backward, fma;
  };
  const auto run = [&](auto forward_loop, auto backward_loop, auto fma_loop) {
    Outputs out{std::vector<T>(n), std::vector<T>(n), std::vector<T>(n)};
    forward_loop(Forward{out.forward.data(), {x.data()}, {}}, 0, n);
    backward_loop(Backward{out.backward.data(), {x.data(), dy.data()}, {}}, 0, n);
    fma_loop(Fma{out.fma.data(), {x.data(), dy.data(), c.data()}, {}}, 0, n);
    return out;
  };
  const Outputs baseline = run(&bd::index_loop<Forward>, &bd::index_loop<Backward>, &bd::index_loop<Fma>);
  for (int64_t i = 0; i < n; ++i) REQUIRE(baseline.fma[i] == T(T(x[i] * dy[i]) + c[i]));
  int loops = 0;
  const auto same_bits = [&](const char* name, const Outputs& out) {
    CAPTURE(name);
    ++loops;
    const auto differing = [](const std::vector<T>& a, const std::vector<T>& b) {
      int64_t count = 0;
      for (size_t i = 0; i < a.size(); ++i) count += a[i] != b[i];
      return count;
    };
    CHECK(differing(out.forward, baseline.forward) == 0);
    CHECK(differing(out.backward, baseline.backward) == 0);
    CHECK(differing(out.fma, baseline.fma) == 0);
  };
#if defined(HAZE_SIMD_DISPATCH)
  if (haze::backend::simd_isa_available(haze::backend::SimdIsa::avx2))
    same_bits("avx2", run(&bd::simd_avx2_without_fma::index_loop<Forward>,
                          &bd::simd_avx2_without_fma::index_loop<Backward>, &bd::simd_avx2_without_fma::index_loop<Fma>));
#endif
#if defined(HAZE_AVX512_INDEX_LOOP)
  if (haze::backend::simd_isa_available(haze::backend::SimdIsa::avx512))
    same_bits("avx512", run(&bd::simd_avx512_without_fma::index_loop<Forward>,
                            &bd::simd_avx512_without_fma::index_loop<Backward>,
                            &bd::simd_avx512_without_fma::index_loop<Fma>));
#endif
  if (loops == 0) WARN("this build or processor holds only the baseline loop: nothing to compare");
}

TEMPLATE_TEST_CASE("Cpu ops allow the output to alias an input", "[cpu][elementwise]", float, double) {
  using T = TestType;
  auto a = random_tensor<T>({100}, 4);
  const auto before = a.to_host();
  haze::ops::add(a, a, a);
  const auto after = a.to_host();
  for (size_t i = 0; i < before.size(); ++i) REQUIRE(after[i] == before[i] + before[i]);
}

TEMPLATE_TEST_CASE("Cpu sum and sum_axes match naive loops", "[cpu][reduce]", float, double) {
  using T = TestType;
  // haze accumulates in double, the reference in long double: the gap is the
  // double accumulator's error, at most n 2^-53 sum|x| (Higham), plus the
  // final rounding to T.
  SECTION("whole tensor") {
    for (int64_t n : kSizes) {
      const auto x = random_tensor<T>({n}, 5);
      long double ref = 0, abs_sum = 0;
      for (T v : x.to_host()) ref += v, abs_sum += std::abs(v);
      CHECK(std::abs(haze::ops::sum(x) - double(ref)) <= n * 0x1p-52 * double(abs_sum));
    }
  }
  SECTION("every [outer, mid, inner] view, with transforms and beta") {
    // (the Cpu sums columns, inner = 1, in blocks of 64: {300, 130, 1} has three, one partial)
    const int64_t views[][3] = {{1, 1, 1}, {1, 5, 7}, {4, 3, 1}, {3, 4, 5}, {2, 64, 1024}, {70000, 2, 1}, {300, 130, 1}};
    for (const auto& v : views) {
      const int64_t outer = v[0], mid = v[1], inner = v[2];
      CAPTURE(outer, mid, inner);
      const auto x = random_tensor<T>({outer * mid * inner}, 6);
      const auto hx = x.to_host();
      const auto previous = uniform<T>(mid, 7);
      for (int variant = 0; variant < 4; ++variant) {  // plain, Square, beta, Abs
        CAPTURE(variant);
        auto out = variant == 2 ? Tensor<T>::from_host({mid}, previous) : sentinel_tensor<T>({mid});
        if (variant == 0) haze::ops::sum_axes(x, outer, mid, inner, out);
        if (variant == 1) haze::ops::sum_axes(x, outer, mid, inner, out, haze::ops::Square{});
        if (variant == 2) haze::ops::sum_axes(x, outer, mid, inner, out, haze::ops::Identity{}, T(0.5));
        if (variant == 3) haze::ops::sum_axes(x, outer, mid, inner, out, haze::ops::Abs{});
        const auto got = out.to_host();
        for (int64_t m = 0; m < mid; ++m) {
          long double ref = 0, abs_sum = 0;
          for (int64_t o = 0; o < outer; ++o)
            for (int64_t i = 0; i < inner; ++i) {
              const long double value = hx[(o * mid + m) * inner + i];
              const long double term = variant == 1 ? value * value : variant == 3 ? std::abs(value) : value;
              ref += term;
              abs_sum += std::abs(term);
            }
          if (variant == 2) ref += 0.5L * previous[m], abs_sum += std::abs(0.5L * previous[m]);
          // The double accumulator's own error (count 2^-53 sum|terms|) plus
          // the final rounding to T (eps(T) |ref|, half an ulp with margin).
          const double count = double(outer * inner + 1);
          REQUIRE(std::abs(got[m] - double(ref)) <=
                  eps<T>() * std::abs(double(ref)) + count * 0x1p-53 * double(abs_sum));
        }
      }
    }
  }
  SECTION("the named views pick the right axes") {
    const auto x = random_tensor<T>({2, 6, 3, 5}, 8);
    const auto hx = x.to_host();
    auto channel = sentinel_tensor<T>({6});
    haze::ops::sum_per_channel(x, channel);
    auto group = sentinel_tensor<T>({2, 3});
    haze::ops::sum_per_group(x, 3, group);
    const auto m = x.reshape({12, 15});
    auto rows = sentinel_tensor<T>({12}), cols = sentinel_tensor<T>({15});
    haze::ops::sum_rows(m, rows);
    haze::ops::sum_columns(m, cols);
    const auto hc = channel.to_host(), hg = group.to_host(), hr = rows.to_host(), hcol = cols.to_host();
    // 30 or fewer terms of |x| <= 1: the double accumulator's error is at
    // most 30 2^-53 * 30 absolute; then one rounding to T.
    auto at = [&](int n, int c, int h, int w) { return (long double)hx[((n * 6 + c) * 3 + h) * 5 + w]; };
    for (int c = 0; c < 6; ++c) {
      long double ref = 0;
      for (int n = 0; n < 2; ++n)
        for (int h = 0; h < 3; ++h)
          for (int w = 0; w < 5; ++w) ref += at(n, c, h, w);
      CHECK(hc[c] == Approx(double(ref)).epsilon(eps<T>()).margin(900 * 0x1p-53));
    }
    for (int n = 0; n < 2; ++n)
      for (int g = 0; g < 3; ++g) {
        long double ref = 0;
        for (int c = 2 * g; c < 2 * g + 2; ++c)
          for (int h = 0; h < 3; ++h)
            for (int w = 0; w < 5; ++w) ref += at(n, c, h, w);
        CHECK(hg[n * 3 + g] == Approx(double(ref)).epsilon(eps<T>()).margin(900 * 0x1p-53));
      }
    for (int r = 0; r < 12; ++r) {
      long double ref = 0;
      for (int k = 0; k < 15; ++k) ref += hx[r * 15 + k];
      CHECK(hr[r] == Approx(double(ref)).epsilon(eps<T>()).margin(900 * 0x1p-53));
    }
    for (int k = 0; k < 15; ++k) {
      long double ref = 0;
      for (int r = 0; r < 12; ++r) ref += hx[r * 15 + k];
      CHECK(hcol[k] == Approx(double(ref)).epsilon(eps<T>()).margin(900 * 0x1p-53));
    }
  }
}

namespace {

// Naive row-major batched product in long double, with |op(A)| |op(B)| for
// the error bound.
template <class T>
void naive_gemm(bool ta, bool tb, int64_t batch, int64_t M, int64_t N, int64_t K, bool share_a, bool share_b,
                const std::vector<T>& A, const std::vector<T>& B, std::vector<long double>& C,
                std::vector<long double>& abs_product) {
  C.assign(batch * M * N, 0);
  abs_product.assign(batch * M * N, 0);
  for (int64_t b = 0; b < batch; ++b) {
    const T* a = A.data() + (share_a ? 0 : b * M * K);
    const T* bm = B.data() + (share_b ? 0 : b * K * N);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        long double dot = 0, abs_dot = 0;
        for (int64_t k = 0; k < K; ++k) {
          const long double x = ta ? a[k * M + i] : a[i * K + k];
          const long double y = tb ? bm[j * K + k] : bm[k * N + j];
          dot += x * y;
          abs_dot += std::abs(x * y);
        }
        C[(b * M + i) * N + j] = dot;
        abs_product[(b * M + i) * N + j] = abs_dot;
      }
  }
}

}  // namespace

TEMPLATE_TEST_CASE("Cpu matmul matches a naive product in every form", "[cpu][gemm]", float, double) {
  using T = TestType;
  struct Case {
    int64_t batch, M, N, K;
    bool share_a, share_b;
  };
  // Odd sizes, a size past Eigen's blocking panels, and both broadcast forms.
  const Case cases[] = {{1, 1, 1, 1, false, false}, {1, 7, 5, 3, false, false}, {1, 67, 130, 70, false, false},
                        {3, 4, 6, 5, false, false},  {3, 4, 6, 5, true, false},   {3, 4, 6, 5, false, true}};
  for (const Case& cs : cases) {
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (int scaling = 0; scaling < 2; ++scaling) {
          CAPTURE(cs.batch, cs.M, cs.N, cs.K, cs.share_a, cs.share_b, ta, tb, scaling);
          const bool batched = cs.batch > 1;
          const Shape a_shape = (batched && !cs.share_a) ? Shape{cs.batch, ta ? cs.K : cs.M, ta ? cs.M : cs.K}
                                                          : Shape{ta ? cs.K : cs.M, ta ? cs.M : cs.K};
          const Shape b_shape = (batched && !cs.share_b) ? Shape{cs.batch, tb ? cs.N : cs.K, tb ? cs.K : cs.N}
                                                          : Shape{tb ? cs.N : cs.K, tb ? cs.K : cs.N};
          const Shape c_shape = batched ? Shape{cs.batch, cs.M, cs.N} : Shape{cs.M, cs.N};
          const auto a = random_tensor<T>(a_shape, 10), b = random_tensor<T>(b_shape, 11);
          const T alpha = scaling ? T(-1.5) : T(1), beta = scaling ? T(0.25) : T(0);
          // beta = 0 must ignore C entirely: start from NaN. Otherwise start from known values.
          const auto c0 = uniform<T>(c_shape.numel(), 12);
          auto c = scaling ? Tensor<T>::from_host(c_shape, c0) : sentinel_tensor<T>(c_shape);
          haze::ops::matmul(a, b, c, ta ? Transpose::Yes : Transpose::No, tb ? Transpose::Yes : Transpose::No,
                            alpha, beta);
          std::vector<long double> ref, abs_product;
          naive_gemm(ta, tb, cs.batch, cs.M, cs.N, cs.K, !batched || cs.share_a, !batched || cs.share_b,
                     a.to_host(), b.to_host(), ref, abs_product);
          const auto got = c.to_host();
          for (size_t i = 0; i < got.size(); ++i) {
            const long double expected = alpha * ref[i] + (scaling ? beta * (long double)c0[i] : 0.0L);
            // Higham's dot-product bound, gamma_K |A||B| with gamma_K ~ K u,
            // plus the roundings of alpha and beta terms.
            const double bound = (cs.K + 2) * eps<T>() * (std::abs(double(alpha)) * double(abs_product[i]) +
                                                        std::abs(double(beta * c0[i])));
            REQUIRE(std::abs(got[i] - double(expected)) <= bound);
          }
        }
  }
}

// Whichever product this build and processor run (the packed GEMM, or
// Eigen on SSE2-only x86 and on ARM: run with HAZE_CPU_ISA=sse2 to get
// Eigen on x86): the same bits on 1, 2 and 3 threads. Eigen used to split
// a product this large between threads, with a k block that followed the
// thread count (64 x 320 x 576, a 3 x 3 convolution of 64 channels on five
// 8 x 8 images, changed 18684 of 20480 floats on SSE2; 300^3 changed none).
TEMPLATE_TEST_CASE("Cpu matmul gives the same bits on any thread count", "[cpu][gemm][threads]", float, double) {
  using T = TestType;
  const int64_t M = 64, N = 320, K = 576;
  const auto a = random_tensor<T>(Shape{M, K}, 20), b = random_tensor<T>(Shape{K, N}, 21);
  const int saved = omp_get_max_threads();
  std::vector<std::vector<T>> by_threads;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    Tensor<T> c(Shape{M, N});
    haze::ops::matmul(a, b, c);
    by_threads.push_back(c.to_host());
    CHECK(omp_get_max_threads() == threads);  // Cpu::gemm gives the caller's count back
  }
  omp_set_num_threads(saved);
  CHECK(by_threads[0] == by_threads[1]);
  CHECK(by_threads[0] == by_threads[2]);
}

// The packed product that x86 builds run for AVX2 and AVX-512
// (backend/cpu/packed_gemm.hpp), at every ISA this processor has: sizes
// across its register tile (MR x NR), its k block (KC = 256), its row
// block (MC) and its column block (NC = 3072), with the bound above; and
// the same bits on 1 and 2 threads, split by rows (151 x 40) and by
// columns (20 x 200).
TEMPLATE_TEST_CASE("Cpu packed GEMM matches a naive product at every ISA", "[cpu][gemm]", float, double) {
  using T = TestType;
  namespace bd = haze::backend::detail;
  struct Case {
    int64_t M, N, K;
  };
  const Case cases[] = {{1, 1, 1}, {5, 17, 3}, {13, 33, 257}, {151, 40, 300}, {20, 200, 80}, {3, 3100, 5}, {0, 4, 3}, {4, 5, 0}};
  int kernels = 0;
  for (auto isa : {haze::backend::SimdIsa::baseline, haze::backend::SimdIsa::avx2, haze::backend::SimdIsa::avx512}) {
    const bd::GemmKernel<T>* kernel = haze::backend::simd_isa_available(isa) ? bd::packed_gemm_kernel<T>(isa) : nullptr;
    if (!kernel) continue;
    ++kernels;
    for (const Case& cs : cases)
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          for (int scaling = 0; scaling < 2; ++scaling) {
            CAPTURE(haze::backend::simd_isa_name(isa), cs.M, cs.N, cs.K, ta, tb, scaling);
            const auto a = uniform<T>(cs.M * cs.K, 20), b = uniform<T>(cs.K * cs.N, 21);
            const auto c0 = uniform<T>(cs.M * cs.N, 22);
            const T alpha = scaling ? T(-1.5) : T(1), beta = scaling ? T(0.25) : T(0);
            std::vector<T> c = scaling ? c0 : std::vector<T>(c0.size(), std::numeric_limits<T>::quiet_NaN());
            bd::packed_gemm(*kernel, ta, tb, cs.M, cs.N, cs.K, alpha, a.data(), ta ? cs.M : cs.K, b.data(),
                            tb ? cs.K : cs.N, beta, c.data(), cs.N);
            std::vector<long double> ref, abs_product;
            naive_gemm(ta, tb, 1, cs.M, cs.N, cs.K, true, true, a, b, ref, abs_product);
            for (size_t i = 0; i < c.size(); ++i) {
              const long double expected = alpha * ref[i] + (scaling ? beta * (long double)c0[i] : 0.0L);
              const double bound = (cs.K + 2) * eps<T>() * (std::abs(double(alpha)) * double(abs_product[i]) +
                                                          std::abs(double(beta * c0[i])));
              REQUIRE(std::abs(c[i] - double(expected)) <= bound);
            }
#if defined(_OPENMP)
            if (scaling == 0 && cs.M * cs.N * cs.K >= (1 << 18)) {  // large enough to be split between threads
              const int threads_before = omp_get_max_threads();
              std::vector<std::vector<T>> by_threads;
              for (int threads : {1, 2}) {
                omp_set_num_threads(threads);
                by_threads.emplace_back(c.size());
                bd::packed_gemm(*kernel, ta, tb, cs.M, cs.N, cs.K, alpha, a.data(), ta ? cs.M : cs.K, b.data(),
                                tb ? cs.K : cs.N, beta, by_threads.back().data(), cs.N);
              }
              omp_set_num_threads(threads_before);
              REQUIRE(by_threads[0] == by_threads[1]);
            }
#endif
          }
  }
  if (kernels == 0) WARN("no packed GEMM in this build or on this processor (SSE2 or ARM: Eigen): nothing to check");
}

// The Cpu runs these by rows and tiles (prefers_row_calls); odd extents
// leave partial tiles and rows shorter than the vector lanes. Moves and
// single adds are exact, so they must match bit for bit.
TEMPLATE_TEST_CASE("Cpu layout ops match naive loops exactly", "[cpu][layout]", float, double) {
  using T = TestType;
  for (const Shape shape : {Shape{2, 19, 37}, Shape{1, 16, 32}, Shape{3, 1, 5}}) {
    CAPTURE(shape);
    const int64_t n = shape[0], a = shape[1], b = shape[2];
    const auto x = random_tensor<T>(shape, 1);
    auto y = sentinel_tensor<T>({n, b, a});
    haze::ops::transpose12(x, y);
    const auto xs = x.to_host(), ys = y.to_host();
    for (int64_t s = 0; s < n; ++s)
      for (int64_t i = 0; i < a; ++i)
        for (int64_t j = 0; j < b; ++j) REQUIRE(ys[(s * b + j) * a + i] == xs[(s * a + i) * b + j]);
  }
  {
    const int64_t n = 2, c = 3, h = 5, w = 7;
    const auto x = random_tensor<T>({n, c, h, w}, 2);
    auto up = sentinel_tensor<T>({n, c, 2 * h, 2 * w});
    haze::ops::upsample_nearest2x(x, up);
    const auto dy = random_tensor<T>({n, c, 2 * h, 2 * w}, 3);
    auto dx = sentinel_tensor<T>({n, c, h, w});
    haze::ops::upsample_nearest2x_backward(dy, dx);
    const auto xs = x.to_host(), ups = up.to_host(), dys = dy.to_host(), dxs = dx.to_host();
    for (int64_t p = 0; p < n * c; ++p)
      for (int64_t i = 0; i < 2 * h; ++i)
        for (int64_t j = 0; j < 2 * w; ++j)
          REQUIRE(ups[(p * 2 * h + i) * 2 * w + j] == xs[(p * h + i / 2) * w + j / 2]);
    for (int64_t p = 0; p < n * c; ++p)
      for (int64_t i = 0; i < h; ++i)
        for (int64_t j = 0; j < w; ++j) {
          const T* q = dys.data() + (p * 2 * h + 2 * i) * 2 * w + 2 * j;
          REQUIRE(dxs[(p * h + i) * w + j] == q[0] + q[1] + q[2 * w] + q[2 * w + 1]);  // this order, as documented
        }
  }
  {
    auto y = random_tensor<T>({5, 11}, 4);
    const auto y0 = y.to_host();
    const auto bias = random_tensor<T>({11}, 5);
    haze::ops::add_bias(y, bias);
    const auto ys = y.to_host(), bs = bias.to_host();
    for (int64_t i = 0; i < 55; ++i) REQUIRE(ys[i] == y0[i] + bs[i % 11]);
  }
}

// Softmax against long double: each p within a few ulp of the exact value
// (fast_exp is within 2 ulp, plus the normalising sum and product), plus
// the rounding of s - max, which exp turns into a relative error of
// |s - max| eps / 2; in float, fast_exp clamps arguments below -87, so
// values under exp(-87) may read as exp(-87) (rounded to float). The backward's dot product is
// summed in double, so ds is within a few ulp of its terms' scale.
TEMPLATE_TEST_CASE("Cpu softmax and its backward match naive loops", "[cpu][softmax]", float, double) {
  using T = TestType;
  const double eps = std::numeric_limits<T>::epsilon();
  for (const int64_t cols : {1, 7, 8, 37, 256}) {
    CAPTURE(cols);
    const int64_t rows = 3;
    auto scores = uniform<T>(rows * cols, 6);
    for (auto& v : scores) v *= 8;
    scores[2 * cols - 1] = 120;  // a maximum in the last column, beyond float's exp range: the shift must find it
    auto p = Tensor<T>::from_host({rows, cols}, scores);
    const auto s = p.to_host();
    haze::ops::softmax_rows(p);
    const auto dp = random_tensor<T>({rows, cols}, 7);
    auto d = dp.clone();
    haze::ops::softmax_rows_backward(p, d);
    const auto ps = p.to_host(), dps = dp.to_host(), ds = d.to_host();
    for (int64_t r = 0; r < rows; ++r) {
      long double top = s[r * cols], total = 0, dot = 0, dot_scale = 0;
      for (int64_t j = 0; j < cols; ++j) top = std::max<long double>(top, s[r * cols + j]);
      for (int64_t j = 0; j < cols; ++j) total += std::exp((long double)s[r * cols + j] - top);
      const long double clamp_floor = std::is_same_v<T, float> ? std::exp(-87.0L) * (1 + 4 * eps) : 0;
      for (int64_t j = 0; j < cols; ++j) {
        const long double shift = top - s[r * cols + j], want = std::exp(-shift) / total;
        REQUIRE(std::abs(ps[r * cols + j] - want) <= (8 + shift) * eps * want + clamp_floor);
      }
      for (int64_t j = 0; j < cols; ++j) {
        dot += (long double)ps[r * cols + j] * dps[r * cols + j];
        dot_scale += std::abs((long double)ps[r * cols + j] * dps[r * cols + j]);
      }
      for (int64_t j = 0; j < cols; ++j) {
        const long double p_j = ps[r * cols + j], want = p_j * (dps[r * cols + j] - dot);
        REQUIRE(std::abs(ds[r * cols + j] - want) <= 4 * eps * p_j * (std::abs(dps[r * cols + j]) + dot_scale));
      }
    }
  }
}

TEST_CASE("Cpu::in_batch_shares covers the batch once, a team of threads per share, and rethrows", "[cpu][threads]") {
  const int saved = omp_get_max_threads(), levels = omp_get_max_active_levels();
  for (int threads : {1, 2, 3, 4}) {
    for (int64_t n : {1, 2, 5, 64}) {
      CAPTURE(threads, n);
      omp_set_num_threads(threads);
      std::vector<int> seen(n, 0), inner_threads(n, 0), team(n, 0);
      std::atomic<int> empty_calls{0};  // counted, not asserted: Catch's macros are not thread-safe
      Cpu::in_batch_shares(n, [&](int64_t first, int64_t last) {
        if (first >= last) ++empty_calls;
        int size = 0;
#pragma omp parallel
#pragma omp single
        size = omp_get_num_threads();  // the threads a loop of this share gets
        for (int64_t i = first; i < last; ++i) {
          ++seen[i];
          inner_threads[i] = int(Cpu::max_threads());
          team[i] = size;
        }
      });
      // min(n, threads) teams of threads / teams threads each.
      const int team_threads = threads / int(std::min<int64_t>(n, threads));
      CHECK(empty_calls == 0);
      CHECK(seen == std::vector<int>(n, 1));
      CHECK(inner_threads == std::vector<int>(n, team_threads));
      CHECK(team == std::vector<int>(n, team_threads));
      CHECK(Cpu::max_threads() == threads);  // the caller's settings are untouched
      CHECK(omp_get_max_active_levels() == levels);
      omp_set_num_threads(saved);
    }
  }
  omp_set_num_threads(2);
  CHECK_THROWS_WITH(Cpu::in_batch_shares(4,
                                         [](int64_t first, int64_t) {
                                           if (first > 0) throw haze::Error("share at " + std::to_string(first));
                                         }),
                    "share at 2");
  omp_set_num_threads(saved);
}
