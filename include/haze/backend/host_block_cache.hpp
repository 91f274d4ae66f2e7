#pragma once
// A cache of freed host blocks, keyed by exact size: a training step makes
// the same tensors every time, so after the first step every allocation is
// served from the cache. That matters beyond malloc's own cost: a large
// fresh block is fresh pages from the kernel, and faulting them in costs
// more than the convolution that fills them. Blocks beyond `limit` bytes of
// cache go back to the system. Thread-safe.

#include <cstddef>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace haze::backend {

class HostBlockCache {
 public:
  static constexpr std::align_val_t alignment{64};  // a cache line; enough for AVX-512 loads

  explicit HostBlockCache(size_t limit) : limit_(limit) {}

  // Returns a block of `bytes` and whether it came from the system (fresh).
  void* allocate(size_t bytes, bool& fresh) {
    {
      std::lock_guard lock(mutex_);
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_ -= bytes;
        fresh = false;
        return p;
      }
    }
    fresh = true;
    return ::operator new(bytes, alignment);
  }

  void release(void* p, size_t bytes) {
    {
      std::lock_guard lock(mutex_);
      if (cached_ + bytes <= limit_) {
        free_[bytes].push_back(p);
        cached_ += bytes;
        return;
      }
    }
    ::operator delete(p, alignment);
  }

  // Hands every cached block back to the system.
  void trim() {
    std::lock_guard lock(mutex_);
    for (auto& [bytes, blocks] : free_)
      for (void* p : blocks) ::operator delete(p, alignment);
    free_.clear();
    cached_ = 0;
  }

  size_t cached_bytes() {
    std::lock_guard lock(mutex_);
    return cached_;
  }

 private:
  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0;
  size_t limit_;
};

// The cache of backend B's host memory (up to 4 GiB of freed blocks). Never
// destroyed: tensors may outlive statics.
template <class B>
HostBlockCache& host_block_cache() {
  static auto* cache = new HostBlockCache(size_t(4) << 30);
  return *cache;
}

}  // namespace haze::backend
