// Sample-quality metrics: the Frechet distance between Gaussians against
// closed forms and an independent matrix square root, and the sliced
// Wasserstein distance on clouds whose answer is known.
#include <haze/metrics/frechet.hpp>
#include <haze/metrics/sliced_wasserstein.hpp>

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>
#include <vector>

#include "test_support.hpp"

using haze::metrics::FeatureStats;
using haze::metrics::feature_stats;
using haze::metrics::frechet_distance;
using haze::metrics::sliced_wasserstein;
using haze::test::mentions;

namespace {

FeatureStats stats(Eigen::VectorXd mean, Eigen::MatrixXd covariance) {
  return {std::move(mean), std::move(covariance), 100};
}

// A random symmetric positive definite d x d matrix: A A^T + 0.1 I.
Eigen::MatrixXd random_spd(int d, uint64_t seed) {
  const auto v = haze::test::uniform<double>(d * d, seed);
  const Eigen::MatrixXd a = Eigen::Map<const Eigen::MatrixXd>(v.data(), d, d);
  return a * a.transpose() + 0.1 * Eigen::MatrixXd::Identity(d, d);
}

// tr(A^{1/2}) of a matrix with positive real eigenvalues by the Denman-Beavers
// iteration (Y -> A^{1/2}), a route that shares nothing with frechet.hpp's
// symmetric eigendecompositions (it is how sqrtm was computed before Schur
// methods).
double trace_sqrt_denman_beavers(const Eigen::MatrixXd& a) {
  Eigen::MatrixXd y = a, z = Eigen::MatrixXd::Identity(a.rows(), a.cols());
  for (int k = 0; k < 100; ++k) {
    const Eigen::MatrixXd y_next = 0.5 * (y + z.inverse());
    z = 0.5 * (z + y.inverse());
    const bool converged = (y_next - y).norm() <= 1e-15 * y.norm();
    y = y_next;
    if (converged) break;
  }
  return y.trace();
}

}  // namespace

TEST_CASE("feature_stats: mean and unbiased covariance", "[metrics][frechet]") {
  // Rows (1, 2), (3, 6), (5, 4): mean (3, 4), deviations (-2, -2), (0, 2),
  // (2, 0), so the covariance is [[8, 4], [4, 8]] / (3 - 1). Small integers:
  // every step is exact in double.
  const std::vector<float> rows = {1, 2, 3, 6, 5, 4};
  const FeatureStats s = feature_stats(rows, 3, 2);
  CHECK(s.count == 3);
  CHECK(s.mean == Eigen::Vector2d(3, 4));
  CHECK(s.covariance == (Eigen::Matrix2d() << 4, 2, 2, 4).finished());
}

TEST_CASE("Frechet distance of diagonal Gaussians equals the closed form", "[metrics][frechet]") {
  // Commuting (diagonal) covariances: d^2 = |mu1 - mu2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
  const Eigen::Vector4d a(0.5, 2.0, 1.0, 3.0), b(1.5, 0.25, 1.0, 4.0);
  const Eigen::Vector4d mu1(0, 1, 2, 3), mu2(1, 1, -1, 3);
  double expected = (mu1 - mu2).squaredNorm();
  for (int i = 0; i < 4; ++i) expected += std::pow(std::sqrt(a[i]) - std::sqrt(b[i]), 2);
  const double d = frechet_distance(stats(mu1, a.asDiagonal()), stats(mu2, b.asDiagonal()));
  // The eigensolvers of 4x4 matrices of size ~4 are accurate to ~1e-15 each;
  // 1e-12 relative leaves room for their sum over four eigenvalues.
  CHECK(d == Approx(expected).epsilon(1e-12));
}

