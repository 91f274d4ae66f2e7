#pragma once
// Checkpoints: a training state as one safetensors file.
//
//   <name>               model parameters under their diffusers names
//   ema.<name>           the EMA weights
//   adamw.m.<name>       AdamW's first moments,  adamw.v.<name> the second
//   __metadata__         haze.format, haze.model (the model's config as JSON,
//                        given by the caller), haze.schedule (its description)
//                        and haze.schedule.json, haze.prediction,
//                        haze.dtype, haze.step, haze.rng.seed / .offset,
//                        haze.data.epoch / .position, plus the caller's keys
//
// Loading checks everything before it changes anything: a checkpoint that
// does not fit (another model, schedule, parameterization or dtype; a
// missing or misshapen tensor) throws haze::Error naming the file and the
// first mismatch, and the trainer is left as it was. Saving is atomic
// (io/atomic_file.hpp), so an interrupted save never harms the previous file.

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "haze/backend/meta.hpp"
#include "haze/diffusion/parameterization.hpp"
#include "haze/io/safetensors.hpp"
#include "haze/io/unet_fits_file.hpp"
#include "haze/nn/unet.hpp"
#include "haze/nn/unet_config.hpp"
#include "haze/train/trainer.hpp"

namespace haze::io {

inline constexpr std::string_view checkpoint_format = "haze-checkpoint-1";

// ---- UNetConfig <-> JSON (the haze.model metadata of UNet checkpoints) -----
// The fields added for diffusers models are written only when they differ
// from their defaults, so that the JSON of a config that does not use them
// is what it was before they existed (and older checkpoints still match).
inline std::string unet_config_json(const nn::UNetConfig& c) {
  nlohmann::ordered_json j = {{"kind", "unet"},
                              {"in_channels", c.in_channels},
                              {"out_channels", c.out_channels},
                              {"block_out_channels", c.block_out_channels},
                              {"layers_per_block", c.layers_per_block},
                              {"attention_levels", c.attention_levels},
                              {"attention_head_dim", c.attention_head_dim},
                              {"norm_groups", c.norm_groups},
                              {"norm_eps", c.norm_eps},
                              {"dropout", c.dropout},
                              {"num_classes", c.num_classes}};
  const nn::UNetConfig d;
  if (c.flip_sin_to_cos != d.flip_sin_to_cos) j["flip_sin_to_cos"] = c.flip_sin_to_cos;
  if (c.freq_shift != d.freq_shift) j["freq_shift"] = c.freq_shift;
  if (c.downsample_padding != d.downsample_padding) j["downsample_padding"] = c.downsample_padding;
  if (c.mid_block_scale_factor != d.mid_block_scale_factor) j["mid_block_scale_factor"] = c.mid_block_scale_factor;
  if (c.mid_attention != d.mid_attention) j["mid_attention"] = c.mid_attention;
  if (c.attn_norm_num_groups != d.attn_norm_num_groups) j["attn_norm_num_groups"] = c.attn_norm_num_groups;
  if (c.center_input_sample != d.center_input_sample) j["center_input_sample"] = c.center_input_sample;
  if (c.scale_shift != d.scale_shift) j["scale_shift"] = c.scale_shift;
  if (c.fourier_time != d.fourier_time) j["fourier_time"] = c.fourier_time;
  if (c.class_embed_type != d.class_embed_type) j["class_embed_type"] = nn::class_embed_type_name(c.class_embed_type);
  if (c.sample_size != d.sample_size) j["sample_size"] = c.sample_size;
  if (c.sample_width != d.sample_width) j["sample_width"] = c.sample_width;
  return j.dump();
}

inline nn::UNetConfig unet_config_from_json(std::string_view text, std::string_view source) {
  nn::UNetConfig c;
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    HAZE_REQUIRE(j.is_object() && j.value("kind", "") == "unet", source, ": haze.model does not describe a UNet: ",
                 text);
    c.in_channels = j.at("in_channels").get<int64_t>();
    c.out_channels = j.at("out_channels").get<int64_t>();
    c.block_out_channels = j.at("block_out_channels").get<std::vector<int64_t>>();
    c.layers_per_block = j.at("layers_per_block").get<int>();
    c.attention_levels = j.at("attention_levels").get<std::vector<int>>();
    c.attention_head_dim = j.at("attention_head_dim").get<int64_t>();
    c.norm_groups = j.at("norm_groups").get<int64_t>();
    c.norm_eps = j.at("norm_eps").get<double>();
    c.dropout = j.at("dropout").get<double>();
    c.num_classes = j.at("num_classes").get<int64_t>();
    c.flip_sin_to_cos = j.value("flip_sin_to_cos", c.flip_sin_to_cos);
    c.freq_shift = j.value("freq_shift", c.freq_shift);
    c.downsample_padding = j.value("downsample_padding", c.downsample_padding);
    c.mid_block_scale_factor = j.value("mid_block_scale_factor", c.mid_block_scale_factor);
    c.mid_attention = j.value("mid_attention", c.mid_attention);
    c.attn_norm_num_groups = j.value("attn_norm_num_groups", c.attn_norm_num_groups);
    c.center_input_sample = j.value("center_input_sample", c.center_input_sample);
    c.scale_shift = j.value("scale_shift", c.scale_shift);
    c.fourier_time = j.value("fourier_time", c.fourier_time);
    if (j.contains("class_embed_type")) {
      const std::string type = j.at("class_embed_type").get<std::string>();
      bool known = false;
      for (const auto t : {nn::UNetConfig::ClassEmbedType::table, nn::UNetConfig::ClassEmbedType::timestep,
                           nn::UNetConfig::ClassEmbedType::identity})
        if (type == nn::class_embed_type_name(t)) {
          c.class_embed_type = t;
          known = true;
        }
      HAZE_REQUIRE(known, source, ": haze.model has class_embed_type '", type, "' (expected table, timestep or identity)");
    }
    c.sample_size = j.value("sample_size", c.sample_size);
    c.sample_width = j.value("sample_width", c.sample_width);
  } catch (const nlohmann::json::exception& e) {
    HAZE_FAIL(source, ": haze.model is not a valid UNet config (", e.what(), "): ", text);
  }
  c.validate(std::string(source) + ": haze.model");
  return c;
}

