// diffusers model folders: UNet2DModels saved by diffusers itself
// (tests/golden/diffusers_golden.py) load into haze's UNet and give
// diffusers' outputs and gradients; bad folders are refused by name; an
// exported haze model reads back as it was.
#include <haze/haze.hpp>
#include <haze/io/diffusers.hpp>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "../nn/golden_file.hpp"
#include "io_test_support.hpp"

using namespace haze;
using haze::backend::Cpu;
using haze::test::mentions;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> golden_cases = {"ddpm_cifar10_narrow",  "class_conditional_bf16", "no_mid_attention_f16",
                                               "scale_shift",          "fourier_timestep_class", "identity_class"};

fs::path golden_folder(const std::string& name) { return fs::path(HAZE_GOLDEN_DIR) / "diffusers" / name; }

nlohmann::json golden_config(const std::string& name) {
  return io::detail::read_json_file(golden_folder(name) / "config.json");
}

template <class T>
struct Loaded {
  io::Safetensors weights;
  nn::UNet<T, Cpu> model;
  explicit Loaded(const fs::path& dir)
      : weights(io::DiffusersFolder::at(dir).load_weights()),
        model(io::read_diffusers_unet_config(io::DiffusersFolder::at(dir).config, weights)) {
    io::load_diffusers_weights(weights, model);
  }
};

// A case's t and its labels or class vectors, as its model takes them.
template <class T>
struct Inputs {
  std::vector<double> t;
  std::vector<int64_t> labels;
  Tensor<T, Cpu> class_vectors;

  Inputs(const test::GoldenFile& golden, const nn::UNetConfig& config) : t(golden.values("input.t")) {
    if (config.num_classes > 0)
      for (double v : golden.values("input.labels")) labels.push_back(int64_t(v));
    if (config.takes_class_vectors()) class_vectors = golden.tensor<T, Cpu>("input.class_vectors");
  }
  Tensor<T, Cpu> forward(nn::UNet<T, Cpu>& model, const Tensor<T, Cpu>& x) const {
    return class_vectors.empty() ? model.forward(x, t, labels) : model.forward(x, t, class_vectors);
  }
  Tensor<T, Cpu> infer(nn::UNet<T, Cpu>& model, const Tensor<T, Cpu>& x) const {
    return class_vectors.empty() ? model.infer(x, t, labels) : model.infer(x, t, class_vectors);
  }
};

}  // namespace

TEST_CASE("diffusers: UNet2DModel folders load and match diffusers in float64, gradients too", "[diffusers]") {
  for (const std::string& name : golden_cases) {
    INFO("case " << name);
    const test::GoldenFile golden("golden", "diffusers/" + name);
    Loaded<double> loaded(golden_folder(name));
    nn::UNet<double, Cpu>& model = loaded.model;
    const Inputs<double> in(golden, model.config());
    const auto x = golden.tensor<double, Cpu>("input.x");
    // float64 on both sides, the same stored weights: the only differences
    // are rounding in sums taken in another order (~1e-15 relative).
    const Tensor<double, Cpu> y = in.forward(model, x);
    golden.check("output.y", y, 1e-12);
    nn::zero_grad(model);
    const Tensor<double, Cpu> dx = model.backward(golden.tensor<double, Cpu>("input.dy"));
    golden.check("grad.input.x", dx, 1e-11);
    for (const auto& p : nn::parameters_of(model))
      if (p.kind != nn::ParamKind::Frozen) golden.check("grad." + p.name, *p.grad, 1e-10);  // diffusers: no grad
    // infer is forward's arithmetic
    const Tensor<double, Cpu> inferred = in.infer(model, x);
    golden.check("output.y", inferred, 1e-12);
  }
}

