#pragma once
// The training presets of haze-train-fmnist (docs/results.md has what each
// reaches and how long it takes on a 2-core machine).
//   demo  (16, 32, 64) channels, 1 ResBlock per level, attention at 8x8,
//         1400 steps of 32: the README's main job, ~7.5 min on 2 cores
//   full  the same network trained 5000 steps of 32, about 3.6 times as
//         long (26 minutes on 2 cores); at guidance 2 its samples
//         reach 97% class accuracy and 2.1x the Frechet floor

#include <haze/nn/unet_config.hpp>

#include <string>

#include "data.hpp"

namespace fashion_mnist {

struct Preset {
  haze::nn::UNetConfig model;
  int64_t steps;
  int64_t batch;
  double lr;
  int64_t warmup;
};

inline Preset preset(const std::string& name) {
  haze::nn::UNetConfig c;
  c.in_channels = c.out_channels = 1;
  c.attention_levels = {2};
  c.attention_head_dim = 16;
  c.norm_groups = 8;
  c.num_classes = classes;
  c.sample_size = image_size;  // for a diffusers export (DDPMPipeline reads it)
  if (name == "demo") {
    c.block_out_channels = {16, 32, 64};
    c.layers_per_block = 1;
    return {c, 1400, 32, 2e-3, 100};
  }
  if (name == "full") {
    c.block_out_channels = {16, 32, 64};
    c.layers_per_block = 1;
    return {c, 5000, 32, 2e-3, 100};
  }
  HAZE_FAIL("unknown preset '", name, "' (known: demo, full)");
}

}  // namespace fashion_mnist