// ---- Schedule <-> JSON (haze.schedule.json: what rebuilds it for sampling) --
inline std::string schedule_json(const Schedule& s) {
  const nlohmann::ordered_json j = {{"kind", s.kind()},
                              {"steps", s.steps()},
                              {"parameters", s.parameters()},
                              {"zero_terminal_snr", s.zero_terminal_snr()}};
  return j.dump();
}

inline Schedule schedule_from_json(std::string_view text, std::string_view source) {
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    const auto kind = j.at("kind").get<std::string>();
    const auto steps = j.at("steps").get<int>();
    const auto parameters = j.at("parameters").get<std::vector<double>>();
    const auto zero_terminal_snr = j.at("zero_terminal_snr").get<bool>();
    return haze::detail::with_context(std::string(source) + ": haze.schedule.json", [&] {
      return Schedule::make(kind, steps, parameters, zero_terminal_snr);
    });
  } catch (const nlohmann::json::exception& e) {
    HAZE_FAIL(source, ": haze.schedule.json is not a valid schedule (", e.what(), "): ", text);
  }
}

// ---- metadata helpers -------------------------------------------------------
// A metadata value that must be there.
inline const std::string& required_metadata(const Safetensors& file, const std::string& key) {
  const auto it = file.metadata.find(key);
  HAZE_REQUIRE(it != file.metadata.end(), file.source, ": metadata key '", key, "' is missing (not a haze checkpoint?)");
  return it->second;
}

