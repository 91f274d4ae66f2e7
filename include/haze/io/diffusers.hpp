#pragma once
// diffusers model folders, read and written:
//
//   a model folder     config.json (UNet2DModel's arguments)
//                      diffusion_pytorch_model.safetensors (or its sharded form:
//                        diffusion_pytorch_model.safetensors.index.json and the shards it names)
//                      [scheduler_config.json]
//   a pipeline folder  model_index.json, unet/ (a model folder), scheduler/scheduler_config.json
//                      (what DDPMPipeline.from_pretrained reads; export writes this form)
//
// Reading is strict: an option haze cannot reproduce, a block type it does
// not have, a tensor the model lacks or one the file lacks is an error that
// names it and the file, never a model that loads and computes something
// else. docs/diffusers.md has the option table.

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "haze/core/error.hpp"
#include "haze/diffusion/noise_schedule.hpp"
#include "haze/diffusion/parameterization.hpp"
#include "haze/io/atomic_file.hpp"
#include "haze/backend/meta.hpp"
#include "haze/io/safetensors.hpp"
#include "haze/io/unet_fits_file.hpp"
#include "haze/nn/unet.hpp"
#include "haze/nn/unet_config.hpp"
#include "haze/sample/by_name.hpp"
#include "haze/sample/timesteps.hpp"

namespace haze::io {

namespace detail {

// config files are small: a larger one is refused before it is read.
inline constexpr uint64_t diffusers_max_config_bytes = 1 << 20;

// A config's text as a JSON object. Real configs nest 2 levels; deeper
// ones are refused while parsing, as safetensors headers are, since
// printing a value (error messages do) recurses once per level.
inline nlohmann::json parse_json_config(std::string_view text, std::string_view source) {
  const nlohmann::json::parser_callback_t limit_depth = [&](int depth, nlohmann::json::parse_event_t event,
                                                            nlohmann::json&) {
    if (event == nlohmann::json::parse_event_t::object_start || event == nlohmann::json::parse_event_t::array_start)
      HAZE_REQUIRE(depth < 16, source, ": the JSON nests deeper than 16 levels");
    return true;
  };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.begin(), text.end(), limit_depth);
  } catch (const nlohmann::json::exception& e) {
    HAZE_FAIL(source, ": not valid JSON: ", e.what());
  }
  HAZE_REQUIRE(j.is_object(), source, ": a JSON ", j.type_name(), ", not an object");
  return j;
}

inline nlohmann::json read_json_file(const std::filesystem::path& path) {
  const InputFile input(path, "diffusers");
  HAZE_REQUIRE(input.size() <= diffusers_max_config_bytes, path.string(), ": ", input.size(),
               " bytes is too large for a diffusers config (limit ", diffusers_max_config_bytes, ")");
  std::string text(input.size(), '\0');
  input.read_at(0, std::as_writable_bytes(std::span(text)));
  return parse_json_config(text, path.string());
}

// Reads the entries of one JSON config, each at most once, so that what is
// left at the end (finish) is what haze does not know.
class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& j, std::string source) : j_(j), source_(std::move(source)) {}

  const std::string& source() const { return source_; }
  bool has(const std::string& key) const { return j_.contains(key) && !j_.at(key).is_null(); }

  // The value of `key` as V, or `fallback` (diffusers' default) when absent or null.
  template <class V>
  V get(const std::string& key, V fallback) {
    seen_.push_back(key);
    if (!has(key)) return fallback;
    const nlohmann::json& value = j_.at(key);
    // (nlohmann would turn 2.5 into 2 for an integer: refuse it instead.)
    if constexpr (std::is_integral_v<V> && !std::is_same_v<V, bool>) {
      HAZE_REQUIRE(value.is_number_integer(), source_, ": option '", key, "' is ", value.dump(), ", not an integer");
    } else if constexpr (std::is_same_v<V, std::vector<int64_t>>) {
      HAZE_REQUIRE(value.is_array() && std::all_of(value.begin(), value.end(),
                                                   [](const auto& e) { return e.is_number_integer(); }),
                   source_, ": option '", key, "' is ", value.dump(), ", not a list of integers");
    }
    try {
      return j_.at(key).get<V>();
    } catch (const nlohmann::json::exception&) {
      HAZE_FAIL(source_, ": option '", key, "' is ", j_.at(key).dump(), ", not a ", type_name<V>());
    }
  }

  // An option haze supports only at some values: anything else is an error.
  template <class V>
  void require(const std::string& key, V fallback, std::initializer_list<V> supported, std::string_view why) {
    const V value = get<V>(key, fallback);
    if (std::find(supported.begin(), supported.end(), value) != supported.end()) return;
    HAZE_FAIL(source_, ": option '", key, "' = ", nlohmann::json(value).dump(), " is not supported by haze (", why,
              ")");
  }

  // Keys haze reads nowhere, but which change nothing it computes.
  void ignore(std::initializer_list<const char*> keys) { seen_.insert(seen_.end(), keys.begin(), keys.end()); }

  // Every key must have been read: an unknown one may change the model.
  void finish() const {
    std::vector<std::string> unknown;
    for (const auto& [key, value] : j_.items())
      if (key.rfind("_", 0) != 0 && std::find(seen_.begin(), seen_.end(), key) == seen_.end()) unknown.push_back(key);
    if (unknown.empty()) return;
    std::string list;
    for (const auto& k : unknown) list += (list.empty() ? "'" : ", '") + k + "'";
    HAZE_FAIL(source_, ": option", unknown.size() > 1 ? "s " : " ", list,
              " unknown to haze (a newer diffusers, or a model haze cannot build)");
  }

 private:
  template <class V>
  static const char* type_name() {
    if constexpr (std::is_same_v<V, bool>) return "boolean";
    else if constexpr (std::is_integral_v<V>) return "integer";
    else if constexpr (std::is_floating_point_v<V>) return "number";
    else if constexpr (std::is_same_v<V, std::string>) return "string";
    else return "list";
  }

  const nlohmann::json& j_;
  std::string source_;
  std::vector<std::string> seen_;
};

}  // namespace detail

