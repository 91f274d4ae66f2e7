#pragma once
// Before a UNet is built for the weights in a file, the cheap checks that
// its config is not larger than the file: every size the config names must
// occur among the file's dimensions, and its layer count must fit the
// file's tensor count. A crafted config (a million channels, a billion
// layers) is refused here, before anything the size of that model (even its
// shapes) exists; the caller then matches the model's parameters, built on
// backend::Meta, against the file's tensors.

#include <algorithm>
#include <string_view>
#include <vector>

#include "haze/core/error.hpp"
#include "haze/io/safetensors.hpp"
#include "haze/nn/unet_config.hpp"

namespace haze::io::detail {

// `copies`: how many times the file must hold each parameter (a training
// checkpoint holds the weights, the EMA and two AdamW moments); `what`
// names the config in errors ("haze.model", "config.json"); `text` is shown.
inline void require_unet_fits_file(const nn::UNetConfig& c, const Safetensors& file, int64_t copies,
                                   std::string_view what, std::string_view text) {
  int64_t largest = 0;
  for (const TensorRecord& t : file.tensors)
    for (int64_t d : t.shape) largest = std::max(largest, d);
  std::vector<int64_t> sizes = {c.in_channels, c.out_channels, c.num_class_embeds()};
  sizes.insert(sizes.end(), c.block_out_channels.begin(), c.block_out_channels.end());
  for (int64_t size : sizes)
    HAZE_REQUIRE(size <= largest, file.source, ": ", what, " needs a dimension of ", size,
                 " but no tensor in the file has one that large (largest: ", largest, "): ", text);

  // Each ResBlock has at least 10 parameter tensors (two norms, two convs and
  // the time projection, each with two); levels <= 16 and layers_per_block
  // <= the tensor count keep this product small.
  const int64_t tensors = static_cast<int64_t>(file.tensors.size());
  HAZE_REQUIRE(c.layers_per_block <= tensors, file.source, ": ", what, " has layers_per_block ", c.layers_per_block,
               " but the file holds only ", tensors, " tensors");
  const int64_t resblocks = int64_t(c.levels()) * (2 * int64_t(c.layers_per_block) + 1) + 2;
  const int64_t needed = 10 * resblocks * copies;
  HAZE_REQUIRE(needed <= tensors, file.source, ": ", what, " describes ", resblocks, " ResBlocks, at least ", needed,
               " tensors, but the file holds ", tensors);
}

}  // namespace haze::io::detail