// haze.prediction, checked to be a parameterization haze knows.
inline const std::string& required_prediction(const Safetensors& file) {
  const std::string& name = required_metadata(file, "haze.prediction");
  HAZE_REQUIRE(name == predict::Epsilon::name || name == predict::Sample::name || name == predict::Velocity::name,
               file.source, ": haze.prediction '", name, "' is not a known prediction type (known: ",
               predict::Epsilon::name, ", ", predict::Sample::name, ", ", predict::Velocity::name, ")");
  return name;
}

namespace detail {

template <class I>
I metadata_integer(const Safetensors& file, const std::string& key) {
  const std::string& text = required_metadata(file, key);
  I value{};
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  HAZE_REQUIRE(error == std::errc() && end == text.data() + text.size(), file.source, ": metadata '", key, "' = '",
               text, "' is not an integer");
  return value;
}

// Two model descriptions (JSON) that build the same model: equal but for
// the image size a model was made for, which changes no tensor (a
// checkpoint written before the size was recorded resumes in a run that
// records it).
inline bool same_model(std::string_view a, std::string_view b) {
  nlohmann::json ja = nlohmann::json::parse(a, nullptr, false), jb = nlohmann::json::parse(b, nullptr, false);
  for (nlohmann::json* j : {&ja, &jb})
    if (j->is_object())
      for (const char* key : {"sample_size", "sample_width"}) j->erase(key);
  return !ja.is_discarded() && ja == jb;
}

// The destination of every tensor a checkpoint must hold, with its file name.
template <Real T, Backend B>
struct Slot {
  std::string name;
  Tensor<T, B>* tensor;
};

// `owner` says where the expected shapes come from ("the model", or the
// config a file describes).
template <Real T, Backend B>
void require_fits(const Safetensors& file, const std::vector<Slot<T, B>>& slots,
                  std::string_view owner = "the model") {
  for (const auto& slot : slots) {
    const TensorRecord* r = file.find(slot.name);
    HAZE_REQUIRE(r != nullptr, file.source, ": tensor '", slot.name, "' is missing (a checkpoint of another model?)");
    HAZE_REQUIRE(r->dtype == dtype_of<T>::value, file.source, ": tensor '", slot.name, "' holds ", dtype_name(r->dtype),
                 " but ", owner, " is ", dtype_name(dtype_of<T>::value));
    const Shape want = slot.tensor->shape();
    bool same = static_cast<int>(r->shape.size()) == want.rank();
    for (int i = 0; same && i < want.rank(); ++i) same = r->shape[static_cast<size_t>(i)] == want[i];
    HAZE_REQUIRE(same, file.source, ": tensor '", slot.name, "' is ", shape_text(r->shape), " in the file but ", want,
                 " in ", owner, " (a checkpoint of another config?)");
  }
}

// Non-finite weights are refused on load: a NaN in one weight turns every
// output into NaN, and it is better said here, by name, than found later.
template <Real T, Backend B>
void require_finite(const Safetensors& file, const std::vector<Slot<T, B>>& slots) {
  for (const auto& slot : slots) {
    const std::vector<T> values = file.at(slot.name).template as<T>();
    const auto bad = std::count_if(values.begin(), values.end(), [](T v) { return !std::isfinite(v); });
    HAZE_REQUIRE(bad == 0, file.source, ": tensor '", slot.name, "' holds ", bad, " NaN or infinite values of ",
                 values.size(), "; refusing to load it");
  }
}

template <Real T, Backend B>
void assign(const Safetensors& file, const std::vector<Slot<T, B>>& slots) {
  require_fits(file, slots);
  require_finite(file, slots);
  for (const auto& slot : slots) slot.tensor->assign_from_host(file.at(slot.name).template as<T>());
}

template <Real T, Backend B>
std::vector<Slot<T, B>> model_slots(const nn::Parameters<T, B>& params, const std::string& prefix) {
  std::vector<Slot<T, B>> slots;
  for (const auto& p : params) slots.push_back({prefix + p.name, p.value});
  return slots;
}

// The tensor as a record to save; NaN or infinite values are refused, so a
// diverged run can never replace a good checkpoint with a poisoned one.
template <Real T, Backend B>
TensorRecord finite_record_of(const std::string& name, const Tensor<T, B>& t, const std::filesystem::path& path) {
  const Shape s = t.shape();
  std::vector<int64_t> dims;
  for (int i = 0; i < s.rank(); ++i) dims.push_back(s[i]);
  const std::vector<T> values = t.to_host();
  const auto bad = std::count_if(values.begin(), values.end(), [](T v) { return !std::isfinite(v); });
  HAZE_REQUIRE(bad == 0, "save_checkpoint '", path.string(), "': tensor '", name, "' holds ", bad,
               " NaN or infinite values of ", values.size(), "; refusing to save (the file on disk is unchanged)");
  return TensorRecord::from<T>(name, dims, values);
}

}  // namespace detail

