// backend::Device against backend::Cpu, primitive by primitive, in float and
// double. Built twice from this one source: by the host compiler on Thrust's
// OpenMP system (run in CI) and by nvcc on the CUDA system (run on a GPU).
// Device outputs start as NaN, so an element a kernel skipped always fails.
#include <haze/haze.hpp>
#include <haze/ops/im2col.hpp>
#include <haze/ops/layout.hpp>
#include <haze/ops/softmax.hpp>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "test_support.hpp"

using haze::Shape;
using haze::Transpose;
using haze::backend::Cpu;
using haze::backend::Device;
using haze::test::sentinel;
using haze::test::uniform;

namespace {

template <class T, class B>
using Tensor = haze::Tensor<T, B>;

template <class T>
constexpr double eps() {
  return std::numeric_limits<T>::epsilon();
}

// The same random host values on both backends.
template <class T>
std::pair<Tensor<T, Cpu>, Tensor<T, Device>> random_pair(Shape shape, uint64_t seed) {
  const auto values = uniform<T>(shape.numel(), seed);
  return {Tensor<T, Cpu>::from_host(shape, values), Tensor<T, Device>::from_host(shape, values)};
}

template <class T>
Tensor<T, Device> device_sentinel(Shape shape) {
  return Tensor<T, Device>::full(shape, sentinel<T>());
}

template <class T>
void require_close(const Tensor<T, Device>& got, const Tensor<T, Cpu>& expected, double atol, double rtol) {
  const haze::verify::Comparison c = haze::verify::compare(got, expected, atol, rtol);
  std::ostringstream report;
  report << c;
  INFO(report.str());
  REQUIRE(c.ok());
}

struct Affine3 {  // a three-input map
  template <class T>
  HAZE_HD T operator()(T a, T b, T c) const { return a * b + c; }
};

struct ShiftedSquare {  // a sum_axes transform that uses the mid index
  const double* shift;
  template <class T>
  HAZE_HD double operator()(T v, int64_t m) const {
    const double d = double(v) - shift[m];
    return d * d;
  }
};

// Mixing backends in one op must not compile.
template <class A, class B>
concept can_add = requires(const A& a, const B& b, A& out) { haze::ops::add(a, b, out); };
static_assert(can_add<Tensor<float, Cpu>, Tensor<float, Cpu>>);
static_assert(can_add<Tensor<float, Device>, Tensor<float, Device>>);
static_assert(!can_add<Tensor<float, Cpu>, Tensor<float, Device>>);
static_assert(!can_add<Tensor<float, Device>, Tensor<double, Device>>);
static_assert(haze::Backend<Cpu> && haze::Backend<Device>);

const int64_t kSizes[] = {1, 7, 1000, 70001};

}  // namespace

TEMPLATE_TEST_CASE("Device memory: factories, copies and transfers", "[device][memory]", float, double) {
  using T = TestType;
  const auto values = uniform<T>(1003, 1);
  const auto d = Tensor<T, Device>::from_host({1003}, values);
  CHECK(d.to_host() == values);
  CHECK(d.clone().to_host() == values);
  CHECK(d.template to<Cpu>().to_host() == values);
  CHECK(d.template to<Cpu>().template to<Device>().to_host() == values);
  CHECK(Tensor<T, Device>::zeros({3, 5}).to_host() == std::vector<T>(15, T(0)));
  CHECK(Tensor<T, Device>::full({4}, T(-2)).to_host() == std::vector<T>(4, T(-2)));
  auto alias = d.reshape({17, 59});
  CHECK(alias.shares_storage_with(d));

  auto& stats = haze::backend::memory_stats<Device>();
  const int64_t live = stats.live_bytes.load();
  { auto scratch = Tensor<T, Device>::zeros({256}); CHECK(stats.live_bytes.load() == live + 256 * int64_t(sizeof(T))); }
  CHECK(stats.live_bytes.load() == live);
}

