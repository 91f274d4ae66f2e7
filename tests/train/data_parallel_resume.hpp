#pragma once
// Resuming data-parallel training: checkpoints of one-rank runs, and a
// resume on several ranks where each rank reads its own file. Every rank
// must continue from rank 0's, which Trainer::share_state gives them.
#include <haze/io/checkpoint.hpp>

#include <filesystem>

#include "train/data_parallel_support.hpp"

namespace haze::test::parallel {

inline std::string model_json() { return haze::io::unet_config_json(config()); }

// The checkpoint of `steps` steps on one rank with accumulation `accumulation`.
inline void save_one_rank(int accumulation, int steps, const train::Dataset& data,
                          const std::filesystem::path& path) {
  UNet model(config());
  nn::init_parameters(model, 5);
  Trainer trainer(model, schedule(), data, with_accumulation(accumulation));
  for (int k = 0; k < steps; ++k) trainer.step();
  haze::io::save_checkpoint(path, trainer, model_json());
}

// This rank resumes from `file` (its own choice) and takes `more` steps.
inline State resume_rank(train::Communicator& communicator, const std::filesystem::path& file, int more,
                         const train::Dataset& data) {
  UNet model(config());
  nn::init_parameters(model, 40 + uint64_t(communicator.rank()));
  Trainer trainer(model, schedule(), data, base, communicator);
  haze::io::load_checkpoint(file, trainer, model_json());
  return run_steps(trainer, more);
}

// One rank's run of `steps` steps with accumulation `accumulation`, its
// losses and norms cut to the last `last` steps (those a resume repeats).
inline State one_rank_tail(int accumulation, int steps, int last, const train::Dataset& data) {
  State s = one_rank(accumulation, steps, data);
  s.losses.erase(s.losses.begin(), s.losses.end() - last);
  s.norms.erase(s.norms.begin(), s.norms.end() - last);
  return s;
}

}  // namespace haze::test::parallel