// ---- training checkpoints ---------------------------------------------------

// Writes the trainer's whole state; model_json describes the model
// (unet_config_json for a UNet), extra holds the caller's own keys.
template <class Model, Prediction P>
void save_checkpoint(const std::filesystem::path& path, train::Trainer<Model, P>& trainer, const std::string& model_json,
                     const std::map<std::string, std::string>& extra = {}) {
  using T = typename Model::value_type;
  Safetensors file;
  file.metadata = extra;
  file.metadata["haze.format"] = std::string(checkpoint_format);
  file.metadata["haze.model"] = model_json;
  file.metadata["haze.schedule"] = trainer.schedule().description();
  file.metadata["haze.schedule.json"] = schedule_json(trainer.schedule());
  file.metadata["haze.prediction"] = std::string(P::name);
  file.metadata["haze.dtype"] = std::string(dtype_name(dtype_of<T>::value));
  file.metadata["haze.step"] = std::to_string(trainer.steps_taken());
  file.metadata["haze.rng.seed"] = std::to_string(trainer.generator().seed);
  file.metadata["haze.rng.offset"] = std::to_string(trainer.generator().offset);
  file.metadata["haze.data.seed"] = std::to_string(trainer.order().seed());
  file.metadata["haze.data.count"] = std::to_string(trainer.order().count());
  file.metadata["haze.data.epoch"] = std::to_string(trainer.order().epoch());
  file.metadata["haze.data.position"] = std::to_string(trainer.order().position());
  const auto& params = trainer.parameters();
  const auto add = [&](const std::string& name, const Tensor<T, typename Model::backend_type>& t) {
    file.add(detail::finite_record_of(name, t, path));
  };
  for (size_t i = 0; i < params.size(); ++i) add(params[i].name, *params[i].value);
  for (size_t i = 0; i < params.size(); ++i) add("ema." + params[i].name, trainer.ema().shadow(i));
  for (size_t i = 0; i < params.size(); ++i) {
    add("adamw.m." + params[i].name, trainer.optimizer().first_moment(i));
    add("adamw.v." + params[i].name, trainer.optimizer().second_moment(i));
  }
  save_safetensors(path, file);
}