// ---- config.json <-> UNetConfig ---------------------------------------------

// UNet2DModel's arguments (absent ones take diffusers 0.27's defaults).
inline nn::UNetConfig unet_config_from_diffusers(const nlohmann::json& j, std::string_view source) {
  detail::ConfigReader r(j, std::string(source));
  const std::string class_name = r.get<std::string>("_class_name", "UNet2DModel");
  HAZE_REQUIRE(class_name == "UNet2DModel", source, ": _class_name '", class_name,
               "' is not UNet2DModel (haze loads UNet2DModel only)");
  nn::UNetConfig c;
  c.in_channels = r.get<int64_t>("in_channels", 3);
  c.out_channels = r.get<int64_t>("out_channels", 3);
  c.block_out_channels = r.get<std::vector<int64_t>>("block_out_channels", {224, 448, 672, 896});
  c.layers_per_block = r.get<int>("layers_per_block", 2);
  // absent: diffusers' default 8; null: one head as wide as its block (haze's 0)
  c.attention_head_dim = r.get<int64_t>("attention_head_dim", j.contains("attention_head_dim") ? 0 : 8);
  c.norm_groups = r.get<int64_t>("norm_num_groups", 32);
  c.attn_norm_num_groups = r.get<int64_t>("attn_norm_num_groups", 0);
  c.norm_eps = r.get<double>("norm_eps", 1e-5);
  c.dropout = r.get<double>("dropout", 0.0);
  c.flip_sin_to_cos = r.get<bool>("flip_sin_to_cos", true);
  c.freq_shift = r.get<double>("freq_shift", 0.0);
  c.downsample_padding = r.get<int>("downsample_padding", 1);
  c.mid_block_scale_factor = r.get<double>("mid_block_scale_factor", 1.0);
  c.mid_attention = r.get<bool>("add_attention", true);
  c.center_input_sample = r.get<bool>("center_input_sample", false);
  if (r.has("sample_size") && j.at("sample_size").is_array()) {
    const auto hw = r.get<std::vector<int64_t>>("sample_size", {});
    HAZE_REQUIRE(hw.size() == 2, source, ": sample_size ", j.at("sample_size").dump(), " is not [height, width]");
    c.sample_size = hw[0];
    c.sample_width = hw[1] == hw[0] ? 0 : hw[1];
  } else {
    c.sample_size = r.get<int64_t>("sample_size", 0);
  }

  const int64_t class_embeds = r.get<int64_t>("num_class_embeds", 0);
  const std::string class_type = r.get<std::string>("class_embed_type", "");
  using ClassType = nn::UNetConfig::ClassEmbedType;
  if (class_type == "identity") {
    c.class_embed_type = ClassType::identity;  // diffusers reads no num_class_embeds then
  } else {
    HAZE_REQUIRE(class_type.empty() || class_type == "timestep", source, ": option 'class_embed_type' = \"",
                 class_type, "\" is not supported by haze (null, timestep, identity)");
    if (class_type == "timestep") c.class_embed_type = ClassType::timestep;
    // diffusers leaves the labels of a timestep class embedding unbounded;
    // haze bounds them by num_class_embeds, which diffusers ignores there.
    HAZE_REQUIRE(class_type.empty() || class_embeds > 0, source,
                 ": class_embed_type \"timestep\" needs num_class_embeds in haze, the number of labels (0 .. N - 1); "
                 "diffusers ignores it for this class embedding, so adding it changes nothing there");
    if (class_embeds > 0) {
      HAZE_REQUIRE(class_embeds >= 2, source, ": num_class_embeds ", class_embeds,
                   " is too few: haze's labels are its classes and a null class, at least 2");
      c.num_classes = class_embeds - 1;  // labels 0 .. N - 1, the last one haze's null class
    }
  }
  r.require<std::string>("act_fn", "silu", {"silu"}, "haze's blocks use SiLU");
  const std::string time_type = r.get<std::string>("time_embedding_type", "positional");
  HAZE_REQUIRE(time_type == "positional" || time_type == "fourier", source, ": option 'time_embedding_type' = \"",
               time_type, "\" is not supported by haze (positional, fourier)");
  c.fourier_time = time_type == "fourier";
  const std::string shift = r.get<std::string>("resnet_time_scale_shift", "default");
  HAZE_REQUIRE(shift == "default" || shift == "scale_shift", source, ": option 'resnet_time_scale_shift' = \"",
               shift, "\" is not supported by haze (default, scale_shift)");
  c.scale_shift = shift == "scale_shift";
  r.require<std::string>("downsample_type", "conv", {"conv"}, "haze downsamples with a stride-2 conv");
  r.require<std::string>("upsample_type", "conv", {"conv"}, "haze upsamples with nearest 2x and a conv");
  r.ignore({"num_train_timesteps"});  // only the "learned" time embedding reads it

  const int levels = c.levels();
  const auto down = r.get<std::vector<std::string>>(
      "down_block_types", {"DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"});
  const auto up = r.get<std::vector<std::string>>("up_block_types",
                                                   {"AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"});
  HAZE_REQUIRE(int(down.size()) == levels && int(up.size()) == levels, source, ": ", down.size(),
               " down_block_types and ", up.size(), " up_block_types for ", levels, " block_out_channels");
  c.attention_levels.clear();
  for (int i = 0; i < levels; ++i) {
    const std::string& d = down[size_t(i)];
    const std::string& u = up[size_t(levels - 1 - i)];
    HAZE_REQUIRE(d == "DownBlock2D" || d == "AttnDownBlock2D", source, ": down_block_types[", i, "] = '", d,
                 "' is not supported by haze (it has DownBlock2D and AttnDownBlock2D)");
    HAZE_REQUIRE(u == "UpBlock2D" || u == "AttnUpBlock2D", source, ": up_block_types[", levels - 1 - i, "] = '", u,
                 "' is not supported by haze (it has UpBlock2D and AttnUpBlock2D)");
    const bool attention = d == "AttnDownBlock2D";
    HAZE_REQUIRE(attention == (u == "AttnUpBlock2D"), source, ": down_block_types[", i, "] = '", d,
                 "' but up_block_types[", levels - 1 - i, "] = '", u,
                 "': haze's decoder levels have attention exactly where the encoder levels they mirror do");
    if (attention) c.attention_levels.push_back(i);
  }
  r.finish();
  c.validate(std::string(source));
  return c;
}