TEST_CASE("Frechet distance with non-commuting 2x2 covariances", "[metrics][frechet]") {
  // For 2x2 S1 S2 (eigenvalues l1, l2 > 0): tr sqrt(S1 S2) = sqrt(l1) + sqrt(l2)
  // = sqrt(tr(S1 S2) + 2 sqrt(det(S1 S2))). The expected value was computed
  // independently of haze, in plain Python, from that formula:
  //   S1=[[2,.5],[.5,1]]; S2=[[1,-.3],[-.3,.5]]; mu1=[.5,-1]; mu2=[-.25,.75]
  //   P = S1 @ S2: tr 2.2, det 0.7175 -> tr sqrt = sqrt(2.2 + 2 sqrt(0.7175))
  //   d = |mu1-mu2|^2 + 3 + 1.5 - 2 tr sqrt = 4.178301412770546
  Eigen::Matrix2d s1, s2;
  s1 << 2, 0.5, 0.5, 1;
  s2 << 1, -0.3, -0.3, 0.5;
  REQUIRE((s1 * s2 - s2 * s1).norm() > 0.1);  // the covariances do not commute
  const FeatureStats a = stats(Eigen::Vector2d(0.5, -1), s1), b = stats(Eigen::Vector2d(-0.25, 0.75), s2);
  // A handful of double roundings on numbers of size ~4: 1e-13 relative.
  CHECK(frechet_distance(a, b) == Approx(4.178301412770546).epsilon(1e-13));
  const Eigen::Matrix2d p = s1 * s2;
  const double closed = std::sqrt(p.trace() + 2 * std::sqrt(p.determinant()));
  CHECK(frechet_distance(a, b) == Approx(0.75 * 0.75 + 1.75 * 1.75 + 3 + 1.5 - 2 * closed).epsilon(1e-13));
}

TEST_CASE("Frechet distance in 6-D against a Denman-Beavers square root", "[metrics][frechet]") {
  const Eigen::MatrixXd s1 = random_spd(6, 1), s2 = random_spd(6, 2);
  REQUIRE((s1 * s2 - s2 * s1).norm() > 0.1);
  Eigen::VectorXd mu1(6), mu2(6);
  mu1 << 1, 2, 3, 4, 5, 6;
  mu2 << 0, 2, 4, 4, 4, 7;
  const double expected =
      (mu1 - mu2).squaredNorm() + s1.trace() + s2.trace() - 2 * trace_sqrt_denman_beavers(s1 * s2);
  const FeatureStats a = stats(mu1, s1), b = stats(mu2, s2);
  // Two algorithms on matrices with condition number ~1e3: each is accurate
  // to ~1e-13 relative here; 1e-10 is a loose bound that still catches any
  // error in the formula (a wrong term moves d by O(1)).
  CHECK(frechet_distance(a, b) == Approx(expected).epsilon(1e-10));
  // Symmetric: sqrt(S1) S2 sqrt(S1) and sqrt(S2) S1 sqrt(S2) share their
  // eigenvalues, computed along different roundings.
  CHECK(frechet_distance(b, a) == Approx(frechet_distance(a, b)).epsilon(1e-10));
  // Identical statistics: tr S + tr S - 2 tr S up to rounding, ~1e-15 of tr S.
  CHECK(std::abs(frechet_distance(a, a)) < 1e-12 * s1.trace());
}

TEST_CASE("Frechet distance from features: equal covariances leave the squared shift", "[metrics][frechet]") {
  // The same cloud shifted by (1, -2, 0): covariances are equal, so the
  // distance is the squared shift, 5 (float features: ~1e-7 relative).
  std::mt19937_64 engine(3);
  std::normal_distribution<float> normal;
  std::vector<float> x(3000), y(3000);
  for (size_t i = 0; i < x.size(); i += 3) {
    x[i] = normal(engine);
    x[i + 1] = 2 * normal(engine) + 0.5f * x[i];
    x[i + 2] = normal(engine);
    y[i] = x[i] + 1;
    y[i + 1] = x[i + 1] - 2;
    y[i + 2] = x[i + 2];
  }
  const double d = frechet_distance(feature_stats(x, 1000, 3), feature_stats(y, 1000, 3));
  // The float shift of each value rounds at ~2.4e-7 of |x| ~ 3: the means move
  // by 5 +- ~1e-6 and the covariances by ~1e-6, so 1e-5 absolute.
  CHECK(d == Approx(5).margin(1e-5));
}