TEST_CASE("diffusers: the float32 model matches diffusers' own float32 output", "[diffusers]") {
  for (const std::string& name : golden_cases) {
    INFO("case " << name);
    const test::GoldenFile golden("golden", "diffusers/" + name);
    Loaded<float> loaded(golden_folder(name));
    const Inputs<float> in(golden, loaded.model.config());
    const Tensor<float, Cpu> y = in.infer(loaded.model, golden.tensor<float, Cpu>("input.x"));
    // Two float32 computations with sums in different orders, through ~30
    // layers (and diffusers' float32 sinusoid against haze's double one):
    // measured at most 2.5e-6 of the output's scale on these six models
    // (the most with the Fourier projection, whose float32 angles of up to
    // ~1e3 diffusers rounds to ~6e-5);
    // 1e-5 leaves room for other compilers' roundings without admitting a
    // wrong layer (that is O(1) off).
    golden.check("output.y_float32", y, 1e-5);
  }
}

TEST_CASE("diffusers: config.json options map to UNetConfig", "[diffusers]") {
  const nn::UNetConfig ddpm = io::unet_config_from_diffusers(golden_config("ddpm_cifar10_narrow"), "config.json");
  CHECK(ddpm.block_out_channels == std::vector<int64_t>{8, 16, 16, 16});
  CHECK(ddpm.attention_levels == std::vector<int>{1});
  CHECK(ddpm.attention_head_dim == 0);
  CHECK_FALSE(ddpm.flip_sin_to_cos);
  CHECK(ddpm.freq_shift == 1);
  CHECK(ddpm.downsample_padding == 0);
  CHECK(ddpm.norm_eps == 1e-6);
  CHECK(ddpm.sample_size == 16);
  CHECK(ddpm.num_classes == 0);

  const nn::UNetConfig cond = io::unet_config_from_diffusers(golden_config("class_conditional_bf16"), "config.json");
  CHECK(cond.num_classes == 4);  // num_class_embeds 5: labels 0 .. 4, 4 being haze's null class
  CHECK(cond.num_class_embeds() == 5);
  CHECK(cond.center_input_sample);
  CHECK(cond.attn_norm_num_groups == 2);
  CHECK(cond.mid_block_scale_factor == std::sqrt(2.0));
  CHECK(cond.attention_levels == std::vector<int>{0, 2});
  CHECK(cond.sample_size == 8);
  CHECK(cond.sample_width == 12);

  const nn::UNetConfig plain = io::unet_config_from_diffusers(golden_config("no_mid_attention_f16"), "config.json");
  CHECK_FALSE(plain.mid_attention);
  CHECK(plain.dropout == 0.1);

  const nn::UNetConfig shift = io::unet_config_from_diffusers(golden_config("scale_shift"), "config.json");
  CHECK(shift.scale_shift);
  CHECK(shift.mid_attention_groups() == 0);  // diffusers' mid attention has no GroupNorm then
  const nn::UNetConfig score = io::unet_config_from_diffusers(golden_config("fourier_timestep_class"), "config.json");
  CHECK(score.fourier_time);
  CHECK(score.class_embed_type == nn::UNetConfig::ClassEmbedType::timestep);
  CHECK(score.num_classes == 3);
  CHECK(score.time_proj_dim() == 16);
  const nn::UNetConfig vectors = io::unet_config_from_diffusers(golden_config("identity_class"), "config.json");
  CHECK(vectors.class_embed_type == nn::UNetConfig::ClassEmbedType::identity);
  CHECK(vectors.num_classes == 0);

  // Written back, each reads as itself.
  for (const nn::UNetConfig& c : {ddpm, cond, plain, shift})
    CHECK(io::unet_config_from_diffusers(nlohmann::json::parse(io::diffusers_unet_config(c).dump()), "again") == c);
}

