#pragma once
// Generator: a Philox key (the seed) and a position in its stream (offset,
// counted in 128-bit blocks). randn() draws normals from consecutive blocks
// and advances the offset past them, so successive draws never overlap and a
// (seed, offset) pair names the same numbers on every backend.

#include <cmath>
#include <cstdint>

#include "haze/core/exact_math.hpp"
#include "haze/core/macros.hpp"
#include "haze/core/philox.hpp"

namespace haze {

struct Generator {
  uint64_t seed;
  uint64_t offset = 0;
};

namespace philox {

// Each block of four 32-bit words gives four normals (two Box-Muller pairs).
inline constexpr int64_t normals_per_block = 4;

inline constexpr int64_t blocks_for(int64_t count) {
  return (count + normals_per_block - 1) / normals_per_block;
}

HAZE_HD inline Key key_of(uint64_t seed) {
  return Key{{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)}};
}

HAZE_HD inline Block counter_of(uint64_t block_index) {
  return Block{{static_cast<uint32_t>(block_index), static_cast<uint32_t>(block_index >> 32), 0u, 0u}};
}

// Four standard normals from stream block `block_index` of `seed`, in double.
// Box-Muller: r = sqrt(-2 log u1) with u1 in (0, 1], angle 2 pi u2 with u2 in
// [0, 1); both uniforms are exact multiples of 2^-32, so no rounding precedes
// the log and the angle reduction.
HAZE_HD inline void normal_block(uint64_t seed, uint64_t block_index, double out[4]) {
  const Block bits = philox4x32_10(counter_of(block_index), key_of(seed));
  constexpr double two_pow_minus_32 = 2.3283064365386962890625e-10;
  for (int pair = 0; pair < 2; ++pair) {
    const double u1 = (static_cast<double>(bits.v[2 * pair]) + 1.0) * two_pow_minus_32;
    const double u2 = static_cast<double>(bits.v[2 * pair + 1]) * two_pow_minus_32;
    const double radius = ::sqrt(-2.0 * exact::log(u1));
    double s, c;
    exact::sincos_turns(u2, s, c);
    out[2 * pair] = exact::mul(radius, c);
    out[2 * pair + 1] = exact::mul(radius, s);
  }
}

// The functor every backend runs over blocks: fills out[4b .. 4b+3] (clipped
// to n) from stream block offset + b.
template <class T>
struct NormalFill {
  T* out;
  int64_t n;
  uint64_t seed;
  uint64_t offset;

  HAZE_HD void operator()(int64_t block) const {
    double z[4];
    normal_block(seed, offset + static_cast<uint64_t>(block), z);
    const int64_t first = block * normals_per_block;
    for (int j = 0; j < normals_per_block && first + j < n; ++j) out[first + j] = static_cast<T>(z[j]);
  }
};

}  // namespace philox

// 64 uniform random bits for host-side draws (timesteps, shuffles, label
// dropout): words 0 and 1 of the next block of gen's stream.
inline uint64_t next_bits(Generator& gen) {
  const philox::Block bits = philox::philox4x32_10(philox::counter_of(gen.offset++), philox::key_of(gen.seed));
  return static_cast<uint64_t>(bits.v[0]) | (static_cast<uint64_t>(bits.v[1]) << 32);
}

// Uniform in [0, 1) with 53 random bits.
inline double next_uniform(Generator& gen) { return static_cast<double>(next_bits(gen) >> 11) * 0x1p-53; }

// Uniform integer in [0, n); the modulo bias is below n / 2^64.
inline int64_t next_below(Generator& gen, int64_t n) {
  return static_cast<int64_t>(next_bits(gen) % static_cast<uint64_t>(n));
}

}  // namespace haze
