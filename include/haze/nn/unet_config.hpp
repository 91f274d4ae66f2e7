#pragma once
// UNetConfig: the shape of a UNet (diffusers' UNet2DModel arguments), with
// the named presets the tests and benchmarks use.

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "haze/core/error.hpp"

namespace haze::nn {

struct UNetConfig {
  int64_t in_channels = 1;
  int64_t out_channels = 1;
  std::vector<int64_t> block_out_channels = {32, 64, 64};
  int layers_per_block = 2;
  std::vector<int> attention_levels = {2};  // encoder levels with attention; the mirrored decoder levels get it too
  int64_t attention_head_dim = 8;
  int64_t norm_groups = 8;
  double norm_eps = 1e-5;
  double dropout = 0.0;
  int64_t num_classes = 0;  // 0: unconditional; else a class table with one extra null class

  int levels() const { return static_cast<int>(block_out_channels.size()); }
  int64_t time_embed_dim() const { return 4 * block_out_channels.front(); }
  bool has_attention(int level) const {
    return std::find(attention_levels.begin(), attention_levels.end(), level) != attention_levels.end();
  }

  // in 1, 16x16, channels (16, 32), 1 layer per block, attention at level 1, head_dim 8, groups 4
  static UNetConfig tiny() { return {1, 1, {16, 32}, 1, {1}, 8, 4, 1e-5, 0.0, 0}; }
  // in 1, 32x32, channels (32, 64, 64), 2 layers, attention at level 2, head_dim 16, groups 8
  static UNetConfig small() { return {1, 1, {32, 64, 64}, 2, {2}, 16, 8, 1e-5, 0.0, 0}; }
  // in 3, 32x32, channels (64, 128, 128), 2 layers, attention at level 1, head_dim 32, groups 32
  static UNetConfig cifar() { return {3, 3, {64, 128, 128}, 2, {1}, 32, 32, 1e-5, 0.0, 0}; }

  void validate() const {
    HAZE_REQUIRE(in_channels > 0 && out_channels > 0, "UNetConfig: in_channels and out_channels must be > 0");
    HAZE_REQUIRE(!block_out_channels.empty(), "UNetConfig: block_out_channels is empty");
    HAZE_REQUIRE(layers_per_block >= 1, "UNetConfig: layers_per_block must be >= 1, got ", layers_per_block);
    HAZE_REQUIRE(norm_groups > 0, "UNetConfig: norm_groups must be > 0");
    for (int64_t c : block_out_channels) {
      HAZE_REQUIRE(c > 0 && c % norm_groups == 0, "UNetConfig: norm_groups ", norm_groups,
                   " does not divide block_out_channels entry ", c);
      HAZE_REQUIRE(attention_head_dim > 0 && c % attention_head_dim == 0, "UNetConfig: attention_head_dim ",
                   attention_head_dim, " does not divide block_out_channels entry ", c);
    }
    for (int level : attention_levels)
      HAZE_REQUIRE(level >= 0 && level < levels(), "UNetConfig: attention level ", level, " outside [0, ",
                   levels(), ")");
    HAZE_REQUIRE(dropout >= 0 && dropout < 1, "UNetConfig: dropout must be in [0, 1), got ", dropout);
    HAZE_REQUIRE(num_classes >= 0, "UNetConfig: num_classes must be >= 0, got ", num_classes);
  }
};

}  // namespace haze::nn