TEST_CASE("diffusers: options haze cannot reproduce are errors naming the option and the file", "[diffusers]") {
  const nlohmann::json good = golden_config("ddpm_cifar10_narrow");
  const auto with = [&](const std::string& key, nlohmann::json value) {
    nlohmann::json j = good;
    j[key] = std::move(value);
    return j;
  };
  const auto read = [](const nlohmann::json& j) { return io::unet_config_from_diffusers(j, "m/config.json"); };
  CHECK_THROWS_WITH(read(with("time_embedding_type", "learned")),
                    mentions("m/config.json: option 'time_embedding_type' = \"learned\" is not supported by haze "
                             "(positional, fourier)"));
  CHECK_THROWS_WITH(read(with("resnet_time_scale_shift", "ada_group")),
                    mentions("option 'resnet_time_scale_shift' = \"ada_group\" is not supported"));
  CHECK_THROWS_WITH(read(with("class_embed_type", "projection")),
                    mentions("option 'class_embed_type' = \"projection\" is not supported by haze (null, timestep, identity)"));
  CHECK_THROWS_WITH(read(with("class_embed_type", "timestep")),
                    mentions("m/config.json: class_embed_type \"timestep\" needs num_class_embeds in haze"));
  CHECK_THROWS_WITH(read(with("act_fn", "mish")), mentions("option 'act_fn' = \"mish\""));
  CHECK_THROWS_WITH(read(with("upsample_type", "resnet")), mentions("option 'upsample_type' = \"resnet\""));
  CHECK_THROWS_WITH(read(with("layers_per_block", 2.5)), mentions("option 'layers_per_block' is 2.5, not an integer"));
  CHECK_THROWS_WITH(read(with("norm_eps", "small")), mentions("option 'norm_eps' is \"small\", not a number"));
  CHECK_THROWS_WITH(read(with("num_class_embeds", 1)), mentions("num_class_embeds 1 is too few"));
  CHECK_THROWS_WITH(read(with("future_option", true)), mentions("m/config.json: option 'future_option' unknown to haze"));
  CHECK_THROWS_WITH(read(with("_class_name", "UNet2DConditionModel")), mentions("is not UNet2DModel"));
  nlohmann::json skip = good;
  skip["down_block_types"][2] = "SkipDownBlock2D";
  CHECK_THROWS_WITH(read(skip), mentions("down_block_types[2] = 'SkipDownBlock2D' is not supported"));
  nlohmann::json lopsided = good;
  lopsided["up_block_types"][0] = "AttnUpBlock2D";
  CHECK_THROWS_WITH(read(lopsided), mentions("down_block_types[3] = 'DownBlock2D' but up_block_types[0] = "
                                             "'AttnUpBlock2D'"));
  CHECK_THROWS_WITH(read(with("block_out_channels", {8, 16, 16})), mentions("4 down_block_types and 4 up_block_types "
                                                                            "for 3 block_out_channels"));
  CHECK_THROWS_WITH(read(with("attention_head_dim", 3)),
                    mentions("m/config.json: attention_head_dim 3 does not divide the 16 channels"));
  CHECK_THROWS_WITH(read(with("downsample_padding", 2)), mentions("downsample_padding must be 0 or 1, got 2"));
}

TEST_CASE("diffusers: a config larger than its weights is refused before a model is built", "[diffusers]") {
  const test::TempDir tmp;
  const fs::path dir = golden_folder("ddpm_cifar10_narrow");
  const io::Safetensors weights = io::load_safetensors(dir / "diffusion_pytorch_model.safetensors");
  const auto write_config = [&](const std::string& key, const nlohmann::json& value) {
    nlohmann::json j = golden_config("ddpm_cifar10_narrow");
    j[key] = value;
    const fs::path path = tmp.path() / "config.json";
    std::ofstream(path) << j.dump();
    return path;
  };
  // These would allocate terabytes (or loop for hours) if the model were built.
  CHECK_THROWS_WITH(io::read_diffusers_unet_config(write_config("block_out_channels", {1 << 20, 1 << 20, 1 << 20, 1 << 20}),
                                                   weights),
                    mentions("config.json needs a dimension of 1048576 but no tensor in the file has one that large"));
  CHECK_THROWS_WITH(io::read_diffusers_unet_config(write_config("layers_per_block", 1 << 30), weights),
                    mentions("config.json has layers_per_block 1073741824 but the file holds only"));
  CHECK_THROWS_WITH(io::read_diffusers_unet_config(write_config("layers_per_block", 3), weights),
                    mentions("parameters are not in the file"));
  CHECK(io::read_diffusers_unet_config(write_config("layers_per_block", 2), weights).layers_per_block == 2);
  std::ofstream(tmp.path() / "big.json") << std::string(2 << 20, ' ') << "{}";
  CHECK_THROWS_WITH(io::read_diffusers_unet_config(tmp.path() / "big.json"), mentions("is too large for a diffusers config"));
  std::ofstream(tmp.path() / "bad.json") << "{\"in_channels\": ";
  CHECK_THROWS_WITH(io::read_diffusers_unet_config(tmp.path() / "bad.json"), mentions("bad.json: not valid JSON"));
}

