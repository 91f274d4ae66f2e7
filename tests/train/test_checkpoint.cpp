// Checkpoints: a resumed run repeats a straight run byte for byte, and a
// checkpoint that is truncated, tampered with, from another config or
// schedule, or whose save fails, is refused without touching the old state.
#include <haze/haze.hpp>
#include <haze/io/checkpoint.hpp>
#include <haze/nn/init.hpp>
#include <haze/nn/unet.hpp>

#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "io/io_test_support.hpp"
#include "test_support.hpp"

using haze::backend::Cpu;
using haze::test::mentions;
using haze::test::TempDir;
namespace fs = std::filesystem;
namespace nn = haze::nn;
namespace train = haze::train;
namespace io = haze::io;
using UNet = nn::UNet<float, Cpu>;
using Trainer = train::Trainer<UNet, haze::predict::Velocity>;

namespace {

std::vector<std::byte> bytes_of(const fs::path& p) { return io::read_file(p); }

nn::UNetConfig config() {
  nn::UNetConfig c = nn::UNetConfig::tiny();
  c.num_classes = 3;
  c.dropout = 0.1;  // dropout draws from the generator: resuming must restore it
  return c;
}

train::Dataset dataset() {
  train::Dataset data;
  data.item_shape = {1, 16, 16};
  data.values = haze::test::uniform<float>(10 * 256, 4);
  for (int i = 0; i < 10; ++i) data.labels.push_back(i % 3);
  return data;
}

train::TrainerOptions options() {
  return {.batch_size = 4, .lr = {.peak = 1e-3, .warmup_steps = 2}, .ema_decay = 0.99, .min_snr_gamma = 5,
          .num_classes = 3, .label_dropout = 0.2, .seed = 9};
}

// A model, initialised, and a trainer on it.
struct Run {
  UNet model{config()};
  Trainer trainer;
  Run(const train::Dataset& data, haze::Schedule schedule = haze::Schedule::make("cosine", 100))
      : trainer((nn::init_parameters(model, 1), model), std::move(schedule), data, options()) {}
};

const std::string model_json = io::unet_config_json(config());

}  // namespace

TEST_CASE("a resumed run is bit-identical to one that never stopped", "[io][checkpoint]") {
  TempDir dir;
  const train::Dataset data = dataset();  // 10 items, batch 4: epochs end mid-batch
  Run straight(data);
  for (int s = 0; s < 6; ++s) straight.trainer.step();
  io::save_checkpoint(dir / "straight.safetensors", straight.trainer, model_json);

  {
    Run first_half(data);
    for (int s = 0; s < 3; ++s) first_half.trainer.step();
    io::save_checkpoint(dir / "half.safetensors", first_half.trainer, model_json);
  }
  Run resumed(data);
  io::load_checkpoint(dir / "half.safetensors", resumed.trainer, model_json);
  CHECK(resumed.trainer.steps_taken() == 3);
  for (int s = 0; s < 3; ++s) resumed.trainer.step();
  io::save_checkpoint(dir / "resumed.safetensors", resumed.trainer, model_json);

  // The whole state, model, EMA, moments, step, RNG and data position, byte for byte.
  const bool same_bytes = bytes_of(dir / "resumed.safetensors") == bytes_of(dir / "straight.safetensors");
  CHECK(same_bytes);  // (a bool: Catch would print both megabyte-long vectors)
  const io::Safetensors file = io::load_safetensors(dir / "straight.safetensors");
  CHECK(file.metadata.at("haze.step") == "6");
  CHECK(file.metadata.at("haze.prediction") == "velocity");
  CHECK(file.find("down_blocks.1.attentions.0.to_q.weight") != nullptr);
  CHECK(file.find("ema.conv_in.weight") != nullptr);
  CHECK(file.find("adamw.v.class_embedding.weight") != nullptr);
  CHECK(io::unet_config_from_json(file.metadata.at("haze.model"), "test").block_out_channels ==
        config().block_out_channels);

  // load_weights takes the EMA weights by default.
  UNet sampler_model(config());
  io::load_weights(file, sampler_model);
  const bool ema_loaded = nn::parameters_of(sampler_model)[0].value->to_host() == file.at("ema.conv_in.weight").as<float>();
  CHECK(ema_loaded);
}