// UNet2DModel's arguments for a haze config (every one written out).
inline nlohmann::ordered_json diffusers_unet_config(const nn::UNetConfig& c) {
  c.validate("diffusers_unet_config");
  std::vector<std::string> down, up;
  for (int i = 0; i < c.levels(); ++i) {
    down.push_back(c.has_attention(i) ? "AttnDownBlock2D" : "DownBlock2D");
    up.push_back(c.has_attention(c.levels() - 1 - i) ? "AttnUpBlock2D" : "UpBlock2D");
  }
  const auto null_if_zero = [](int64_t v) { return v > 0 ? nlohmann::ordered_json(v) : nlohmann::ordered_json(); };
  using ClassType = nn::UNetConfig::ClassEmbedType;
  return {{"_class_name", "UNet2DModel"},
          {"_diffusers_version", "0.27.2"},
          {"act_fn", "silu"},
          {"add_attention", c.mid_attention},
          {"attention_head_dim", null_if_zero(c.attention_head_dim)},
          {"attn_norm_num_groups", null_if_zero(c.attn_norm_num_groups)},
          {"block_out_channels", c.block_out_channels},
          {"center_input_sample", c.center_input_sample},
          {"class_embed_type", c.class_embed_type == ClassType::table
                                   ? nlohmann::ordered_json()  // diffusers' null: the table of num_class_embeds
                                   : nlohmann::ordered_json(nn::class_embed_type_name(c.class_embed_type))},
          {"down_block_types", down},
          {"downsample_padding", c.downsample_padding},
          {"downsample_type", "conv"},
          {"dropout", c.dropout},
          {"flip_sin_to_cos", c.flip_sin_to_cos},
          {"freq_shift", c.freq_shift},
          {"in_channels", c.in_channels},
          {"layers_per_block", c.layers_per_block},
          {"mid_block_scale_factor", c.mid_block_scale_factor},
          {"norm_eps", c.norm_eps},
          {"norm_num_groups", c.norm_groups},
          {"num_class_embeds", null_if_zero(c.num_class_embeds())},
          {"num_train_timesteps", nullptr},
          {"out_channels", c.out_channels},
          {"resnet_time_scale_shift", c.scale_shift ? "scale_shift" : "default"},
          {"sample_size", c.sample_width > 0 ? nlohmann::ordered_json({c.sample_size, c.sample_width})
                                              : null_if_zero(c.sample_size)},
          {"time_embedding_type", c.fourier_time ? "fourier" : "positional"},
          {"up_block_types", up},
          {"upsample_type", "conv"}};
}