TEST_CASE("diffusers: the weights load strictly, all or nothing", "[diffusers]") {
  const fs::path dir = golden_folder("ddpm_cifar10_narrow");
  const io::Safetensors good = io::load_safetensors(io::DiffusersFolder::at(dir).weights);
  nn::UNet<float, Cpu> model(io::read_diffusers_unet_config(dir / "config.json"));
  io::load_diffusers_weights(good, model);
  const std::vector<float> before = nn::parameters_of(model)[0].value->to_host();

  const auto changed = [&](auto edit) {
    io::Safetensors file = good;
    file.source = "w.safetensors";
    edit(file);
    return file;
  };
  const auto unchanged = [&] { CHECK(nn::parameters_of(model)[0].value->to_host() == before); };
  const io::Safetensors missing = changed([](io::Safetensors& f) {
    f.tensors.erase(std::find_if(f.tensors.begin(), f.tensors.end(), [](const auto& t) { return t.name == "conv_out.bias"; }));
  });
  CHECK_THROWS_WITH(io::load_diffusers_weights(missing, model),
                    mentions("w.safetensors: 1 of the model's 328 parameters are not in the file: 'conv_out.bias'"));
  unchanged();
  const io::Safetensors extra = changed([](io::Safetensors& f) {
    f.add(io::TensorRecord::from<float>("spare.weight", {2}, std::vector<float>{1, 2}));
  });
  CHECK_THROWS_WITH(io::load_diffusers_weights(extra, model),
                    mentions("1 tensors in the file are not parameters of the model: 'spare.weight'"));
  io::load_diffusers_weights(extra, model, {.allow_unused = true});
  const io::Safetensors misshapen = changed([](io::Safetensors& f) {
    for (io::TensorRecord& r : f.tensors)
      if (r.name == "conv_in.weight") r = io::TensorRecord::from<float>(r.name, {8, 27}, r.to_real<float>());
  });
  CHECK_THROWS_WITH(io::load_diffusers_weights(misshapen, model),
                    mentions("w.safetensors: tensor 'conv_in.weight' is [8, 27] but the model's 'conv_in.weight' is "
                             "[8, 3, 3, 3]"));
  const io::Safetensors nan = changed([](io::Safetensors& f) {
    io::TensorRecord& r = f.tensors.back();
    std::vector<float> v = r.to_real<float>();
    v[0] = NAN;
    r = io::TensorRecord::from<float>(r.name, r.shape, v);
  });
  CHECK_THROWS_WITH(io::load_diffusers_weights(nan, model), mentions("holds 1 NaN or infinite values"));
  const io::Safetensors ints = changed([](io::Safetensors& f) {
    io::TensorRecord& r = f.tensors.back();
    r = io::TensorRecord::from<int32_t>(r.name, r.shape, std::vector<int32_t>(size_t(r.numel()), 1));
  });
  CHECK_THROWS_WITH(io::load_diffusers_weights(ints, model), mentions("holds I32, not a floating-point type"));
  unchanged();
}