TEST_CASE("a checkpoint that does not fit is refused and changes nothing", "[io][checkpoint][errors]") {
  TempDir dir;
  const train::Dataset data = dataset();
  const fs::path path = dir / "good.safetensors";
  {
    Run run(data);
    run.trainer.step();
    io::save_checkpoint(path, run.trainer, model_json);
  }
  Run target(data);
  const auto before = nn::parameters_of(target.model)[0].value->to_host();
  const auto unchanged = [&] {
    CHECK(target.trainer.steps_taken() == 0);
    const bool same = nn::parameters_of(target.model)[0].value->to_host() == before;
    CHECK(same);
  };
  const std::vector<std::byte> good = bytes_of(path);

  SECTION("truncated") {
    haze::test::write_raw(dir / "cut.safetensors", std::span(good).first(good.size() - 100));
    CHECK_THROWS_WITH(io::load_checkpoint(dir / "cut.safetensors", target.trainer, model_json),
                      mentions("cut.safetensors"));
  }
  SECTION("tampered header") {
    std::vector<std::byte> bad = good;
    bad[20] = std::byte{'#'};  // inside the JSON header
    haze::test::write_raw(dir / "bad.safetensors", bad);
    CHECK_THROWS_WITH(io::load_checkpoint(dir / "bad.safetensors", target.trainer, model_json),
                      mentions("bad.safetensors"));
  }
  SECTION("another config") {
    nn::UNetConfig other = config();
    other.block_out_channels = {16, 16};
    CHECK_THROWS_WITH(io::load_checkpoint(path, target.trainer, io::unet_config_json(other)),
                      mentions("good.safetensors: written for model"));
    // Same metadata but another model's tensors: the first misfit is named.
    UNet small_model(other);
    nn::init_parameters(small_model, 1);
    Trainer small_trainer(small_model, haze::Schedule::make("cosine", 100), data, options());
    CHECK_THROWS_WITH(io::load_checkpoint(path, small_trainer, model_json),
                      mentions("in the file but") && mentions("in the model"));
  }
  SECTION("another schedule") {
    Run linear(data, haze::Schedule::make("linear", 100));
    CHECK_THROWS_WITH(io::load_checkpoint(path, linear.trainer, model_json),
                      mentions("written with schedule cosine(steps=100") && mentions("training uses linear"));
  }
  SECTION("not a checkpoint") {
    io::Safetensors plain;
    plain.add(io::TensorRecord::from<float>("x", {1}, std::vector<float>{1}));
    io::save_safetensors(dir / "plain.safetensors", plain);
    CHECK_THROWS_WITH(io::load_checkpoint(dir / "plain.safetensors", target.trainer, model_json),
                      mentions("metadata key 'haze.format' is missing"));
  }
  unchanged();
}

TEST_CASE("a failed save leaves the previous checkpoint intact", "[io][checkpoint][errors]") {
  TempDir dir;
  const train::Dataset data = dataset();
  const fs::path path = dir / "last.safetensors";
  Run run(data);
  run.trainer.step();
  io::save_checkpoint(path, run.trainer, model_json);
  const std::vector<std::byte> saved = bytes_of(path);
  run.trainer.step();

  // A full disk, simulated with a file-size limit below the checkpoint's size.
  struct rlimit previous {};
  REQUIRE(getrlimit(RLIMIT_FSIZE, &previous) == 0);
  struct rlimit small = previous;
  small.rlim_cur = 4096;
  auto* handler = std::signal(SIGXFSZ, SIG_IGN);
  REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
  std::string message;
  try {
    io::save_checkpoint(path, run.trainer, model_json);
  } catch (const haze::Error& e) {
    message = e.what();
  }
  REQUIRE(setrlimit(RLIMIT_FSIZE, &previous) == 0);
  std::signal(SIGXFSZ, handler);
  CHECK_THAT(message, mentions("last.safetensors") && mentions("File too large"));
  const bool intact = bytes_of(path) == saved;
  CHECK(intact);
  CHECK(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()) == 1);  // no temporary left
}
