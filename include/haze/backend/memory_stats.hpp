#pragma once
// Per-backend allocation counters: how many tensors were allocated, how
// many of those needed fresh memory from the system (the rest came from a
// cache of freed blocks), and how many bytes are live. Benchmarks and tests
// use them to show that a training step allocates nothing new after warm-up.

#include <atomic>
#include <cstdint>

namespace haze::backend {

struct MemoryStats {
  std::atomic<int64_t> allocations{0};        // every request
  std::atomic<int64_t> fresh_allocations{0};  // requests the system served
  std::atomic<int64_t> live_bytes{0};
  std::atomic<int64_t> peak_bytes{0};

  void record_allocation(int64_t bytes, bool fresh = true) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    if (fresh) fresh_allocations.fetch_add(1, std::memory_order_relaxed);
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