// The counters of backend/device_counters.hpp and the allocation cache,
// which benchmarks/device_step_counts.cpp reports per step.
TEST_CASE("Device counts launches, round trips, uploads and fresh allocations", "[device][counters]") {
  const auto& counters = haze::backend::device_counters();
  const auto& stats = haze::backend::memory_stats<Device>();
  const auto host_a = uniform<float>(1000, 1);
  const auto a = Tensor<float, Device>::from_host({1000}, host_a);
  auto out = Tensor<float, Device>({1000});
  const int64_t launches = counters.launches.load(), trips = counters.round_trips.load();
  const int64_t uploads = counters.uploads.load();
  haze::ops::add(a, a, out);  // one elementwise kernel
  CHECK(counters.launches.load() == launches + 1);
  CHECK(counters.round_trips.load() == trips);
  const auto host = out.to_host();
  CHECK(counters.round_trips.load() == trips + 1);
  CHECK(host[7] == 2 * host_a[7]);
  const double total = Device::sum(out.data(), out.numel());  // a launch whose value the host reads
  CHECK(std::isfinite(total));
  CHECK(counters.launches.load() == launches + 2);
  CHECK(counters.round_trips.load() == trips + 2);
  out.assign_from_host(host);
  CHECK(counters.uploads.load() == uploads + 1);
  { const Tensor<float, Device> first({4321}); }  // freed into the cache
  const int64_t fresh = stats.fresh_allocations.load(), requests = stats.allocations.load();
  { const Tensor<float, Device> again({4321}); }  // the same size again: from the cache
  CHECK(stats.allocations.load() == requests + 1);
  CHECK(stats.fresh_allocations.load() == fresh);
}

TEMPLATE_TEST_CASE("Device elementwise ops equal Cpu", "[device][elementwise]", float, double) {
  using T = TestType;
  // One or two IEEE roundings per element on both sides. The only allowed
  // difference is a GPU compiler fusing a*b+c into one FMA (one rounding
  // fewer): 2 eps relative, plus eps of the addend's scale (inputs are O(1)).
  const double rtol = 2 * eps<T>(), atol = 2 * eps<T>();
  for (int64_t n : kSizes) {
    CAPTURE(n);
    auto [ca, da] = random_pair<T>({n}, 2);
    auto [cb, db] = random_pair<T>({n}, 3);
    auto [cc, dc] = random_pair<T>({n}, 4);
    auto cout_ = Tensor<T, Cpu>({n});
    auto dout = device_sentinel<T>({n});

    haze::ops::add(ca, cb, cout_);
    haze::ops::add(da, db, dout);
    require_close(dout, cout_, 0, 0);
    dout = device_sentinel<T>({n});
    haze::ops::sub(ca, cb, cout_);
    haze::ops::sub(da, db, dout);
    require_close(dout, cout_, 0, 0);
    dout = device_sentinel<T>({n});
    haze::ops::mul(ca, cb, cout_);
    haze::ops::mul(da, db, dout);
    require_close(dout, cout_, 0, 0);
    dout = device_sentinel<T>({n});
    haze::ops::map(cout_, Affine3{}, ca, cb, cc);
    haze::ops::map(dout, Affine3{}, da, db, dc);
    require_close(dout, cout_, atol, rtol);

    haze::ops::axpy(T(0.75), ca, cb);
    haze::ops::axpy(T(0.75), da, db);
    require_close(db, cb, atol, rtol);
    haze::ops::scale(cb, T(-3));
    haze::ops::scale(db, T(-3));
    require_close(db, cb, atol, rtol);
    haze::ops::copy(da, dout);
    require_close(dout, ca, 0, 0);
  }
}

