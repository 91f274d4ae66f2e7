#pragma once
// Fashion-MNIST as haze training data: the IDX files (gzip'd or raw) of one
// split, images padded from 28x28 to 32x32 with the background value and
// scaled from 0..255 to [-1, 1], labels 0..9.

#include <haze/io/idx.hpp>
#include <haze/io/safetensors.hpp>
#include <haze/train/dataset.hpp>

#include <array>
#include <filesystem>
#include <string>

namespace fashion_mnist {

inline constexpr int64_t image_size = 32;  // 28 + 2 pixels of padding on each side
inline constexpr int64_t classes = 10;
inline const std::filesystem::path default_data_dir = "/usr/share/datasets/fashion-mnist";
inline constexpr std::array<const char*, 10> class_names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                            "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

// <dir>/<split>-images-idx3-ubyte[.gz], split "train" or "t10k".
inline std::filesystem::path split_file(const std::filesystem::path& dir, const std::string& split, const char* kind) {
  const std::filesystem::path raw = dir / (split + "-" + kind + "-ubyte");
  std::filesystem::path gz = raw;
  gz += ".gz";
  return std::filesystem::exists(gz) || !std::filesystem::exists(raw) ? gz : raw;
}

// The first `limit` items of a split (all when limit is 0).
inline haze::train::Dataset load(const std::filesystem::path& dir, const std::string& split, int64_t limit = 0) {
  const auto images_path = split_file(dir, split, "images-idx3");
  const auto labels_path = split_file(dir, split, "labels-idx1");
  const haze::io::IdxArray images = haze::io::read_idx(images_path);
  const haze::io::IdxArray labels = haze::io::read_idx(labels_path);
  using haze::io::detail::shape_text;
  HAZE_REQUIRE(images.dims.size() == 3 && images.dims[1] == 28 && images.dims[2] == 28, images_path.string(),
               ": expected images [N, 28, 28], got ", shape_text(images.dims));
  HAZE_REQUIRE(labels.dims.size() == 1 && labels.dims[0] == images.dims[0], labels_path.string(),
               ": expected labels [", images.dims[0], "], one per image in ", images_path.string(), ", got ",
               shape_text(labels.dims));
  const int64_t n = limit > 0 ? std::min(limit, images.dims[0]) : images.dims[0];
  haze::train::Dataset data;
  data.item_shape = {1, image_size, image_size};
  data.values.assign(static_cast<size_t>(n * image_size * image_size), -1.0f);
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t label = labels.data[static_cast<size_t>(i)];
    HAZE_REQUIRE(label < classes, labels_path.string(), ": label ", int(label), " of item ", i, " is not in 0..9");
    data.labels.push_back(label);
    for (int64_t y = 0; y < 28; ++y)
      for (int64_t x = 0; x < 28; ++x)
        data.values[static_cast<size_t>((i * image_size + y + 2) * image_size + x + 2)] =
            float(images.data[static_cast<size_t>((i * 28 + y) * 28 + x)]) / 127.5f - 1.0f;
  }
  return data;
}

}  // namespace fashion_mnist
