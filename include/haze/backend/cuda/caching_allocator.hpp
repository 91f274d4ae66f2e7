#pragma once
// Device memory for the CUDA build: CUB's caching allocator keeps freed blocks
// in size bins and hands them out again, so tensors created every step cost
// no cudaMalloc/cudaFree after warm-up. Thrust's temporary storage (reduce,
// reduce_by_key) goes through the same cache via ThrustCachingAllocator.
// Blocks belong to haze's stream (cuda/stream.hpp): one freed while a
// queued kernel still uses it is handed out again only to work queued
// after that kernel.

#include <cub/util_allocator.cuh>
#include <cstddef>
#include <mutex>

#include "haze/backend/cuda/check.hpp"
#include "haze/backend/cuda/stream.hpp"

namespace haze::backend::cuda {

inline cub::CachingDeviceAllocator& caching_allocator() {
  // Never destroyed: freeing at static-destruction time can run after the
  // CUDA context is gone. The process exit releases the memory.
  static auto* allocator = new cub::CachingDeviceAllocator(/*bin_growth=*/2, /*min_bin=*/6,
                                                           /*max_bin=*/28, /*max_cached_bytes=*/size_t(4) << 30,
                                                           /*skip_cleanup=*/true);
  return *allocator;
}

inline size_t cached_block_count() {
  auto& allocator = caching_allocator();
  const std::lock_guard<std::mutex> lock(allocator.mutex);
  return allocator.cached_blocks.size();
}

// `fresh`: the block came from cudaMalloc, not the cache (a reused block
// leaves the cache; exact while one host thread allocates at a time).
inline void* device_allocate(size_t bytes, bool& fresh) {
  const size_t cached_before = cached_block_count();
  void* p = nullptr;
  HAZE_CUDA_CHECK(caching_allocator().DeviceAllocate(&p, bytes, stream()));
  fresh = cached_block_count() >= cached_before;
  return p;
}

inline void* device_allocate(size_t bytes) {
  bool fresh = false;
  return device_allocate(bytes, fresh);
}

inline void device_release(void* p) { caching_allocator().DeviceFree(p); }

// The allocator interface Thrust execution policies accept for temporaries.
struct ThrustCachingAllocator {
  using value_type = char;
  char* allocate(std::ptrdiff_t bytes) { return static_cast<char*>(device_allocate(static_cast<size_t>(bytes))); }
  void deallocate(char* p, size_t) { device_release(p); }
};

inline ThrustCachingAllocator& thrust_allocator() {
  static ThrustCachingAllocator allocator;
  return allocator;
}

}  // namespace haze::backend::cuda
