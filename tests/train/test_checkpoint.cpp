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
#include <cstring>
#include <fstream>
#include <limits>
#include <type_traits>

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

// A checkpoint of a run one step in: the good file the error tests tamper with.
void save_after_one_step(const fs::path& path, const train::Dataset& data) {
  Run run(data);
  run.trainer.step();
  io::save_checkpoint(path, run.trainer, model_json);
}

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
  save_after_one_step(path, data);
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

namespace {

// A copy of `file` with one metadata value replaced.
io::Safetensors with_metadata(io::Safetensors file, const std::string& key, const std::string& value) {
  file.metadata[key] = value;
  return file;
}

// haze.model of config() with one field replaced by a JSON value.
std::string model_json_with(const std::string& field, const nlohmann::json& value) {
  nlohmann::json j = nlohmann::json::parse(model_json);
  j[field] = value;
  return j.dump();
}

}  // namespace

TEST_CASE("crafted model metadata is refused before the model is built", "[io][checkpoint][errors]") {
  TempDir dir;
  const train::Dataset data = dataset();
  const fs::path path = dir / "good.safetensors";
  save_after_one_step(path, data);
  const io::Safetensors good = io::load_safetensors(path);
  const auto read = [&](const std::string& field, const nlohmann::json& value) {
    return io::read_unet_config<float>(with_metadata(good, "haze.model", model_json_with(field, value)),
                                       {"", "ema."});
  };

  // The good file passes, and checking it allocates no tensor memory at all:
  // the model it describes is built on backend::Meta.
  const int64_t before = haze::backend::memory_stats<Cpu>().allocations.load();
  CHECK(io::read_unet_config<float>(good, {"", "ema.", "adamw.m.", "adamw.v."}).block_out_channels ==
        config().block_out_channels);
  CHECK(haze::backend::memory_stats<Cpu>().allocations.load() == before);

  // The cases that aborted with std::bad_alloc before.
  CHECK_THROWS_WITH(read("num_classes", 1000000000000), mentions("good.safetensors: haze.model: num_classes must be in "
                                                                 "[0, 16777216], got 1000000000000"));
  CHECK_THROWS_WITH(read("block_out_channels", {1 << 20, 1 << 20, 1 << 20}),
                    mentions("good.safetensors: haze.model needs a dimension of 1048576 but no tensor in the file has "
                             "one that large (largest: "));
  CHECK_THROWS_WITH(read("layers_per_block", 1000000000),
                    mentions("good.safetensors: haze.model has layers_per_block 1000000000 but the file holds only "));
  // Plausible sizes that do not match the tensors: the first misfit is named.
  CHECK_THROWS_WITH(read("block_out_channels", {16, 16}),
                    mentions("good.safetensors: tensor 'down_blocks.1.attentions.0.group_norm.weight' is [32] in the "
                             "file but [16] in its haze.model"));
  CHECK_THROWS_WITH(read("layers_per_block", 2), mentions("good.safetensors: tensor '") && mentions("is missing"));
  // Checks inside UNetConfig name the file too.
  CHECK_THROWS_WITH(read("attention_head_dim", 5),
                    mentions("good.safetensors: haze.model: attention_head_dim 5 does not divide the 32 channels of an attention level"));
  CHECK_THROWS_WITH(read("num_classes", "ten"), mentions("good.safetensors: haze.model is not a valid UNet config"));

  // The schedule: 2^31 - 1 steps would need tens of GiB of tables.
  CHECK_THROWS_WITH(io::schedule_from_json(R"({"kind": "linear", "steps": 2147483647, "parameters": [],
                                               "zero_terminal_snr": false})",
                                           "s.safetensors"),
                    mentions("s.safetensors: haze.schedule.json: schedule linear: steps must be in [1, 1048576], got "
                             "2147483647"));
  CHECK_THROWS_WITH(io::required_prediction(with_metadata(good, "haze.prediction", "noise")),
                    mentions("good.safetensors: haze.prediction 'noise' is not a known prediction type"));

  // A data position outside the dataset names the file.
  Run target(data);
  CHECK_THROWS_WITH(io::load_checkpoint(with_metadata(good, "haze.data.position", "1000"), target.trainer, model_json),
                    mentions("good.safetensors: BatchOrder::seek: epoch ") && mentions("outside a dataset of 10"));
  CHECK(target.trainer.steps_taken() == 0);
}

