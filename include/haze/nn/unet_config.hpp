#pragma once
// UNetConfig: the shape of a UNet (diffusers' UNet2DModel arguments), with
// the named presets the tests and benchmarks use.

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
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

  // Sizes above these are refused: no real UNet comes near them, and they
  // keep every shape product far from int64 overflow.
  static constexpr int64_t max_channels = int64_t(1) << 24;
  static constexpr int64_t max_classes = int64_t(1) << 24;
  static constexpr int max_levels = 16;

  // Throws haze::Error naming `where` (e.g. the file the config came from).
  void validate(std::string_view where = "UNetConfig") const {
    const auto in_range = [](int64_t v, int64_t lo, int64_t hi) { return v >= lo && v <= hi; };
    HAZE_REQUIRE(in_range(in_channels, 1, max_channels) && in_range(out_channels, 1, max_channels), where,
                 ": in_channels ", in_channels, " and out_channels ", out_channels, " must be in [1, ", max_channels,
                 "]");
    HAZE_REQUIRE(!block_out_channels.empty() && levels() <= max_levels, where, ": block_out_channels has ",
                 block_out_channels.size(), " levels; expected 1 to ", max_levels);
    HAZE_REQUIRE(layers_per_block >= 1, where, ": layers_per_block must be >= 1, got ", layers_per_block);
    HAZE_REQUIRE(in_range(norm_groups, 1, max_channels), where, ": norm_groups must be in [1, ", max_channels,
                 "], got ", norm_groups);
    for (int64_t c : block_out_channels) {
      HAZE_REQUIRE(in_range(c, 1, max_channels), where, ": block_out_channels entry ", c, " outside [1, ",
                   max_channels, "]");
      HAZE_REQUIRE(c % norm_groups == 0, where, ": norm_groups ", norm_groups,
                   " does not divide block_out_channels entry ", c);
      HAZE_REQUIRE(attention_head_dim > 0 && c % attention_head_dim == 0, where, ": attention_head_dim ",
                   attention_head_dim, " does not divide block_out_channels entry ", c);
    }
    for (int level : attention_levels)
      HAZE_REQUIRE(level >= 0 && level < levels(), where, ": attention level ", level, " outside [0, ", levels(), ")");
    HAZE_REQUIRE(norm_eps > 0 && norm_eps < 1, where, ": norm_eps must be in (0, 1), got ", norm_eps);
    HAZE_REQUIRE(dropout >= 0 && dropout < 1, where, ": dropout must be in [0, 1), got ", dropout);
    HAZE_REQUIRE(in_range(num_classes, 0, max_classes), where, ": num_classes must be in [0, ", max_classes, "], got ",
                 num_classes);
  }
};

}  // namespace haze::nn