// ---- the folders --------------------------------------------------------------

// Where a folder's files are: a pipeline folder (model_index.json) keeps the
// model in unet/ and the scheduler in scheduler/.
struct DiffusersFolder {
  std::filesystem::path config, weights, scheduler;  // scheduler: empty when the folder has none
  // Sharded weights (diffusion_pytorch_model.safetensors.index.json and the
  // shards it names) where there is no single weights file; else empty.
  std::filesystem::path weights_index;

  static DiffusersFolder at(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    HAZE_REQUIRE(fs::is_directory(dir), "diffusers: '", dir.string(), "' is not a folder");
    const bool pipeline = fs::exists(dir / "model_index.json");
    const fs::path model = pipeline ? dir / "unet" : dir;
    DiffusersFolder f{model / "config.json", model / "diffusion_pytorch_model.safetensors", {}, {}};
    HAZE_REQUIRE(fs::exists(f.config), "diffusers: '", dir.string(), "' has no ",
                 pipeline ? "unet/config.json" : "config.json (nor model_index.json)");
    if (!fs::exists(f.weights) && fs::exists(model / "diffusion_pytorch_model.safetensors.index.json")) {
      f.weights_index = model / "diffusion_pytorch_model.safetensors.index.json";
      f.weights.clear();
    }
    HAZE_REQUIRE(f.weights.empty() || fs::exists(f.weights), "diffusers: '", model.string(),
                 "' has no diffusion_pytorch_model.safetensors nor its sharded index (haze reads safetensors, not "
                 ".bin pickles)");
    for (const fs::path& s : {dir / "scheduler" / "scheduler_config.json", dir / "scheduler_config.json"})
      if (fs::exists(s)) {
        f.scheduler = s;
        break;
      }
    return f;
  }

  // The weights: the one file, or every shard the index names, each tensor
  // in the shard the index maps it to (and nothing else there).
  Safetensors load_weights() const {
    if (weights_index.empty()) return load_safetensors(weights);
    const std::string index = weights_index.string();
    const nlohmann::json j = detail::read_json_file(weights_index);
    HAZE_REQUIRE(j.contains("weight_map") && j.at("weight_map").is_object() && !j.at("weight_map").empty(), index,
                 ": no weight_map object naming the tensors' shards");
    std::map<std::string, std::set<std::string>> shards;  // file -> the tensors it holds
    for (const auto& [name, shard] : j.at("weight_map").items()) {
      HAZE_REQUIRE(shard.is_string(), index, ": the shard of tensor '", name, "' is ", shard.dump(), ", not a file name");
      const std::string file = shard.get<std::string>();
      HAZE_REQUIRE(!file.empty() && file != "." && file != ".." && file.find_first_of("/\\") == std::string::npos,
                   index, ": shard '", file, "' of tensor '", name, "' is not a file name in the model's folder");
      shards[file].insert(name);
    }
    Safetensors all;
    all.source = index;
    all.metadata["format"] = "pt";
    for (auto& [file, names] : shards) {
      Safetensors shard = load_safetensors(weights_index.parent_path() / file);
      for (TensorRecord& t : shard.tensors) {
        HAZE_REQUIRE(names.erase(t.name) == 1, shard.source, ": tensor '", t.name, "' is not mapped to this shard by ",
                     index);
        all.add(std::move(t));
      }
      HAZE_REQUIRE(names.empty(), shard.source, ": ", names.size(), " tensors that ", index,
                   " maps to this shard are not in it, e.g. '", *names.begin(), "'");
    }
    return all;
  }
};

// The config alone. To build a model for a file's weights, take the form
// below that checks the config against them first.
inline nn::UNetConfig read_diffusers_unet_config(const std::filesystem::path& config_json) {
  return unet_config_from_diffusers(detail::read_json_file(config_json), config_json.string());
}

// ---- weights --------------------------------------------------------------------

namespace detail {

// diffusers before 0.15 named the attention block's tensors query, key,
// value and proj_attn; today's loader renames them, and so does haze. A
// Fourier projection's frequencies may be stored as 'W', the second name
// diffusers ties to its 'weight'.
inline std::string current_diffusers_name(const std::string& name) {
  if (name == "time_proj.W") return "time_proj.weight";
  static const std::pair<std::string_view, std::string_view> renames[] = {
      {".query.", ".to_q."}, {".key.", ".to_k."}, {".value.", ".to_v."}, {".proj_attn.", ".to_out.0."}};
  if (name.find(".attentions.") == std::string::npos) return name;
  for (const auto& [from, to] : renames)
    if (const size_t at = name.rfind(from); at != std::string::npos)
      return name.substr(0, at) + std::string(to) + name.substr(at + from.size());
  return name;
}

inline std::string name_list(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 8; ++i) out += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > 8) out += " and " + std::to_string(names.size() - 8) + " more";
  return out;
}