TEST_CASE("diffusers: sharded weights load through their index, each tensor from its own shard", "[diffusers]") {
  const test::TempDir tmp;
  const fs::path source = golden_folder("class_conditional_bf16");
  const io::Safetensors whole = io::load_safetensors(source / "diffusion_pytorch_model.safetensors");
  // Two shards, tensors alternating between them, and the index diffusers writes beside them.
  const auto write_folder = [&](const fs::path& dir, nlohmann::json weight_map) {
    fs::create_directories(dir);
    fs::copy_file(source / "config.json", dir / "config.json");
    io::Safetensors shards[2];
    for (size_t i = 0; i < whole.tensors.size(); ++i) shards[i % 2].add(whole.tensors[i]);
    io::save_safetensors(dir / "diffusion_pytorch_model-00001-of-00002.safetensors", shards[0]);
    io::save_safetensors(dir / "diffusion_pytorch_model-00002-of-00002.safetensors", shards[1]);
    std::ofstream(dir / "diffusion_pytorch_model.safetensors.index.json")
        << nlohmann::json{{"metadata", {{"total_size", 1}}}, {"weight_map", weight_map}}.dump();
  };
  nlohmann::json map;
  for (size_t i = 0; i < whole.tensors.size(); ++i)
    map[whole.tensors[i].name] = i % 2 ? "diffusion_pytorch_model-00002-of-00002.safetensors"
                                       : "diffusion_pytorch_model-00001-of-00002.safetensors";
  write_folder(tmp.path() / "good", map);
  const io::DiffusersFolder folder = io::DiffusersFolder::at(tmp.path() / "good");
  CHECK(folder.weights.empty());
  const io::Safetensors loaded = folder.load_weights();
  nn::UNet<float, Cpu> a(io::read_diffusers_unet_config(folder.config, loaded)), b(a.config());
  io::load_diffusers_weights(loaded, a);
  io::load_diffusers_weights(whole, b);
  const auto pa = nn::parameters_of(a), pb = nn::parameters_of(b);
  for (size_t i = 0; i < pa.size(); ++i) CHECK(pa[i].value->to_host() == pb[i].value->to_host());

  nlohmann::json wrong = map;  // a tensor the index puts in the other shard
  wrong["conv_in.weight"] = "diffusion_pytorch_model-00002-of-00002.safetensors";
  write_folder(tmp.path() / "wrong", wrong);
  CHECK_THROWS_WITH(io::DiffusersFolder::at(tmp.path() / "wrong").load_weights(),
                    mentions("tensor 'conv_in.weight' is not mapped to this shard by"));
  nlohmann::json escape = map;  // a shard outside the folder
  escape["conv_in.weight"] = "../elsewhere.safetensors";
  write_folder(tmp.path() / "escape", escape);
  CHECK_THROWS_WITH(io::DiffusersFolder::at(tmp.path() / "escape").load_weights(),
                    mentions("shard '../elsewhere.safetensors' of tensor 'conv_in.weight' is not a file name in the "
                             "model's folder"));
  nlohmann::json extra = map;  // a tensor the index promises and no shard holds
  extra["spare.weight"] = "diffusion_pytorch_model-00001-of-00002.safetensors";
  write_folder(tmp.path() / "extra", extra);
  CHECK_THROWS_WITH(io::DiffusersFolder::at(tmp.path() / "extra").load_weights(),
                    mentions("1 tensors that"));
  CHECK_THROWS_WITH(io::DiffusersFolder::at(tmp.path() / "extra").load_weights(), mentions("e.g. 'spare.weight'"));
}

TEST_CASE("diffusers: attention tensors under their pre-0.15 names load as today's", "[diffusers]") {
  const fs::path dir = golden_folder("ddpm_cifar10_narrow");
  const io::Safetensors current = io::load_safetensors(dir / "diffusion_pytorch_model.safetensors");
  io::Safetensors old = current;
  int renamed = 0;
  for (io::TensorRecord& r : old.tensors) {
    for (const auto& [from, to] : {std::pair{".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."},
                                   {".to_out.0.", ".proj_attn."}})
      if (const size_t at = r.name.find(from); at != std::string::npos) {
        r.name.replace(at, std::string(from).size(), to);
        ++renamed;
      }
  }
  CHECK(renamed == 6 * 8);  // two down attentions, three up, one mid; four Linears of two tensors each
  const nn::UNetConfig config = io::read_diffusers_unet_config(dir / "config.json");
  nn::UNet<float, Cpu> a(config), b(config);
  io::load_diffusers_weights(current, a);
  io::load_diffusers_weights(old, b);
  const auto pa = nn::parameters_of(a), pb = nn::parameters_of(b);
  for (size_t i = 0; i < pa.size(); ++i) CHECK(pa[i].value->to_host() == pb[i].value->to_host());
}

