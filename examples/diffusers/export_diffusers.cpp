// haze-export-diffusers: writes a haze UNet checkpoint as a diffusers
// pipeline folder, which DDPMPipeline.from_pretrained(DIR) loads:
//
//   haze-export-diffusers out/fmnist.safetensors out/fmnist-diffusers --ema
//
// DIR/model_index.json, DIR/unet/config.json and
// DIR/unet/diffusion_pytorch_model.safetensors (float32), and
// DIR/scheduler/scheduler_config.json (a DDPMScheduler with the checkpoint's
// schedule and prediction type). Which weights go out is said explicitly:
// --ema (the average, what sampling wants) or --raw-weights. DDPMPipeline
// passes no class labels: --class C (a class, or "null" for the null class:
// the unconditional model guidance trained) exports a class-conditional
// model as an unconditional one that samples C.
#include <haze/haze.hpp>
#include <haze/io/checkpoint.hpp>
#include <haze/io/diffusers.hpp>

#include <charconv>
#include <optional>

#include "../common/cli.hpp"

int main(int argc, char** argv) {
  std::string checkpoint, dir;
  std::string baked;
  bool ema = false, raw = false, no_clip = false;
  CLI::App app{"Write a haze UNet checkpoint as a diffusers pipeline folder (DDPMPipeline)", "haze-export-diffusers"};
  app.add_option("checkpoint", checkpoint, "a UNet checkpoint written by haze (haze-train-fmnist)")->required();
  app.add_option("dir", dir, "the folder to write (created; its files are replaced)")->required();
  auto* ema_flag = app.add_flag("--ema", ema, "export the EMA weights");
  app.add_flag("--raw-weights", raw, "export the raw (last step's) weights")->excludes(ema_flag);
  app.add_flag("--no-clip", no_clip, "scheduler config with clip_sample false (default: true, for images)");
  app.add_option("--class", baked, "export a class-conditional model as an unconditional one sampling this class "
                                   "(a number, or null: the null class)");
  return examples::run_reporting_errors(app, argc, argv, [&] {
    HAZE_REQUIRE(ema || raw, "say which weights to export: --ema or --raw-weights");
    const haze::io::Safetensors file = haze::io::load_safetensors(checkpoint);
    const haze::nn::UNetConfig config = haze::io::read_unet_config<float>(file, {ema ? "ema." : ""});
    const haze::Schedule schedule =
        haze::io::schedule_from_json(haze::io::required_metadata(file, "haze.schedule.json"), checkpoint);
    const std::string& prediction = haze::io::required_prediction(file);
    haze::nn::UNet<float, haze::backend::Cpu> model(config);
    haze::io::load_weights(file, model, ema);
    std::optional<int64_t> label;
    if (!baked.empty()) {
      label = baked == "null" ? config.num_classes : -1;
      if (baked != "null") {
        const auto [end, error] = std::from_chars(baked.data(), baked.data() + baked.size(), *label);
        HAZE_REQUIRE(error == std::errc() && end == baked.data() + baked.size(), "--class '", baked,
                     "' is neither a class number nor null");
      }
    }
    haze::io::export_diffusers(dir, model, schedule, prediction, !no_clip, label);
    std::fprintf(stderr, "wrote %s (%s weights of %s, step %s; %s prediction, schedule %s%s)\n", dir.c_str(),
                 ema ? "EMA" : "raw", checkpoint.c_str(), haze::io::required_metadata(file, "haze.step").c_str(),
                 prediction.c_str(), schedule.description().c_str(),
                 label ? ("; class " + std::to_string(*label) + " baked in").c_str() : "");
    return 0;
  });
}