// A stored shape fits a parameter's when they are equal, or equal but for
// trailing 1s (old attention blocks stored their Linears as 1x1 convs).
inline bool fits_shape(std::vector<int64_t> stored, const Shape& want) {
  std::vector<int64_t> w;
  for (int i = 0; i < want.rank(); ++i) w.push_back(want[i]);
  if (stored == w) return true;
  while (stored.size() > w.size() && stored.back() == 1) stored.pop_back();
  return stored == w;
}

}  // namespace detail

struct DiffusersLoadOptions {
  bool allow_unused = false;  // tensors in the file the model does not have: an error unless allowed
};

namespace detail {

// The file's tensor for each of `params`, in their order: every parameter
// found by name (old attention names accepted) with a shape that fits;
// errors list what is missing or unused.
template <class Params>
std::vector<const TensorRecord*> match_diffusers_tensors(const Safetensors& file, const Params& params,
                                                         DiffusersLoadOptions options) {
  std::map<std::string, const TensorRecord*> by_name;
  // A Fourier projection's frequencies may be stored twice, as 'W' and as
  // 'weight' (diffusers ties the two names to one tensor): one is enough.
  const TensorRecord* tied = file.find("time_proj.W");
  if (const TensorRecord* weight = file.find("time_proj.weight"); tied && weight) {
    HAZE_REQUIRE(tied->shape == weight->shape && tied->to_real<double>() == weight->to_real<double>(), file.source,
                 ": tensors 'time_proj.W' and 'time_proj.weight' differ; diffusers ties them to one tensor");
  } else {
    tied = nullptr;  // alone, W is the weight
  }
  for (const TensorRecord& t : file.tensors) {
    if (&t == tied) continue;
    const std::string name = current_diffusers_name(t.name);
    HAZE_REQUIRE(by_name.emplace(name, &t).second, file.source, ": tensors '", by_name[name]->name, "' and '",
                 t.name, "' both give parameter '", name, "'");
  }
  std::vector<std::string> missing, unused;
  std::vector<const TensorRecord*> matched;
  for (const auto& p : params) {
    const auto it = by_name.find(p.name);
    if (it == by_name.end()) {
      missing.push_back(p.name);
      continue;
    }
    matched.push_back(it->second);
    by_name.erase(it);
  }
  for (const auto& [name, record] : by_name) unused.push_back(record->name);
  HAZE_REQUIRE(missing.empty(), file.source, ": ", missing.size(), " of the model's ", params.size(),
               " parameters are not in the file: ", name_list(missing), " (a model of another config.json?)");
  HAZE_REQUIRE(unused.empty() || options.allow_unused, file.source, ": ", unused.size(),
               " tensors in the file are not parameters of the model: ", name_list(unused),
               " (allow_unused loads it anyway)");
  for (size_t i = 0; i < matched.size(); ++i) {
    const TensorRecord& r = *matched[i];
    HAZE_REQUIRE(fits_shape(r.shape, params[i].value->shape()), file.source, ": tensor '", r.name, "' is ",
                 shape_text(r.shape), " but the model's '", params[i].name, "' is ", params[i].value->shape());
  }
  return matched;
}

}  // namespace detail

// The UNet config in `config_json`, checked against the weights it is for
// before anything the size of the model exists (io/unet_fits_file.hpp):
// building the model afterwards allocates no more than the file holds.
inline nn::UNetConfig read_diffusers_unet_config(const std::filesystem::path& config_json, const Safetensors& weights,
                                                 DiffusersLoadOptions options = {}) {
  const nlohmann::json j = detail::read_json_file(config_json);
  const nn::UNetConfig c = unet_config_from_diffusers(j, config_json.string());
  detail::require_unet_fits_file(c, weights, 1, config_json.string(), j.dump());
  nn::UNet<float, backend::Meta> shapes(c);
  detail::match_diffusers_tensors(weights, nn::parameters_of(shapes), options);
  return c;
}

