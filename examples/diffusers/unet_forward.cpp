// haze-unet-forward: one forward pass of a diffusers model folder's UNet,
// for checking haze against diffusers on models too large to keep as test
// files (tests/golden/diffusers_check.py runs it beside diffusers):
//
//   haze-unet-forward --diffusers DIR --input in.safetensors --out out.safetensors [--double]
//
// The input file holds "x" [N, C, H, W] (F32 or F64), "t" [N] (F64) and,
// for a class-conditional model, "labels" [N] (I64), or for class_embed_type
// identity "class_vectors" [N, 4 C[0]] (F32 or F64); the output holds "y",
// F32, or F64 with --double (the model then computes in double).
#include <haze/haze.hpp>
#include <haze/io/diffusers.hpp>

#include "../common/cli.hpp"

namespace {

using namespace haze;

template <class T>
io::Safetensors forward(const io::DiffusersFolder& folder, const io::Safetensors& in) {
  const io::Safetensors weights = folder.load_weights();
  nn::UNet<T, backend::Cpu> model(io::read_diffusers_unet_config(folder.config, weights));
  io::load_diffusers_weights(weights, model);
  const io::TensorRecord& x = in.at("x");
  HAZE_REQUIRE(x.shape.size() == 4, in.source, ": x is ", io::detail::shape_text(x.shape), ", not [N, C, H, W]");
  const std::vector<double> t = in.at("t").as<double>();
  std::vector<int64_t> labels;
  if (in.find("labels")) labels = in.at("labels").as<int64_t>();
  const auto input = Tensor<T, backend::Cpu>::from_host({x.shape[0], x.shape[1], x.shape[2], x.shape[3]},
                                                        x.to_real<T>());
  std::vector<T> y;
  if (model.config().takes_class_vectors()) {
    const io::TensorRecord& v = in.at("class_vectors");
    const int64_t width = model.config().time_embed_dim();
    HAZE_REQUIRE((v.shape == std::vector<int64_t>{x.shape[0], width}), in.source, ": class_vectors is ",
                 io::detail::shape_text(v.shape), ", not [", x.shape[0], ", ", width, "]");
    y = model.infer(input, t, Tensor<T, backend::Cpu>::from_host({x.shape[0], width}, v.to_real<T>())).to_host();
  } else {
    y = model.infer(input, t, labels).to_host();
  }
  io::Safetensors out;
  out.add(io::TensorRecord::from<T>("y", {x.shape[0], model.config().out_channels, x.shape[2], x.shape[3]}, y));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir, input, output;
  bool use_double = false;
  CLI::App app{"Run a diffusers model folder's UNet once on given inputs", "haze-unet-forward"};
  app.add_option("--diffusers", dir, "a diffusers UNet2DModel folder (or a pipeline folder)")->required();
  app.add_option("--input", input, "safetensors with x, t and (if class-conditional) labels")->required();
  app.add_option("--out", output, "safetensors to write y to")->required();
  app.add_flag("--double", use_double, "compute in double (default: float)");
  return examples::run_reporting_errors(app, argc, argv, [&] {
    examples::require_writable({{"--out", output}});
    const io::DiffusersFolder folder = io::DiffusersFolder::at(dir);
    const io::Safetensors in = io::load_safetensors(input);
    io::save_safetensors(output, use_double ? forward<double>(folder, in) : forward<float>(folder, in));
    return 0;
  });
}