TEST_CASE("diffusers: a Fourier projection's frequencies load from 'W', 'weight' or both when they agree",
          "[diffusers]") {
  const fs::path dir = golden_folder("fourier_timestep_class");
  const io::Safetensors both = io::load_safetensors(dir / "diffusion_pytorch_model.safetensors");
  REQUIRE(both.find("time_proj.W"));  // the golden folder stores the two tied names
  REQUIRE(both.find("time_proj.weight"));
  const nn::UNetConfig config = io::read_diffusers_unet_config(dir / "config.json", both);
  const std::vector<float> frequencies = both.at("time_proj.weight").to_real<float>();
  for (const char* dropped : {"time_proj.W", "time_proj.weight"}) {
    INFO("without " << dropped);
    io::Safetensors one = both;
    std::erase_if(one.tensors, [&](const io::TensorRecord& t) { return t.name == dropped; });
    nn::UNet<float, Cpu> model(io::read_diffusers_unet_config(dir / "config.json", one));
    io::load_diffusers_weights(one, model);
    CHECK(nn::parameters_of(model)[2].value->to_host() == frequencies);
  }
  io::Safetensors differ = both;
  for (io::TensorRecord& t : differ.tensors)
    if (t.name == "time_proj.W") t = io::TensorRecord::from<float>(t.name, t.shape, std::vector<float>(frequencies.size(), 1.0f));
  nn::UNet<float, Cpu> model(config);
  CHECK_THROWS_WITH(io::load_diffusers_weights(differ, model),
                    mentions("tensors 'time_proj.W' and 'time_proj.weight' differ; diffusers ties them to one tensor"));
  // export writes the frequencies once, under the name diffusers' loader reads
  const io::Safetensors exported = io::diffusers_state_dict(model);
  CHECK(exported.find("time_proj.weight"));
  CHECK_FALSE(exported.find("time_proj.W"));
  CHECK(io::unet_config_from_diffusers(nlohmann::json::parse(io::diffusers_unet_config(config).dump()), "x") == config);
}

TEST_CASE("diffusers: F16 and BF16 widen exactly", "[diffusers]") {
  const uint16_t halves[] = {0x3c00, 0xc000, 0x0001, 0x8400, 0x7bff, 0x7c00, 0x0000, 0x8000};
  const float expected[] = {1.0f, -2.0f, 0x1p-24f, -0x1p-14f, 65504.0f, INFINITY, 0.0f, -0.0f};
  for (size_t i = 0; i < 8; ++i) {
    CAPTURE(i);
    CHECK(io::detail::half_to_float(halves[i]) == expected[i]);
    CHECK(std::signbit(io::detail::half_to_float(halves[i])) == std::signbit(expected[i]));
  }
  CHECK(std::isnan(io::detail::half_to_float(0x7e00)));
  CHECK(io::detail::bfloat16_to_float(0x3f80) == 1.0f);
  CHECK(io::detail::bfloat16_to_float(0xc2f7) == -123.5f);
}