// Puts a diffusers state dict into `model`: every parameter found by name
// (old attention names accepted), shapes checked, F16 / BF16 / F32 / F64
// values converted to T, non-finite values refused. All or nothing.
template <Real T, Backend B>
void load_diffusers_weights(const Safetensors& file, nn::UNet<T, B>& model, DiffusersLoadOptions options = {}) {
  const auto params = nn::parameters_of(model);
  const std::vector<const TensorRecord*> matched = detail::match_diffusers_tensors(file, params, options);
  std::vector<std::vector<T>> values;
  for (const TensorRecord* r : matched) {
    values.push_back(r->template to_real<T>());
    const auto bad = std::count_if(values.back().begin(), values.back().end(), [](T v) { return !std::isfinite(v); });
    HAZE_REQUIRE(bad == 0, file.source, ": tensor '", r->name, "' holds ", bad, " NaN or infinite values (",
                 dtype_name(r->dtype), " ", detail::shape_text(r->shape), ")");
  }
  for (size_t i = 0; i < params.size(); ++i) params[i].value->assign_from_host(values[i]);
}

// The model's parameters as a diffusers state dict, in float32 (what
// diffusers writes by default).
template <Real T, Backend B>
Safetensors diffusers_state_dict(nn::UNet<T, B>& model) {
  Safetensors file;
  file.metadata["format"] = "pt";  // what safetensors.torch writes, and diffusers checks
  for (const auto& p : nn::parameters_of(model)) {
    const std::vector<T> values = p.value->to_host();
    const std::vector<float> narrow(values.begin(), values.end());
    std::vector<int64_t> dims;
    for (int i = 0; i < p.value->shape().rank(); ++i) dims.push_back(p.value->shape()[i]);
    file.add(TensorRecord::from<float>(p.name, dims, narrow));
  }
  return file;
}

// ---- scheduler_config.json <-> Schedule --------------------------------------

// What a diffusers scheduler config says: the schedule, what the model
// predicts, and how its sampler steps. settings() gives them as haze's
// sampler settings, with diffusers' conventions where haze's default
// differs (DDIM keeps the model's eps when it clips x0).
struct DiffusersScheduler {
  std::string class_name;     // "DDPMScheduler", ...
  std::string sampler;        // haze's name for that sampler: ddpm, ddim, euler, euler_a, heun, dpmpp2m
  Schedule schedule = Schedule::make("linear", 1000);
  std::string prediction;     // epsilon, sample, velocity
  sample::Spacing spacing = sample::Spacing::Leading;
  int steps_offset = 0;       // added to a leading grid
  bool set_alpha_to_one = true;  // DDIM's final alpha_bar 1 (or alpha_bar(0))
  bool clip_sample = false;   // clamp x0 to [-1, 1]
  bool karras = false;        // use_karras_sigmas
  sample::Variance variance = sample::Variance::FixedSmall;

  sample::SamplerSettings settings(int steps) const {
    return {.steps = steps,
            .clip_x0 = clip_sample,
            .spacing = spacing,
            .steps_offset = steps_offset,
            .karras = karras,
            .variance = variance,
            .eps_from_clipped_x0 = false,
            .set_alpha_to_one = set_alpha_to_one,
            .previous_by_stride = true};
  }
};