TEMPLATE_TEST_CASE("Device reductions equal Cpu", "[device][reduce]", float, double) {
  using T = TestType;
  SECTION("whole-tensor sum") {
    for (int64_t n : kSizes) {
      auto [cx, dx] = random_pair<T>({n}, 5);
      double abs_sum = 0;
      for (T v : cx.to_host()) abs_sum += std::abs(double(v));
      // Both accumulate in double in different orders: n 2^-53 sum|x| bounds the gap.
      CHECK(std::abs(haze::ops::sum(dx) - haze::ops::sum(cx)) <= n * 0x1p-53 * abs_sum);
    }
  }
  SECTION("sum_axes over every view, with transform and beta") {
    // Double accumulation on both sides in different orders: each side is
    // within count 2^-53 sum|terms| of the exact sum (Higham), then rounds
    // to T once (twice with beta). Inputs lie in [-1, 1] and shifts in
    // [-1, 1], so every term is at most 4 in magnitude.
    const int64_t views[][3] = {{1, 1, 1}, {1, 5, 7}, {4, 3, 1}, {3, 4, 5}, {2, 64, 1024}, {70000, 2, 1}};
    for (const auto& v : views) {
      const int64_t outer = v[0], mid = v[1], inner = v[2];
      CAPTURE(outer, mid, inner);
      auto [cx, dx] = random_pair<T>({outer * mid * inner}, 6);
      const double count = double(outer * inner);
      const double atol = 2 * count * 0x1p-53 * (4 * count);
      auto cout_ = Tensor<T, Cpu>({mid});
      auto dout = device_sentinel<T>({mid});
      haze::ops::sum_axes(cx, outer, mid, inner, cout_);
      haze::ops::sum_axes(dx, outer, mid, inner, dout);
      require_close(dout, cout_, atol, eps<T>());

      // (x - shift[m])^2, the shape of a variance pass; shift lives in each backend's memory.
      const auto shifts = uniform<double>(mid, 7);
      const auto cshift = Tensor<double, Cpu>::from_host({mid}, shifts);
      const auto dshift = Tensor<double, Device>::from_host({mid}, shifts);
      haze::ops::sum_axes(cx, outer, mid, inner, cout_, ShiftedSquare{cshift.data()});
      haze::ops::sum_axes(dx, outer, mid, inner, dout, ShiftedSquare{dshift.data()});
      require_close(dout, cout_, atol, eps<T>());

      haze::ops::sum_axes(cx, outer, mid, inner, cout_, haze::ops::Identity{}, T(0.5));
      haze::ops::sum_axes(dx, outer, mid, inner, dout, haze::ops::Identity{}, T(0.5));
      require_close(dout, cout_, atol, 2 * eps<T>());  // two roundings to T so far
    }
  }
  SECTION("named views") {
    auto [cx, dx] = random_pair<T>({2, 6, 3, 5}, 8);
    auto cc = Tensor<T, Cpu>({6});
    auto dc = device_sentinel<T>({6});
    haze::ops::sum_per_channel(cx, cc);
    haze::ops::sum_per_channel(dx, dc);
    // 30 terms of |x| <= 1 per output: each accumulator is within
    // 30 2^-53 * 30 of the exact sum; then one rounding to T.
    require_close(dc, cc, 2 * 0x1p-53 * 900, eps<T>());
    auto cg = Tensor<T, Cpu>({2, 3});
    auto dg = device_sentinel<T>({2, 3});
    haze::ops::sum_per_group(cx, 3, cg);
    haze::ops::sum_per_group(dx, 3, dg);
    require_close(dg, cg, 2 * 0x1p-53 * 900, eps<T>());
  }
}

TEMPLATE_TEST_CASE("Device softmax over rows and its backward equal Cpu", "[device][softmax]", float, double) {
  // On the host the Device runs the Cpu's row functors: the same bits. On
  // CUDA a row per warp: each p is fast_exp (whose polynomial nvcc may
  // contract to FMAs, a few ulp) times the reciprocal of a double sum in
  // another order, rounded once; ds = p (dp - sum dp p) adds one rounding
  // of the sum, scaled by p <= 1 and |dp| <= 1. Hence 8 eps, relative to
  // each element and absolute against values of order 1.
  using T = TestType;
  for (const int64_t cols : {1, 7, 32, 33, 64, 256, 1000}) {
    CAPTURE(cols);
    const Shape shape{3, 5, cols};
    auto [cx, dx] = random_pair<T>(shape, 11);
    haze::ops::scale(cx, T(6)), haze::ops::scale(dx, T(6));  // logits in [-6, 6]
    haze::ops::softmax_rows(cx);
    haze::ops::softmax_rows(dx);
    require_close(dx, cx, 8 * eps<T>(), 8 * eps<T>());
    auto [cd, dd] = random_pair<T>(shape, 12);
    haze::ops::softmax_rows_backward(cx, cd);
    haze::ops::softmax_rows_backward(dx, dd);
    require_close(dd, cd, 8 * eps<T>(), 8 * eps<T>());
  }
}

