#pragma once
// UNetConfig: the shape of a UNet (diffusers' UNet2DModel arguments), with
// the named presets the tests and benchmarks use. Each field below that has
// a diffusers counterpart says its name there when it differs; the defaults
// of the fields added for diffusers models are diffusers' own, so a config
// written before they existed means what it meant then. docs/diffusers.md
// has the whole table.

#include <algorithm>
#include <cmath>
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
  int64_t attention_head_dim = 8;  // 0: diffusers' null, one head as wide as the block
  int64_t norm_groups = 8;         // norm_num_groups
  double norm_eps = 1e-5;
  double dropout = 0.0;
  // 0: unconditional. Else a table of num_classes + 1 rows (diffusers'
  // num_class_embeds = num_class_embeds()), the last row being the null
  // class of classifier-free guidance: label num_classes.
  int64_t num_classes = 0;

  // The sinusoid: [cos, sin] when flip_sin_to_cos, else [sin, cos];
  // frequencies exp(-ln(10000) i / (half - freq_shift)), half = C[0] / 2.
  bool flip_sin_to_cos = true;
  double freq_shift = 0;
  // 1: each Downsample's stride-2 conv pads by one on every side; 0: the
  // input is padded by one at the right and bottom only and the conv pads
  // nothing (the original DDPM checkpoints).
  int downsample_padding = 1;
  double mid_block_scale_factor = 1;  // the mid block's ResBlocks and attention divide their output by it
  bool mid_attention = true;          // add_attention: false drops the mid block's attention
  // the mid attention's GroupNorm groups; 0: norm_groups, or with
  // scale_shift no GroupNorm at all (diffusers' rule)
  int64_t attn_norm_num_groups = 0;
  // resnet_time_scale_shift "scale_shift": each ResBlock's time projection
  // gives a scale and a shift applied after norm2, instead of an add before it
  bool scale_shift = false;
  bool center_input_sample = false;   // the input goes in as 2 x - 1
  // time_embedding_type "fourier": Fourier features of ln t with frozen
  // random frequencies (nn/fourier_projection.hpp), 2 C[0] wide, and the
  // output divided by t: the score-SDE models, whose t is the noise level
  // sigma > 0. flip_sin_to_cos and freq_shift do not apply to it.
  bool fourier_time = false;
  // class_embed_type. table: diffusers' None with num_class_embeds, above.
  // timestep: the label, as a number, goes through the time projection and
  // a second TimestepEmbedding ("class_embedding.linear_1" ...); labels are
  // 0 .. num_classes as for the table (num_classes is only one more number
  // here, the null class if training drops labels to it). identity: the
  // caller gives the class embedding itself, time_embed_dim() numbers per
  // sample (UNet::forward with class vectors), and num_classes is 0.
  enum class ClassEmbedType { table, timestep, identity };
  ClassEmbedType class_embed_type = ClassEmbedType::table;
  // The image size the model was made for (0: not said), height by
  // sample_width (0: square); forward takes any size the levels divide.
  int64_t sample_size = 0;
  int64_t sample_width = 0;

  bool operator==(const UNetConfig&) const = default;

  int levels() const { return static_cast<int>(block_out_channels.size()); }
  int64_t time_embed_dim() const { return 4 * block_out_channels.front(); }
  // The time projection's width: the sinusoid's C[0], or 2 C[0] Fourier features.
  int64_t time_proj_dim() const { return (fourier_time ? 2 : 1) * block_out_channels.front(); }
  // Whether a sample comes with a class label (int64) or class vector.
  bool takes_labels() const { return num_classes > 0; }
  bool takes_class_vectors() const { return class_embed_type == ClassEmbedType::identity; }
  bool has_attention(int level) const {
    return std::find(attention_levels.begin(), attention_levels.end(), level) != attention_levels.end();
  }
  // The head width of an attention block over `channels` channels.
  int64_t head_dim(int64_t channels) const { return attention_head_dim > 0 ? attention_head_dim : channels; }
  int64_t mid_attention_groups() const {
    return attn_norm_num_groups > 0 ? attn_norm_num_groups : scale_shift ? 0 : norm_groups;
  }
  int64_t num_class_embeds() const { return num_classes > 0 ? num_classes + 1 : 0; }

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
    }
    HAZE_REQUIRE(in_range(attention_head_dim, 0, max_channels), where, ": attention_head_dim must be in [0, ",
                 max_channels, "] (0: one head per block), got ", attention_head_dim);
    const auto require_heads = [&](int64_t c, const char* block) {
      HAZE_REQUIRE(c % head_dim(c) == 0, where, ": attention_head_dim ", attention_head_dim, " does not divide the ",
                   c, " channels of ", block);
    };
    for (int level : attention_levels) {
      HAZE_REQUIRE(level >= 0 && level < levels(), where, ": attention level ", level, " outside [0, ", levels(), ")");
      require_heads(block_out_channels[size_t(level)], "an attention level");
    }
    if (mid_attention) {
      require_heads(block_out_channels.back(), "the mid block's attention");
      HAZE_REQUIRE(in_range(attn_norm_num_groups, 0, max_channels) &&
                       (mid_attention_groups() == 0 || block_out_channels.back() % mid_attention_groups() == 0),
                   where, ": attn_norm_num_groups ", attn_norm_num_groups, " does not divide the mid block's ",
                   block_out_channels.back(), " channels");
    }
    HAZE_REQUIRE(block_out_channels.front() % 2 == 0, where, ": block_out_channels[0] = ",
                 block_out_channels.front(), " must be even (the sinusoid's width)");
    HAZE_REQUIRE(std::isfinite(freq_shift) && freq_shift < double(block_out_channels.front() / 2), where,
                 ": freq_shift ", freq_shift, " must be below half the sinusoid's width, ",
                 block_out_channels.front() / 2);
    HAZE_REQUIRE(downsample_padding == 0 || downsample_padding == 1, where, ": downsample_padding must be 0 or 1, got ",
                 downsample_padding);
    HAZE_REQUIRE(std::isfinite(mid_block_scale_factor) && mid_block_scale_factor > 0, where,
                 ": mid_block_scale_factor must be finite and > 0, got ", mid_block_scale_factor);
    HAZE_REQUIRE(in_range(sample_size, 0, max_channels) && in_range(sample_width, 0, max_channels) &&
                     (sample_width == 0 || sample_size > 0),
                 where, ": sample_size ", sample_size, " by sample_width ", sample_width, " must be in [0, ",
                 max_channels, "] (a width only with a height)");
    HAZE_REQUIRE(norm_eps > 0 && norm_eps < 1, where, ": norm_eps must be in (0, 1), got ", norm_eps);
    HAZE_REQUIRE(dropout >= 0 && dropout < 1, where, ": dropout must be in [0, 1), got ", dropout);
    HAZE_REQUIRE(in_range(num_classes, 0, max_classes), where, ": num_classes must be in [0, ", max_classes, "], got ",
                 num_classes);
    HAZE_REQUIRE(class_embed_type != ClassEmbedType::timestep || num_classes > 0, where,
                 ": class_embed_type timestep needs num_classes > 0 to bound the labels");
    HAZE_REQUIRE(class_embed_type != ClassEmbedType::identity || num_classes == 0, where,
                 ": class_embed_type identity takes class vectors, not labels: num_classes must be 0, got ",
                 num_classes);
  }
};

// haze's name of a class embedding type (checkpoints; diffusers' are the
// same but for table, which diffusers calls null).
inline const char* class_embed_type_name(UNetConfig::ClassEmbedType t) {
  using Type = UNetConfig::ClassEmbedType;
  return t == Type::timestep ? "timestep" : t == Type::identity ? "identity" : "table";
}

}  // namespace haze::nn