TEST_CASE("diffusers: scheduler_config.json gives the schedule and the sampler's settings", "[diffusers]") {
  const io::DiffusersScheduler ddpm =
      io::read_diffusers_scheduler(golden_folder("ddpm_cifar10_narrow") / "scheduler_config.json");
  CHECK(ddpm.sampler == "ddpm");
  CHECK(ddpm.schedule.description() == Schedule::make("linear", 1000, {1e-4, 0.02}).description());
  CHECK(ddpm.clip_sample);
  CHECK(ddpm.prediction == "epsilon");
  CHECK(ddpm.variance == sample::Variance::FixedSmall);
  CHECK(ddpm.spacing == sample::Spacing::Leading);

  const io::DiffusersScheduler cosine =
      io::read_diffusers_scheduler(golden_folder("no_mid_attention_f16") / "scheduler_config.json");
  CHECK(cosine.schedule.description() == Schedule::make("cosine", 1000, {0.008, 0.999}).description());
  CHECK(cosine.prediction == "sample");

  const fs::path ddim = golden_folder("class_conditional_bf16") / "scheduler_config.json";
  const io::DiffusersScheduler v = io::read_diffusers_scheduler(ddim);
  CHECK(v.sampler == "ddim");
  CHECK(v.prediction == "velocity");
  CHECK(v.spacing == sample::Spacing::Trailing);
  CHECK(v.steps_offset == 1);
  CHECK_FALSE(v.set_alpha_to_one);
  CHECK(v.schedule.steps() == 500);
  CHECK_FALSE(v.clip_sample);
  nlohmann::json j = io::detail::read_json_file(ddim);
  j["thresholding"] = true;
  CHECK_THROWS_WITH(io::scheduler_from_diffusers(j, "s.json"), mentions("s.json: option 'thresholding' = true is not supported"));
  j["thresholding"] = false;
  j["beta_schedule"] = "exponential";
  CHECK_THROWS_WITH(io::scheduler_from_diffusers(j, "s.json"), mentions("s.json: beta_schedule 'exponential': "));
  j["beta_schedule"] = "linear";
  j["prediction_type"] = "flow";
  CHECK_THROWS_WITH(io::scheduler_from_diffusers(j, "s.json"), mentions("prediction_type 'flow' is not supported"));
  j["prediction_type"] = "epsilon";
  j["_class_name"] = "LCMScheduler";
  CHECK_THROWS_WITH(io::scheduler_from_diffusers(j, "s.json"), mentions("scheduler 'LCMScheduler' is not one haze"));
  j["_class_name"] = "DDIMScheduler";
  j["trained_betas"] = {0.1, 0.2};
  CHECK_THROWS_WITH(io::scheduler_from_diffusers(j, "s.json"), mentions("option 'trained_betas' is not supported"));
}

TEST_CASE("diffusers: DDIM with a scheduler config's settings steps as DDIMScheduler does", "[diffusers][sampler]") {
  // diffusers_golden.py ran DDIMScheduler in float64 under a fixed elementwise
  // "model"; the same settings here must visit the same timesteps and end at
  // the same sample (1e-12: float64 on both sides, the same formulas).
  const test::GoldenFile golden("ddim_steps", "diffusers");
  const Tensor<double, Cpu> x_T = golden.tensor<double, Cpu>("input.x_T");
  struct Model {
    Tensor<double, Cpu> operator()(const Tensor<double, Cpu>& x, double t) const {
      std::vector<double> v = x.to_host();
      for (double& e : v) e = 0.5 * e * std::cos(t / 1000) + 0.1;
      return Tensor<double, Cpu>::from_host(x.shape(), v);
    }
  };
  for (const auto& [name, clipped_output] : {std::pair<std::string, bool>{"leading_offset_clip", false},
                                             {"trailing_v", false}, {"linspace_clipped_output", true}}) {
    INFO("case " << name);
    const io::DiffusersScheduler s =
        io::read_diffusers_scheduler(golden_folder("ddim_steps") / name / "scheduler_config.json");
    const std::vector<double> ts = golden.values(name + ".timesteps");
    sample::SamplerSettings settings = s.settings(int(ts.size()));
    settings.eps_from_clipped_x0 = clipped_output;  // diffusers' use_clipped_model_output, a step() argument
    const sample::Ddim<predict::Epsilon> grid(s.schedule, {.steps = settings.steps, .spacing = settings.spacing,
                                                           .steps_offset = settings.steps_offset});
    CHECK(std::vector<double>(grid.timesteps_used().begin(), grid.timesteps_used().end()) == ts);
    Generator gen{0};
    const Tensor<double, Cpu> x0 = sample::with_prediction(s.prediction, [&]<class P>(P) {
      return sample::run_sampler<P>("ddim", s.schedule, settings, Model{}, x_T.clone(), gen);
    });
    golden.check(name + ".x0", x0, 1e-12);
  }
  // haze's own conventions differ where the grid is not evenly divided
  // (trailing_v: 500 / 7): the next entry as the previous timestep.
  const io::DiffusersScheduler s =
      io::read_diffusers_scheduler(golden_folder("ddim_steps") / "trailing_v" / "scheduler_config.json");
  sample::SamplerSettings haze_settings = s.settings(7);
  haze_settings.previous_by_stride = false;
  Generator gen{0};
  const auto own = sample::run_sampler<predict::Velocity>("ddim", s.schedule, haze_settings, Model{}, x_T.clone(), gen);
  CHECK(own.to_host() != golden.tensor<double, Cpu>("trailing_v.x0").to_host());
}

