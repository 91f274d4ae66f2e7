#pragma once
// Per-backend allocation counters: how many allocations were made and how
// many bytes are live. Benchmarks and tests use them to show that a hot loop
// allocates nothing after warm-up.

#include <atomic>
#include <cstdint>

namespace haze::backend {

struct MemoryStats {
  std::atomic<int64_t> allocations{0};
  std::atomic<int64_t> live_bytes{0};
  std::atomic<int64_t> peak_bytes{0};

  void record_allocation(int64_t bytes) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    const int64_t live = live_bytes.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    int64_t peak = peak_bytes.load(std::memory_order_relaxed);
    while (live > peak && !peak_bytes.compare_exchange_weak(peak, live, std::memory_order_relaxed)) {
    }
  }
  void record_release(int64_t bytes) { live_bytes.fetch_sub(bytes, std::memory_order_relaxed); }
};

// One counter set per backend tag.
template <class B>
MemoryStats& memory_stats() {
  static MemoryStats stats;
  return stats;
}

}  // namespace haze::backend
