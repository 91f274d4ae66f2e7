// libFuzzer harness: a checkpoint as haze-sample reads one. The bytes are
// decoded as safetensors, the UNet config in its metadata is checked against
// its tensors, the model is built and its EMA weights loaded, and the
// schedule and prediction type are read back. A haze::Error is the expected
// answer to a bad file; any other exception, a crash, a leak or an
// allocation past libFuzzer's -malloc_limit_mb is a finding.
#include <haze/backend/cpu.hpp>
#include <haze/io/checkpoint.hpp>
#include <haze/nn/unet.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace haze;
  try {
    const io::Safetensors file =
        io::decode_safetensors(std::span(reinterpret_cast<const std::byte*>(data), size), "fuzz.safetensors");
    const nn::UNetConfig config = io::read_unet_config<float>(file, {"ema."});
    nn::UNet<float, backend::Cpu> model(config);
    io::load_weights(file, model);
    (void)io::schedule_from_json(io::required_metadata(file, "haze.schedule.json"), file.source);
    (void)io::required_prediction(file);
  } catch (const haze::Error&) {
  }
  return 0;
}