inline DiffusersScheduler scheduler_from_diffusers(const nlohmann::json& j, std::string_view source) {
  detail::ConfigReader r(j, std::string(source));
  DiffusersScheduler s;
  s.class_name = r.get<std::string>("_class_name", "");
  static const std::map<std::string, std::pair<std::string, std::string>, std::less<>> known = {
      // class -> haze sampler, diffusers' default timestep_spacing
      {"DDPMScheduler", {"ddpm", "leading"}},
      {"DDIMScheduler", {"ddim", "leading"}},
      {"EulerDiscreteScheduler", {"euler", "linspace"}},
      {"EulerAncestralDiscreteScheduler", {"euler_a", "linspace"}},
      {"HeunDiscreteScheduler", {"heun", "linspace"}},
      {"DPMSolverMultistepScheduler", {"dpmpp2m", "linspace"}}};
  const auto it = known.find(s.class_name);
  HAZE_REQUIRE(it != known.end(), source, ": scheduler '", s.class_name,
               "' is not one haze reproduces (DDPMScheduler, DDIMScheduler, EulerDiscreteScheduler, "
               "EulerAncestralDiscreteScheduler, HeunDiscreteScheduler, DPMSolverMultistepScheduler)");
  s.sampler = it->second.first;

  const int steps = r.get<int>("num_train_timesteps", 1000);
  const std::string beta_schedule = r.get<std::string>("beta_schedule", "linear");
  const double start = r.get<double>("beta_start", 1e-4), end = r.get<double>("beta_end", 0.02);
  HAZE_REQUIRE(!r.has("trained_betas"), source, ": option 'trained_betas' is not supported by haze (it builds ",
               "its betas from beta_schedule)");
  r.ignore({"trained_betas"});
  const bool zero_snr = r.get<bool>("rescale_betas_zero_snr", false);
  const std::string where = std::string(source) + ": beta_schedule '" + beta_schedule + "'";
  s.schedule = haze::detail::with_context(where, [&] {
    if (beta_schedule == "linear") return Schedule::make("linear", steps, {start, end}, zero_snr);
    if (beta_schedule == "scaled_linear") return Schedule::make("scaled_linear", steps, {start, end}, zero_snr);
    if (beta_schedule == "squaredcos_cap_v2") return Schedule::make("cosine", steps, {0.008, 0.999}, zero_snr);
    if (beta_schedule == "sigmoid") return Schedule::make("sigmoid_beta", steps, {start, end}, zero_snr);
    HAZE_FAIL("not supported by haze (linear, scaled_linear, squaredcos_cap_v2, sigmoid)");
  });

  const std::string prediction = r.get<std::string>("prediction_type", "epsilon");
  if (prediction == "epsilon") s.prediction = "epsilon";
  else if (prediction == "sample") s.prediction = "sample";
  else if (prediction == "v_prediction") s.prediction = "velocity";
  else HAZE_FAIL(source, ": prediction_type '", prediction, "' is not supported by haze (epsilon, sample, v_prediction)");

  const std::string spacing = r.get<std::string>("timestep_spacing", it->second.second);
  s.spacing = haze::detail::with_context(std::string(source) + ": timestep_spacing",
                                         [&] { return sample::spacing_from_name(spacing); });
  s.steps_offset = r.get<int>("steps_offset", 0);
  HAZE_REQUIRE(s.steps_offset >= 0, source, ": option 'steps_offset' = ", s.steps_offset, " is negative");
  r.require<bool>("thresholding", false, {false}, "haze clamps x0 to [-1, 1] or not at all");
  r.ignore({"dynamic_thresholding_ratio", "sample_max_value"});  // read only with thresholding
  if (s.sampler == "ddpm" || s.sampler == "ddim") {
    s.clip_sample = r.get<bool>("clip_sample", true);
    r.require<double>("clip_sample_range", 1.0, {1.0}, "haze clamps x0 to [-1, 1]");
  }
  if (s.sampler == "ddim") s.set_alpha_to_one = r.get<bool>("set_alpha_to_one", true);
  if (s.sampler == "ddpm") {
    const std::string variance = r.get<std::string>("variance_type", "fixed_small");
    HAZE_REQUIRE(variance == "fixed_small" || variance == "fixed_large", source, ": option 'variance_type' = '",
                 variance, "' is not supported by haze (fixed_small, fixed_large)");
    s.variance = variance == "fixed_small" ? sample::Variance::FixedSmall : sample::Variance::FixedLarge;
  }
  if (s.sampler == "euler" || s.sampler == "euler_a" || s.sampler == "heun" || s.sampler == "dpmpp2m") {
    s.karras = s.sampler != "euler_a" && r.get<bool>("use_karras_sigmas", false);
    r.require<std::string>("interpolation_type", "linear", {"linear"}, "haze interpolates sigmas linearly");
    r.require<std::string>("timestep_type", "discrete", {"discrete"}, "haze's sigmas come from integer timesteps");
    r.ignore({"sigma_min", "sigma_max"});  // null in every config that haze reads; Karras takes the schedule's own
  }
  if (s.sampler == "dpmpp2m") {
    r.require<int>("solver_order", 2, {2}, "haze has DPM-Solver++(2M)");
    r.require<std::string>("algorithm_type", "dpmsolver++", {"dpmsolver++"}, "haze has DPM-Solver++(2M)");
    r.require<std::string>("solver_type", "midpoint", {"midpoint"}, "haze's second-order step is the midpoint one");
    r.require<bool>("lower_order_final", true, {true}, "haze's last step is first order");
    r.ignore({"euler_at_final", "use_lu_lambdas", "final_sigmas_type", "lambda_min_clipped", "variance_type",
              "sample_max_value"});
  }
  r.finish();
  return s;
}

inline DiffusersScheduler read_diffusers_scheduler(const std::filesystem::path& path) {
  return scheduler_from_diffusers(detail::read_json_file(path), path.string());
}

// A DDPMScheduler config for a haze schedule, or an error for a schedule
// diffusers cannot express.
inline nlohmann::ordered_json diffusers_scheduler_config(const Schedule& schedule, std::string_view prediction,
                                                         bool clip_sample) {
  const std::string& kind = schedule.kind();
  const std::vector<double>& p = schedule.parameters();
  std::string beta_schedule;
  double start = 1e-4, end = 0.02;
  if (kind == "linear" || kind == "scaled_linear" || kind == "sigmoid_beta") {
    beta_schedule = kind == "sigmoid_beta" ? "sigmoid" : kind;
    start = p.at(0), end = p.at(1);
  } else if (kind == "cosine" && p == std::vector<double>{0.008, 0.999}) {
    beta_schedule = "squaredcos_cap_v2";
  } else {
    HAZE_FAIL("diffusers_scheduler_config: the schedule ", schedule.description(),
              " has no diffusers beta_schedule (linear, scaled_linear, squaredcos_cap_v2 = cosine(0.008, 0.999), "
              "sigmoid = sigmoid_beta)");
  }
  const std::string type = prediction == "velocity" ? "v_prediction" : std::string(prediction);
  HAZE_REQUIRE(type == "epsilon" || type == "sample" || type == "v_prediction",
               "diffusers_scheduler_config: unknown prediction '", prediction, "'");
  return {{"_class_name", "DDPMScheduler"},
          {"_diffusers_version", "0.27.2"},
          {"beta_end", end},
          {"beta_schedule", beta_schedule},
          {"beta_start", start},
          {"clip_sample", clip_sample},
          {"clip_sample_range", 1.0},
          {"num_train_timesteps", schedule.steps()},
          {"prediction_type", type},
          {"rescale_betas_zero_snr", schedule.zero_terminal_snr()},
          {"steps_offset", 0},
          {"thresholding", false},
          {"timestep_spacing", "leading"},
          {"trained_betas", nullptr},
          {"variance_type", "fixed_small"}};
}

