#pragma once
// The Frechet distance between two Gaussians fitted to feature vectors (the
// FID recipe, with any feature extractor):
//
//   FeatureStats feature_stats(features (rows x dim, row-major), rows, dim)
//     mean and unbiased covariance (divided by rows - 1; needs rows >= 2),
//     accumulated in double.
//   double frechet_distance(a, b)
//     d^2 = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^{1/2})
//
// tr((S_a S_b)^{1/2}) is computed from a symmetric matrix: S_a S_b is similar
// to M = S_a^{1/2} S_b S_a^{1/2} (symmetric positive semi-definite), so the
// trace is the sum of sqrt(max(0, eigenvalue)) of M. S_a^{1/2} comes from
// S_a's eigendecomposition (negative rounding-noise eigenvalues clamped to 0).
// This avoids the non-symmetric matrix square root (scipy's sqrtm) and its
// complex round-off. The result is returned as computed: for identical
// statistics it is 0 up to rounding, which may be a tiny negative number.
//
// Host only; Eigen only.

#include <Eigen/Dense>

#include <cmath>
#include <cstdint>
#include <span>

#include "haze/core/error.hpp"

namespace haze::metrics {

struct FeatureStats {
  Eigen::VectorXd mean;        // (dim)
  Eigen::MatrixXd covariance;  // (dim, dim), unbiased
  int64_t count = 0;           // rows the statistics were taken over
};

inline FeatureStats feature_stats(std::span<const float> features, int64_t rows, int64_t dim) {
  HAZE_REQUIRE(rows >= 2, "feature_stats: need at least 2 rows for an unbiased covariance, got ", rows);
  HAZE_REQUIRE(dim >= 1, "feature_stats: dim must be >= 1, got ", dim);
  HAZE_REQUIRE(static_cast<int64_t>(features.size()) == rows * dim, "feature_stats: ", features.size(),
               " values for ", rows, " rows of dim ", dim, " (need ", rows * dim, ")");
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::MatrixXd x = Eigen::Map<const RowMajor>(features.data(), rows, dim).cast<double>();  // (rows, dim)
  FeatureStats stats;
  stats.mean = x.colwise().mean().transpose();
  const Eigen::MatrixXd centered = x.rowwise() - stats.mean.transpose();
  stats.covariance = (centered.transpose() * centered) / double(rows - 1);
  stats.count = rows;
  return stats;
}

namespace detail {

inline void require_stats(const char* which, const FeatureStats& s) {
  const auto d = s.mean.size();
  HAZE_REQUIRE(d >= 1, "frechet_distance: statistics ", which, " are empty");
  HAZE_REQUIRE(s.covariance.rows() == d && s.covariance.cols() == d, "frechet_distance: statistics ", which,
               " have a mean of dim ", d, " but a ", s.covariance.rows(), "x", s.covariance.cols(), " covariance");
}

// S^{1/2} of a symmetric positive semi-definite S.
inline Eigen::MatrixXd symmetric_sqrt(const Eigen::MatrixXd& s) {
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(s);
  HAZE_REQUIRE(eig.info() == Eigen::Success, "frechet_distance: eigendecomposition of a covariance failed");
  const Eigen::VectorXd root = eig.eigenvalues().cwiseMax(0.0).cwiseSqrt();
  return eig.eigenvectors() * root.asDiagonal() * eig.eigenvectors().transpose();
}

}  // namespace detail

inline double frechet_distance(const FeatureStats& a, const FeatureStats& b) {
  detail::require_stats("a", a);
  detail::require_stats("b", b);
  HAZE_REQUIRE(a.mean.size() == b.mean.size(), "frechet_distance: feature dims differ: ", a.mean.size(), " and ",
               b.mean.size());
  const Eigen::MatrixXd root_a = detail::symmetric_sqrt(a.covariance);
  Eigen::MatrixXd m = root_a * b.covariance * root_a;  // similar to S_a S_b
  m = 0.5 * (m + m.transpose());                       // exactly symmetric for the solver
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(m, Eigen::EigenvaluesOnly);
  HAZE_REQUIRE(eig.info() == Eigen::Success, "frechet_distance: eigendecomposition of S_a^1/2 S_b S_a^1/2 failed");
  const double trace_sqrt = eig.eigenvalues().cwiseMax(0.0).cwiseSqrt().sum();
  return (a.mean - b.mean).squaredNorm() + a.covariance.trace() + b.covariance.trace() - 2 * trace_sqrt;
}

}  // namespace haze::metrics
