#include <haze/core/fast_exp.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "test_support.hpp"

namespace {

// Distance in units in the last place between two positive normal floats.
int64_t ulps(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  return ia > ib ? int64_t(ia) - ib : int64_t(ib) - ia;
}

}  // namespace

TEST_CASE("fast_exp is within 2 ulp of std::exp over its whole range", "[math]") {
  // Every float in [-87, 88] would be 2^31 values; a fine regular grid plus
  // the reduction's boundaries (half-integer multiples of ln2) covers it.
  int64_t worst = 0;
  float worst_at = 0;
  const auto check = [&](float x) {
    const float want = float(std::exp(double(x)));  // the correctly rounded float exp
    const int64_t d = ulps(haze::fast_exp(x), want);
    if (d > worst) worst = d, worst_at = x;
  };
  for (int64_t i = 0; i <= 1750000; ++i) check(-87.0f + 175.0f * float(i) / 1750000.0f);
  for (int k = -125; k <= 126; ++k) {
    const float edge = (float(k) + 0.5f) * 0.69314718f;
    check(std::nextafter(edge, -100.0f));
    check(edge);
    check(std::nextafter(edge, 100.0f));
  }
  for (float x : {0.0f, -0.0f, 1e-30f, -1e-30f, 1.0f, -1.0f}) check(x);
  INFO("worst " << worst << " ulp at x = " << worst_at);
  CHECK(worst <= 2);
  CHECK(haze::fast_exp(0.0f) == 1.0f);
}

TEST_CASE("fast_exp clamps out-of-range inputs to finite values and propagates NaN", "[math]") {
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(haze::fast_exp(-inf) == haze::fast_exp(-87.0f));
  CHECK(haze::fast_exp(-1000.0f) == haze::fast_exp(-87.0f));
  CHECK(haze::fast_exp(-87.0f) > 0.0f);
  CHECK(std::isnormal(haze::fast_exp(-87.0f)));
  CHECK(haze::fast_exp(inf) == haze::fast_exp(88.0f));
  CHECK(std::isfinite(haze::fast_exp(88.0f)));
  CHECK(std::isnan(haze::fast_exp(std::numeric_limits<float>::quiet_NaN())));
}

TEST_CASE("fast_exp in double is std::exp", "[math]") {
  for (double x : {-700.0, -1.5, 0.0, 0.25, 3.0, 700.0}) CHECK(haze::fast_exp(x) == std::exp(x));
}
