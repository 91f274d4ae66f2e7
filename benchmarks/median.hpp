#pragma once
// The timing helpers the MPI benchmarks share: a steady clock, and the
// median of a run's samples (machines are noisy; the median ignores the
// odd descheduled step).
#include <algorithm>
#include <chrono>
#include <vector>

using Clock = std::chrono::steady_clock;

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