TEST_CASE("non-finite weights are never saved or loaded, and an overflowing update changes nothing",
          "[io][checkpoint][errors]") {
  TempDir dir;
  const train::Dataset data = dataset();
  const fs::path path = dir / "last.safetensors";
  Run run(data);
  run.trainer.step();
  io::save_checkpoint(path, run.trainer, model_json);
  const std::vector<std::byte> saved = bytes_of(path);

  // A learning rate of 1e38 overflows float in the update: AdamW finds it
  // before writing, so the weights, the moments and the EMA are unchanged.
  const auto snapshot = [&] {
    std::vector<std::vector<float>> all;
    for (size_t i = 0; i < run.trainer.parameters().size(); ++i) {
      all.push_back(run.trainer.parameters()[i].value->to_host());
      all.push_back(run.trainer.ema().shadow(i).to_host());
      all.push_back(run.trainer.optimizer().first_moment(i).to_host());
    }
    return all;
  };
  const auto state = snapshot();
  auto& adamw = run.trainer.optimizer();
  for (const auto& p : run.trainer.parameters()) p.grad->assign_from_host(std::vector<float>(size_t(p.grad->numel()), 0.5f));
  CHECK_THROWS_WITH(adamw.step(1e38), mentions("AdamW::step: step 2 at learning rate 1e+38 would make ") &&
                                          mentions("NaN or infinite; no parameter was changed"));
  CHECK(adamw.steps_taken() == 1);
  const bool unchanged = snapshot() == state;
  CHECK(unchanged);

  // A poisoned state is refused on save; the file on disk stays as it was.
  auto& shadow = run.trainer.ema().shadow(2);
  shadow.assign_from_host(std::vector<float>(size_t(shadow.numel()), std::numeric_limits<float>::quiet_NaN()));
  const std::string name = "ema." + run.trainer.parameters()[2].name;
  CHECK_THROWS_WITH(io::save_checkpoint(path, run.trainer, model_json),
                    mentions("save_checkpoint '" + path.string() + "': tensor '" + name + "' holds ") &&
                        mentions("NaN or infinite values") && mentions("refusing to save"));
  const bool intact = bytes_of(path) == saved;
  CHECK(intact);

  // A file with a NaN weight is refused on load, naming the tensor.
  io::Safetensors file = io::load_safetensors(path);
  for (io::TensorRecord& r : file.tensors)
    if (r.name == name) {
      const float nan = std::numeric_limits<float>::quiet_NaN();
      std::memcpy(r.data.data(), &nan, sizeof nan);
    }
  UNet model(config());
  CHECK_THROWS_WITH(io::load_weights(file, model), mentions("last.safetensors: tensor '" + name + "' holds 1 NaN or "
                                                            "infinite values of ") &&
                                                       mentions("refusing to load it"));
}

// The trainer keeps a reference to its data: a temporary must not compile.
static_assert(!std::is_constructible_v<Trainer, UNet&, haze::Schedule, train::Dataset&&, train::TrainerOptions>);
static_assert(std::is_constructible_v<Trainer, UNet&, haze::Schedule, const train::Dataset&, train::TrainerOptions>);

TEST_CASE("a checkpoint's model config keeps every diffusers option", "[checkpoint]") {
  nn::UNetConfig c = nn::UNetConfig::tiny();
  CHECK(io::unet_config_json(c).find("fourier_time") == std::string::npos);  // defaults are not written
  c.num_classes = 3;
  c.flip_sin_to_cos = false;
  c.freq_shift = 1;
  c.downsample_padding = 0;
  c.mid_block_scale_factor = 1.5;
  c.mid_attention = false;
  c.attn_norm_num_groups = 2;
  c.center_input_sample = true;
  c.scale_shift = true;
  c.fourier_time = true;
  c.class_embed_type = nn::UNetConfig::ClassEmbedType::timestep;
  c.sample_size = 16;
  c.sample_width = 24;
  CHECK(io::unet_config_from_json(io::unet_config_json(c), "test") == c);
  c.num_classes = 0;
  c.class_embed_type = nn::UNetConfig::ClassEmbedType::identity;
  CHECK(io::unet_config_from_json(io::unet_config_json(c), "test") == c);
  std::string text = io::unet_config_json(c);
  text.replace(text.find("\"identity\""), 10, "\"lookup\"");
  CHECK_THROWS_WITH(io::unet_config_from_json(text, "m.safetensors"),
                    mentions("m.safetensors: haze.model has class_embed_type 'lookup' (expected table, timestep or identity)"));
}