TEMPLATE_TEST_CASE("Device layout moves and im2col/col2im equal Cpu exactly", "[device][layout]", float, double) {
  // Data movement, and sums of the same terms in the same order (col2im's
  // overlapping patches, the upsample's adjoint): the same functors on
  // both sides, so the same bits. Outputs start as NaN.
  using T = TestType;
  const auto exact = [](const Tensor<T, Device>& got, const Tensor<T, Cpu>& expected) {
    require_close(got, expected, 0, 0);
  };
  auto [cx, dx] = random_pair<T>({2, 6, 5, 7}, 21);
  {
    const Shape s{2, 7, 30};
    auto c3 = cx.reshape({2, 30, 7});
    auto d3 = dx.reshape({2, 30, 7});
    auto cy = Tensor<T, Cpu>(s);
    auto dy = device_sentinel<T>(s);
    haze::ops::transpose12(c3, cy), haze::ops::transpose12(d3, dy);
    exact(dy, cy);
  }
  {
    auto cy = Tensor<T, Cpu>({6, 2, 35});
    auto dy = device_sentinel<T>({6, 2, 35});
    haze::ops::swap_leading(cx, 2, 6, cy), haze::ops::swap_leading(dx, 2, 6, dy);
    exact(dy, cy);
  }
  {
    auto [cs, ds] = random_pair<T>({2, 3, 5, 7}, 22);
    auto cj = Tensor<T, Cpu>({2, 9, 5, 7});
    auto dj = device_sentinel<T>({2, 9, 5, 7});
    haze::ops::concat_channels(cx, cs, cj), haze::ops::concat_channels(dx, ds, dj);
    exact(dj, cj);
    auto cp = Tensor<T, Cpu>({2, 4, 5, 7});
    auto dp = device_sentinel<T>({2, 4, 5, 7});
    haze::ops::split_channels(cj, 3, cp), haze::ops::split_channels(dj, 3, dp);
    exact(dp, cp);
  }
  {
    auto cu = Tensor<T, Cpu>({2, 6, 10, 14});
    auto du = device_sentinel<T>({2, 6, 10, 14});
    haze::ops::upsample_nearest2x(cx, cu), haze::ops::upsample_nearest2x(dx, du);
    exact(du, cu);
    auto cb = Tensor<T, Cpu>({2, 6, 5, 7});
    auto db = device_sentinel<T>({2, 6, 5, 7});
    haze::ops::upsample_nearest2x_backward(cu, cb), haze::ops::upsample_nearest2x_backward(du, db);
    exact(db, cb);
  }
  for (const haze::ops::ConvGeometry g : {haze::ops::ConvGeometry{6, 5, 7, 3, 3, 1, 1},
                                           haze::ops::ConvGeometry{6, 5, 7, 3, 3, 2, 1},
                                           haze::ops::ConvGeometry{6, 5, 7, 5, 5, 1, 2}}) {
    CAPTURE(g.kernel_h, g.stride, g.padding);
    const Shape cols{g.patch(), 2 * g.out_height() * g.out_width()};
    auto cc = Tensor<T, Cpu>(cols);
    auto dc = device_sentinel<T>(cols);
    haze::ops::im2col(cx, g, cc), haze::ops::im2col(dx, g, dc);
    exact(dc, cc);
    auto cback = Tensor<T, Cpu>({2, 6, 5, 7});
    auto dback = device_sentinel<T>({2, 6, 5, 7});
    haze::ops::col2im(cc, g, cback), haze::ops::col2im(dc, g, dback);
    exact(dback, cback);
  }
}

