// make_checkpoint_seeds OUT_DIR: writes the seeds of fuzz_checkpoint
// (corpus/checkpoint/): three micro UNets, as haze-sample reads them (EMA
// weights, model, schedule and prediction metadata), small enough for
// libFuzzer to mutate quickly. Built with the harnesses so it stays current.
#include <haze/haze.hpp>
#include <haze/io/checkpoint.hpp>
#include <haze/nn/init.hpp>
#include <haze/nn/unet.hpp>

#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  using namespace haze;
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_checkpoint_seeds OUT_DIR\n");
    return 2;
  }
  struct Seed {
    const char* name;
    nn::UNetConfig config;
    const char* schedule;
    const char* prediction;
  };
  // {in, out, block_out_channels, layers_per_block, attention_levels, head_dim, groups, eps, dropout, classes}
  const std::vector<Seed> seeds = {
      {"micro_class_attention", {1, 1, {4}, 1, {0}, 4, 2, 1e-5, 0.0, 2}, "linear", "epsilon"},
      {"micro_plain", {1, 1, {4}, 1, {}, 4, 2, 1e-5, 0.0, 0}, "cosine", "velocity"},
      {"micro_two_levels", {1, 1, {2, 4}, 1, {1}, 2, 2, 1e-5, 0.0, 0}, "sigmoid", "sample"},
  };
  for (const Seed& seed : seeds) {
    nn::UNet<float, backend::Cpu> model(seed.config);
    nn::init_parameters(model, 1);
    io::Safetensors file;
    file.metadata = {{"haze.format", std::string(io::checkpoint_format)},
                     {"haze.model", io::unet_config_json(seed.config)},
                     {"haze.schedule.json", io::schedule_json(Schedule::make(seed.schedule, 10))},
                     {"haze.prediction", seed.prediction}};
    for (const auto& p : nn::parameters_of(model)) {
      std::vector<int64_t> dims;
      for (int i = 0; i < p.value->shape().rank(); ++i) dims.push_back(p.value->shape()[i]);
      file.add(io::TensorRecord::from<float>("ema." + p.name, dims, p.value->to_host()));
    }
    io::save_safetensors(std::string(argv[1]) + "/" + seed.name + ".safetensors", file);
  }
  return 0;
}