// Restores a state written by save_checkpoint into a trainer built with the
// same model, schedule and parameterization; all or nothing. A trainer of
// several ranks: every rank calls it, and each ends with rank 0's state.
template <class Model, Prediction P>
void load_checkpoint(const Safetensors& file, train::Trainer<Model, P>& trainer, const std::string& model_json) {
  using T = typename Model::value_type;
  using B = typename Model::backend_type;
  HAZE_REQUIRE(required_metadata(file, "haze.format") == checkpoint_format, file.source, ": format '",
               required_metadata(file, "haze.format"), "', expected '", checkpoint_format, "'");
  const std::string& model = required_metadata(file, "haze.model");
  HAZE_REQUIRE(detail::same_model(model, model_json), file.source, ": written for model ", model,
               " but this model is ", model_json);
  const std::string& schedule = required_metadata(file, "haze.schedule");
  HAZE_REQUIRE(schedule == trainer.schedule().description(), file.source, ": written with schedule ",
               schedule, " but training uses ", trainer.schedule().description());
  const std::string& prediction = required_prediction(file);
  HAZE_REQUIRE(prediction == P::name, file.source, ": written for ", prediction, " prediction, training uses ", P::name);
  const auto step = detail::metadata_integer<int64_t>(file, "haze.step");
  const auto seed = detail::metadata_integer<uint64_t>(file, "haze.rng.seed");
  const auto offset = detail::metadata_integer<uint64_t>(file, "haze.rng.offset");
  const auto data_seed = detail::metadata_integer<uint64_t>(file, "haze.data.seed");
  const auto data_count = detail::metadata_integer<int64_t>(file, "haze.data.count");
  const auto epoch = detail::metadata_integer<int64_t>(file, "haze.data.epoch");
  const auto position = detail::metadata_integer<int64_t>(file, "haze.data.position");
  HAZE_REQUIRE(step >= 0 && epoch >= 0 && position >= 0, file.source, ": negative step, epoch or position");

  const auto& params = trainer.parameters();
  std::vector<detail::Slot<T, B>> slots = detail::model_slots(params, "");
  for (size_t i = 0; i < params.size(); ++i) {
    slots.push_back({"ema." + params[i].name, &trainer.ema().shadow(i)});
    slots.push_back({"adamw.m." + params[i].name, &trainer.optimizer().first_moment(i)});
    slots.push_back({"adamw.v." + params[i].name, &trainer.optimizer().second_moment(i)});
  }
  detail::require_fits(file, slots);
  HAZE_REQUIRE(data_count == trainer.order().count(), file.source, ": written for a dataset of ", data_count,
               " items, training has ", trainer.order().count());
  train::BatchOrder order(data_count, data_seed);
  // Validates the position before anything changes.
  haze::detail::with_context(file.source, [&] { order.seek(epoch, position); });

  detail::assign(file, slots);
  trainer.optimizer().set_steps_taken(step);
  trainer.generator() = Generator{seed, offset};
  trainer.order() = std::move(order);
  trainer.share_state();  // with several ranks: rank 0's file wins
}

template <class Model, Prediction P>
void load_checkpoint(const std::filesystem::path& path, train::Trainer<Model, P>& trainer, const std::string& model_json) {
  load_checkpoint(load_safetensors(path), trainer, model_json);
}

// Loads a model's weights from a checkpoint, the EMA weights when `ema`
// (what sampling wants) or else the raw ones; checks names, shapes, dtype.
template <class Model>
void load_weights(const Safetensors& file, Model& model, bool ema = true) {
  const auto params = nn::parameters_of(model);
  detail::assign(file, detail::model_slots(params, ema ? "ema." : ""));
}

// ---- a UNet from a file -----------------------------------------------------

// The UNet config in a checkpoint's haze.model, checked against the file's
// tensors before anything the size of the model exists: every size it names
// must occur among the file's dimensions, its layer count must fit the
// file's tensor count, and the model it describes, built on backend::Meta
// (shapes, no memory), must find each parameter under every one of
// `prefixes` ("" the raw weights, "ema." the average, ...) with its shape
// and dtype T. Building the real model afterwards allocates no more than the
// file holds.
template <Real T>
nn::UNetConfig read_unet_config(const Safetensors& file, std::initializer_list<std::string_view> prefixes = {""}) {
  const std::string& text = required_metadata(file, "haze.model");
  const nn::UNetConfig c = unet_config_from_json(text, file.source);

  detail::require_unet_fits_file(c, file, static_cast<int64_t>(prefixes.size()), "haze.model", text);

  nn::UNet<T, backend::Meta> shapes(c);
  const auto params = nn::parameters_of(shapes);
  for (std::string_view prefix : prefixes)
    detail::require_fits(file, detail::model_slots(params, std::string(prefix)), "its haze.model");
  return c;
}

}  // namespace haze::io