TEMPLATE_TEST_CASE("Device matmul equals Cpu in every form", "[device][gemm]", float, double) {
  using T = TestType;
  struct Case {
    Shape a, b, c;
    bool ta, tb;
  };
  const Case cases[] = {
      {{7, 3}, {3, 5}, {7, 5}, false, false},          {{3, 7}, {3, 5}, {7, 5}, true, false},
      {{7, 3}, {5, 3}, {7, 5}, false, true},           {{3, 7}, {5, 3}, {7, 5}, true, true},
      {{67, 70}, {70, 130}, {67, 130}, false, false},  {{4, 6, 5}, {4, 5, 3}, {4, 6, 3}, false, false},
      {{6, 5}, {4, 5, 3}, {4, 6, 3}, false, false},    {{4, 5, 6}, {3, 5}, {4, 6, 3}, true, true},
  };
  for (const Case& cs : cases) {
    for (int scaling = 0; scaling < 2; ++scaling) {
      CAPTURE(cs.a.str(), cs.b.str(), cs.ta, cs.tb, scaling);
      auto [ca, da] = random_pair<T>(cs.a, 9);
      auto [cb, db] = random_pair<T>(cs.b, 10);
      auto [cc, dc] = random_pair<T>(cs.c, 11);
      if (!scaling) dc = device_sentinel<T>(cs.c);  // beta = 0 must not read C
      const T alpha = scaling ? T(-1.5) : T(1), beta = scaling ? T(0.25) : T(0);
      const auto ta = cs.ta ? Transpose::Yes : Transpose::No, tb = cs.tb ? Transpose::Yes : Transpose::No;
      haze::ops::matmul(ca, cb, cc, ta, tb, alpha, beta);
      haze::ops::matmul(da, db, dc, ta, tb, alpha, beta);
      // Two dot products of length K in different orders (and, on Cpu,
      // float accumulation): Higham's bound 2 gamma_K |A||B| with |A||B| <= K
      // for inputs in [-1, 1], so atol = 2 (K+2) eps K |alpha| + eps |beta|.
      const int64_t K = cs.ta ? cs.a[cs.a.rank() - 2] : cs.a[cs.a.rank() - 1];
      const double atol = 2.0 * (K + 2) * eps<T>() * K * 1.5 + eps<T>();
      require_close(dc, cc, atol, 0);
    }
  }
}

TEMPLATE_TEST_CASE("Device randn is bit-identical to Cpu", "[device][randn]", float, double) {
  using T = TestType;
  // The transform is elementwise and built from correctly rounded operations
  // only (haze/core/exact_math.hpp), so exact equality is the right test.
  for (int64_t n : {int64_t(1), int64_t(3), int64_t(4), int64_t(1001), int64_t(70001)}) {
    for (uint64_t offset : {uint64_t(0), uint64_t(12345), uint64_t(1) << 40}) {
      CAPTURE(n, offset);
      haze::Generator cpu_gen{0xC0FFEE, offset}, device_gen{0xC0FFEE, offset};
      auto c = Tensor<T, Cpu>({n});
      auto d = device_sentinel<T>({n});
      haze::randn(c, cpu_gen);
      haze::randn(d, device_gen);
      CHECK(cpu_gen.offset == device_gen.offset);
      require_close(d, c, 0, 0);
    }
  }
}

// The precision switch (backend/tf32.hpp). With TF32 each float input keeps
// 10 of its 23 mantissa bits (relative error 2^-11 each), so an element of
// a product is off by at most about 2^-10 sum_k |a_ik||b_kj|; without it,
// by float rounding only. Off the GPU the switch changes nothing.
TEST_CASE("TF32 is off unless asked for, and bounded where it applies", "[device][gemm][precision]") {
  REQUIRE_FALSE(haze::backend::tf32_allowed());
  const int64_t m = 64, k = 1024, n = 96;
  const auto host_a = uniform<float>(m * k, 31), host_b = uniform<float>(k * n, 32);
  const auto a = Tensor<float, Device>::from_host({m, k}, host_a);
  const auto b = Tensor<float, Device>::from_host({k, n}, host_b);
  auto fp32 = device_sentinel<float>({m, n}), tf32 = device_sentinel<float>({m, n});
  haze::ops::matmul(a, b, fp32);
  haze::backend::allow_tf32(true);
  haze::ops::matmul(a, b, tf32);
  haze::backend::allow_tf32(false);
  const auto y32 = fp32.to_host(), ytf = tf32.to_host();
  double worst_fp32 = 0, worst_tf32 = 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      long double exact = 0, scale = 0;
      for (int64_t t = 0; t < k; ++t) {
        const long double p = (long double)host_a[i * k + t] * host_b[t * n + j];
        exact += p;
        scale += std::fabs(p);
      }
      worst_fp32 = std::max(worst_fp32, double(std::fabs(y32[i * n + j] - exact) / scale));
      worst_tf32 = std::max(worst_tf32, double(std::fabs(ytf[i * n + j] - exact) / scale));
    }
  INFO("fp32 " << worst_fp32 << ", tf32 " << worst_tf32);
  CHECK(worst_fp32 <= 1e-5);  // k = 1024 float roundings at most, in practice far fewer
  CHECK(worst_tf32 <= std::ldexp(1.0, -10));
  if (!Device::is_cuda) CHECK(ytf == y32);
}
