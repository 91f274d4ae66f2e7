#pragma once
// What a program asks of backend::Device, counted, so that a training or a
// sampler step can be shown to launch few kernels and to wait on the
// device rarely (benchmarks/device_step_counts.cpp):
//  - launches: every Thrust algorithm, cuBLAS and cuDNN call. On CUDA one
//    Thrust reduction may run more than one kernel; it counts once.
//  - round trips: the host waits for a device result (copy_to_host, and
//    the sums whose value the host reads).
//  - uploads: host-to-device copies (synchronous on CUDA today).
// Fresh allocations are memory_stats<Device>()'s. Relaxed atomics: exact
// totals, no ordering.

#include <atomic>
#include <cstdint>

namespace haze::backend {

struct DeviceCounters {
  std::atomic<int64_t> launches{0}, round_trips{0}, uploads{0};

  void launch(int64_t n = 1) { launches.fetch_add(n, std::memory_order_relaxed); }
  void round_trip() { round_trips.fetch_add(1, std::memory_order_relaxed); }
  void upload() { uploads.fetch_add(1, std::memory_order_relaxed); }
};

inline DeviceCounters& device_counters() {
  static DeviceCounters counters;
  return counters;
}

}  // namespace haze::backend