TEST_CASE("Frechet distance rejects bad sizes", "[metrics][frechet][errors]") {
  const std::vector<float> six(6, 1.0f);
  CHECK_THROWS_WITH(feature_stats(six, 1, 6), mentions("need at least 2 rows for an unbiased covariance, got 1"));
  CHECK_THROWS_WITH(feature_stats(six, 2, 4), mentions("6 values for 2 rows of dim 4 (need 8)"));
  CHECK_THROWS_WITH(feature_stats(six, 6, 0), mentions("dim must be >= 1, got 0"));
  const FeatureStats two = stats(Eigen::Vector2d(0, 0), Eigen::Matrix2d::Identity());
  const FeatureStats three = stats(Eigen::Vector3d(0, 0, 0), Eigen::Matrix3d::Identity());
  CHECK_THROWS_WITH(frechet_distance(two, three), mentions("feature dims differ: 2 and 3"));
  const FeatureStats broken = stats(Eigen::Vector2d(0, 0), Eigen::Matrix3d::Identity());
  CHECK_THROWS_WITH(frechet_distance(two, broken), mentions("statistics b have a mean of dim 2 but a 3x3 covariance"));
  CHECK_THROWS_WITH(frechet_distance(FeatureStats{}, two), mentions("statistics a are empty"));
}

TEST_CASE("sliced Wasserstein distance: zero, shift, symmetry, invariance", "[metrics][swd]") {
  const auto a = haze::test::uniform<double>(2 * 500, 1), b = haze::test::uniform<double>(2 * 500, 2);
  // Identical clouds: every sorted projection matches exactly.
  CHECK(sliced_wasserstein(a, a, 2, 16, 7) == 0.0);
  // Symmetric and blind to the order of the points: |x - y| = |y - x|, and
  // sorting forgets the order, so both hold exactly.
  const double ab = sliced_wasserstein(a, b, 2, 16, 7);
  CHECK(ab > 0);
  CHECK(sliced_wasserstein(b, a, 2, 16, 7) == ab);
  std::vector<double> shuffled = b;
  for (size_t i = 0; i + 3 < shuffled.size(); i += 4) {  // swap points 2k and 2k+1
    std::swap(shuffled[i], shuffled[i + 2]);
    std::swap(shuffled[i + 1], shuffled[i + 3]);
  }
  CHECK(sliced_wasserstein(a, shuffled, 2, 16, 7) == ab);
  // A seed fixes the directions.
  CHECK(sliced_wasserstein(a, b, 2, 16, 7) == ab);

  // 1-D: every direction is +-1, so a cloud shifted by 0.7 is 0.7 away
  // (one rounding per shifted value: 1e-14).
  std::vector<double> line = haze::test::uniform<double>(300, 3), moved = line;
  for (auto& v : moved) v += 0.7;
  CHECK(sliced_wasserstein(line, moved, 1, 8, 11) == Approx(0.7).epsilon(1e-14));

  // 2-D translation by v: each projection moves by <theta, v>, so SW1 is the
  // mean of |<theta, v>| over the directions, |v| E|cos phi| = |v| 2/pi for
  // uniform directions. 20000 directions: the mean of |cos phi| (std ~0.31)
  // has a standard error ~0.0022, about 0.35% of 2/pi; 1.5% is > 4 sigma and
  // still fails directions that are not uniform on the circle.
  const std::vector<double> few = haze::test::uniform<double>(2 * 10, 4);
  std::vector<double> translated = few;
  for (size_t i = 0; i < translated.size(); i += 2) {
    translated[i] += 3;
    translated[i + 1] += 4;
  }
  CHECK(sliced_wasserstein(few, translated, 2, 20000, 5) == Approx(5 * 2 / std::numbers::pi).epsilon(0.015));
}

TEST_CASE("sliced Wasserstein distance rejects bad sizes", "[metrics][swd][errors]") {
  const std::vector<double> six(6, 0.0), four(4, 0.0);
  CHECK_THROWS_WITH(sliced_wasserstein(six, four, 2, 4, 1),
                    mentions("the clouds differ in size: a holds 6 values, b holds 4 (dim 2)"));
  CHECK_THROWS_WITH(sliced_wasserstein(six, six, 4, 4, 1),
                    mentions("cloud a holds 6 values, not a positive multiple of dim 4"));
  CHECK_THROWS_WITH(sliced_wasserstein(six, six, 0, 4, 1), mentions("dim must be >= 1, got 0"));
  CHECK_THROWS_WITH(sliced_wasserstein(six, six, 2, 0, 1), mentions("projections must be >= 1, got 0"));
}
