#include <haze/backend/cpu.hpp>
#include <haze/core/exact_math.hpp>
#include <haze/core/philox.hpp>
#include <haze/ops/random.hpp>

#include <algorithm>
#include <cmath>
#include <random>

#include "test_support.hpp"

using haze::Generator;
using haze::backend::Cpu;

TEST_CASE("Philox4x32-10 matches the Random123 known-answer vectors", "[philox]") {
  // Random123's kat_vectors, lines "philox4x32 10": counter, key -> output.
  struct Kat {
    haze::philox::Block counter;
    haze::philox::Key key;
    haze::philox::Block expected;
  };
  const Kat kats[] = {
      {{{0, 0, 0, 0}}, {{0, 0}}, {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}}},
      {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}},
       {{0xffffffff, 0xffffffff}},
       {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}}},
      {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}},
       {{0xa4093822, 0x299f31d0}},
       {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}},
  };
  for (const Kat& kat : kats) {
    const haze::philox::Block out = haze::philox::philox4x32_10(kat.counter, kat.key);
    for (int lane = 0; lane < 4; ++lane) CHECK(out.v[lane] == kat.expected.v[lane]);
  }
}

// Distance in units in the last place between two doubles of equal sign.
static double ulps(double a, double b) {
  return std::abs(a - b) / std::abs(std::nextafter(b, INFINITY) - b);
}

TEST_CASE("exact::log agrees with <cmath> to a few ulp on the uniforms it is fed", "[philox][math]") {
  CHECK(haze::exact::log(1.0) == 0.0);
  // The uniforms Box-Muller feeds it are k * 2^-32, k = 1 .. 2^32.
  std::mt19937_64 engine(7);
  double worst = 0;
  for (int i = 0; i < 200000; ++i) {
    const double k = static_cast<double>(engine() >> 32) + 1.0;
    const double u = k * 0x1p-32;
    if (u == 1.0) continue;
    worst = std::max(worst, ulps(haze::exact::log(u), std::log(u)));
  }
  for (double u : {0x1p-32, 0x1p-31, 0.5, 0.70710678118654757, 0.70710678118654746, 0.999999999767}) {
    worst = std::max(worst, ulps(haze::exact::log(u), std::log(u)));
  }
  INFO("worst error " << worst << " ulp");
  CHECK(worst <= 4);  // series and ln2 splitting: a handful of roundings, each <= 0.5 ulp
}

TEST_CASE("exact::sincos_turns agrees with <cmath> over a full turn", "[philox][math]") {
  std::mt19937_64 engine(11);
  double worst = 0;
  for (int i = 0; i < 200000; ++i) {
    const double u = static_cast<double>(engine() >> 32) * 0x1p-32;
    double s, c;
    haze::exact::sincos_turns(u, s, c);
    const double angle = 2 * M_PI * u;
    worst = std::max({worst, std::abs(s - std::sin(angle)), std::abs(c - std::cos(angle))});
  }
  INFO("worst absolute error " << worst);
  // Both sides round 2 pi u (|angle| < 6.3, ulp 8.9e-16) once; the rest is a
  // few roundings of numbers <= 1.
  CHECK(worst < 4e-15);
  double s, c;
  haze::exact::sincos_turns(0.25, s, c);
  CHECK(s == 1.0);
  CHECK(c == 0.0);
}

TEST_CASE("randn gives standard normals", "[philox][randn]") {
  constexpr int64_t n = 1 << 18;
  auto t = haze::Tensor<double, Cpu>({n});
  Generator gen{2024};
  haze::randn(t, gen);
  std::vector<double> z = t.to_host();

  double mean = 0, m2 = 0;
  for (double v : z) mean += v;
  mean /= n;
  for (double v : z) m2 += (v - mean) * (v - mean);
  const double var = m2 / (n - 1);
  // Five standard errors: se(mean) = 1/sqrt(n), se(var) = sqrt(2/n).
  CHECK(std::abs(mean) < 5.0 / std::sqrt(double(n)));
  CHECK(std::abs(var - 1.0) < 5.0 * std::sqrt(2.0 / n));

  // Kolmogorov-Smirnov distance to the N(0, 1) CDF; 1.95/sqrt(n) is the
  // 0.1% critical value, and the seed is fixed, so this never flickers.
  std::sort(z.begin(), z.end());
  double d = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double cdf = 0.5 * std::erfc(-z[i] / std::sqrt(2.0));
    d = std::max({d, std::abs(cdf - double(i) / n), std::abs(cdf - double(i + 1) / n)});
  }
  INFO("KS distance " << d);
  CHECK(d < 1.95 / std::sqrt(double(n)));
}

TEST_CASE("randn draws from consecutive, non-overlapping blocks", "[philox][randn]") {
  using Tensor = haze::Tensor<double, Cpu>;
  Generator whole{99};
  Tensor all({24});
  haze::randn(all, whole);
  CHECK(whole.offset == 6);  // four normals per block
  const auto expected = all.to_host();

  SECTION("two draws of multiples of four continue the stream") {
    Generator gen{99};
    Tensor first({8}), second({16});
    haze::randn(first, gen);
    haze::randn(second, gen);
    CHECK(gen.offset == 6);
    auto a = first.to_host(), b = second.to_host();
    a.insert(a.end(), b.begin(), b.end());
    CHECK(a == expected);
  }
  SECTION("a draw that ends mid-block skips the rest of that block") {
    Generator gen{99};
    Tensor first({5}), second({4});
    haze::randn(first, gen);
    CHECK(gen.offset == 2);
    haze::randn(second, gen);
    const auto a = first.to_host(), b = second.to_host();
    CHECK(std::equal(a.begin(), a.end(), expected.begin()));
    CHECK(std::equal(b.begin(), b.end(), expected.begin() + 8));
  }
  SECTION("an explicit offset addresses the stream directly") {
    Generator gen{99, 3};
    Tensor part({4});
    haze::randn(part, gen);
    const auto p = part.to_host();
    CHECK(std::equal(p.begin(), p.end(), expected.begin() + 12));
  }
  SECTION("float draws are the double draws rounded") {
    Generator gen{99};
    haze::Tensor<float, Cpu> f({24});
    haze::randn(f, gen);
    const auto fv = f.to_host();
    for (size_t i = 0; i < fv.size(); ++i) CHECK(fv[i] == static_cast<float>(expected[i]));
  }
  SECTION("another seed gives other numbers") {
    Generator gen{100};
    Tensor other({24});
    haze::randn(other, gen);
    const auto o = other.to_host();
    int equal = 0;
    for (size_t i = 0; i < o.size(); ++i) equal += o[i] == expected[i];
    CHECK(equal == 0);
  }
  SECTION("the result does not depend on the thread count") {
    // Large enough for the OpenMP loop; compare with a single-threaded fill.
    constexpr int64_t n = 100003;
    Generator g1{5};
    Tensor parallel({n});
    haze::randn(parallel, g1);
    std::vector<double> serial(n);
    const haze::philox::NormalFill<double> fill{serial.data(), n, 5, 0};
    for (int64_t b = 0; b < haze::philox::blocks_for(n); ++b) fill(b);
    CHECK(parallel.to_host() == serial);
  }
}