// A class-conditional model with one class fixed, as an unconditional one:
// the time embedding's output bias absorbs that class's row of the table
// (temb = linear_2(...) + table[c] for every sample), so DDPMPipeline, which
// passes no labels, samples class c, or with c = the null class the
// unconditional model that classifier-free guidance trained. The sum is
// taken in double and rounded once.
inline void bake_class(Safetensors& weights, nn::UNetConfig& config, int64_t label) {
  HAZE_REQUIRE(config.num_classes > 0, "export_diffusers: a class to bake in, but the model is unconditional");
  HAZE_REQUIRE(config.class_embed_type == nn::UNetConfig::ClassEmbedType::table,
               "export_diffusers: a class can be baked in only from a class table (class_embed_type null), not "
               "from class_embed_type timestep");
  HAZE_REQUIRE(label >= 0 && label <= config.num_classes, "export_diffusers: class ", label, " outside [0, ",
               config.num_classes, "] (", config.num_classes, " is the null class)");
  const TensorRecord& table = weights.at("class_embedding.weight");
  TensorRecord* bias = nullptr;
  for (TensorRecord& t : weights.tensors)
    if (t.name == "time_embedding.linear_2.bias") bias = &t;
  HAZE_REQUIRE(bias != nullptr, "export_diffusers: no time_embedding.linear_2.bias to bake the class into");
  const std::vector<double> rows = table.to_real<double>(), b = bias->to_real<double>();
  const int64_t width = int64_t(b.size());
  std::vector<float> baked(b.size());
  for (int64_t j = 0; j < width; ++j) baked[size_t(j)] = float(b[size_t(j)] + rows[size_t(label * width + j)]);
  *bias = TensorRecord::from<float>(bias->name, bias->shape, baked);
  std::erase_if(weights.tensors, [](const TensorRecord& t) { return t.name == "class_embedding.weight"; });
  config.num_classes = 0;
}

// Writes a pipeline folder that DDPMPipeline.from_pretrained(dir) loads:
// model_index.json, unet/config.json, unet/diffusion_pytorch_model.safetensors
// and scheduler/scheduler_config.json. Each file is written atomically.
// `baked_class`: export a class-conditional model as an unconditional one
// sampling that class (bake_class above); DDPMPipeline needs that.
template <Real T, Backend B>
void export_diffusers(const std::filesystem::path& dir, nn::UNet<T, B>& model, const Schedule& schedule,
                      std::string_view prediction, bool clip_sample = true,
                      std::optional<int64_t> baked_class = std::nullopt) {
  namespace fs = std::filesystem;
  const nlohmann::ordered_json scheduler = diffusers_scheduler_config(schedule, prediction, clip_sample);
  Safetensors weights = diffusers_state_dict(model);
  nn::UNetConfig config = model.config();
  if (baked_class) bake_class(weights, config, *baked_class);
  const auto write_json = [](const fs::path& path, const nlohmann::ordered_json& j) {
    const std::string text = j.dump(2) + "\n";
    write_file_atomically(path, std::as_bytes(std::span(text)));
  };
  std::error_code error;
  for (const fs::path& d : {dir, dir / "unet", dir / "scheduler"}) {
    fs::create_directories(d, error);
    HAZE_REQUIRE(!error && fs::is_directory(d), "export_diffusers: cannot make the folder '", d.string(), "': ",
                 error.message());
  }
  save_safetensors(dir / "unet" / "diffusion_pytorch_model.safetensors", weights);
  write_json(dir / "unet" / "config.json", diffusers_unet_config(config));
  write_json(dir / "scheduler" / "scheduler_config.json", scheduler);
  write_json(dir / "model_index.json", {{"_class_name", "DDPMPipeline"},
                                        {"_diffusers_version", "0.27.2"},
                                        {"scheduler", {"diffusers", "DDPMScheduler"}},
                                        {"unet", {"diffusers", "UNet2DModel"}}});
}

}  // namespace haze::io