TEST_CASE("diffusers: an exported model reads back as it was", "[diffusers]") {
  const test::TempDir tmp;
  const fs::path source = golden_folder("class_conditional_bf16");
  Loaded<float> loaded(source);
  const Schedule schedule = Schedule::make("cosine", 1000, {0.008, 0.999});
  io::export_diffusers(tmp.path() / "pipeline", loaded.model, schedule, "velocity");
  for (const char* file : {"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                           "scheduler/scheduler_config.json"})
    CHECK(fs::exists(tmp.path() / "pipeline" / file));

  const io::DiffusersFolder folder = io::DiffusersFolder::at(tmp.path() / "pipeline");
  const nn::UNetConfig config = io::read_diffusers_unet_config(folder.config);
  CHECK(config == loaded.model.config());
  nn::UNet<float, Cpu> again(config);
  io::load_diffusers_weights(io::load_safetensors(folder.weights), again);
  const auto a = nn::parameters_of(loaded.model), b = nn::parameters_of(again);
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) CHECK(a[i].value->to_host() == b[i].value->to_host());
  const io::DiffusersScheduler s = io::read_diffusers_scheduler(folder.scheduler);
  CHECK(s.schedule.description() == schedule.description());
  CHECK(s.prediction == "velocity");
  CHECK(s.clip_sample);

  // A class baked in: an unconditional model that gives the conditional
  // one's output for that class. The bias absorbs the class row in one float
  // rounding, against two in the conditional model's float sums: outputs
  // agree to a few ulps of the embedding, ~1e-6 of the output's scale.
  io::export_diffusers(tmp.path() / "baked", loaded.model, schedule, "velocity", true, int64_t(2));
  const io::DiffusersFolder baked_folder = io::DiffusersFolder::at(tmp.path() / "baked");
  const io::Safetensors baked_weights = io::load_safetensors(baked_folder.weights);
  nn::UNet<float, Cpu> baked(io::read_diffusers_unet_config(baked_folder.config, baked_weights));
  CHECK(baked.config().num_classes == 0);
  io::load_diffusers_weights(baked_weights, baked);
  const auto x = Tensor<float, Cpu>::from_host({2, 2, 8, 12}, test::uniform<float>(2 * 2 * 96, 5));
  const std::vector<double> t = {30, 400};
  const Tensor<float, Cpu> want = loaded.model.infer(x, t, std::vector<int64_t>{2, 2});
  const auto c = verify::compare(baked.infer(x, t), want, 1e-5, 1e-5);
  INFO(c);
  CHECK(c.ok());
  CHECK_THROWS_WITH(io::export_diffusers(tmp.path() / "bad", loaded.model, schedule, "velocity", true, int64_t(5)),
                    mentions("class 5 outside [0, 4] (4 is the null class)"));

  // A schedule diffusers has no name for is refused before anything is written.
  CHECK_THROWS_WITH(io::export_diffusers(tmp.path() / "other", loaded.model, Schedule::make("sigmoid", 1000), "epsilon"),
                    mentions("has no diffusers beta_schedule"));
  CHECK_FALSE(fs::exists(tmp.path() / "other"));
}
