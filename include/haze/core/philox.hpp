#pragma once
// Philox4x32-10, the counter-based generator of Salmon, Moraes, Dror and Shaw,
// "Parallel Random Numbers: As Easy as 1, 2, 3" (SC'11). A pure function of a
// 128-bit counter and a 64-bit key: any block of the stream is computed
// independently, which is what lets every backend produce the same numbers.

#include <array>
#include <cstdint>

#include "haze/core/macros.hpp"

namespace haze::philox {

struct Block {
  uint32_t v[4];
};

struct Key {
  uint32_t k[2];
};

inline constexpr uint32_t kMul0 = 0xD2511F53u;  // round multipliers
inline constexpr uint32_t kMul1 = 0xCD9E8D57u;
inline constexpr uint32_t kWeyl0 = 0x9E3779B9u;  // key schedule increments
inline constexpr uint32_t kWeyl1 = 0xBB67AE85u;

HAZE_HD inline void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t product = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  hi = static_cast<uint32_t>(product >> 32);
  lo = static_cast<uint32_t>(product);
}

// One round: two 32x32->64 multiplies, then the Feistel-like mix with the key.
HAZE_HD inline Block round(const Block& c, const Key& key) {
  uint32_t hi0, lo0, hi1, lo1;
  mulhilo(kMul0, c.v[0], hi0, lo0);
  mulhilo(kMul1, c.v[2], hi1, lo1);
  return Block{{hi1 ^ c.v[1] ^ key.k[0], lo1, hi0 ^ c.v[3] ^ key.k[1], lo0}};
}

// The ten-round bijection; the key advances by the Weyl constants between rounds.
HAZE_HD inline Block philox4x32_10(Block counter, Key key) {
  counter = round(counter, key);
  for (int r = 1; r < 10; ++r) {
    key.k[0] += kWeyl0;
    key.k[1] += kWeyl1;
    counter = round(counter, key);
  }
  return counter;
}

}  // namespace haze::philox
