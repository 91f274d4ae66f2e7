// libFuzzer harness: arbitrary bytes as a diffusers config.json or
// scheduler_config.json. haze::Error is the only accepted way to refuse
// (any other exception, a crash or a sanitizer report is a finding); a
// UNet config that is accepted must validate and write back to itself.
#include <cstdio>
#include <cstdlib>
#include <haze/io/diffusers.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  nlohmann::json j;
  try {
    j = haze::io::detail::parse_json_config(text, "fuzz");
  } catch (const haze::Error&) {
    return 0;
  }
  try {
    const haze::nn::UNetConfig c = haze::io::unet_config_from_diffusers(j, "fuzz");
    const auto again = haze::io::unet_config_from_diffusers(nlohmann::json::parse(haze::io::diffusers_unet_config(c).dump()), "again");
    if (!(again == c)) {
      std::fprintf(stderr, "fuzz_diffusers_config: config.json -> UNetConfig -> config.json changed the config\n");
      std::abort();
    }
  } catch (const haze::Error&) {
  }
  try {
    (void)haze::io::scheduler_from_diffusers(j, "fuzz");
  } catch (const haze::Error&) {
  }
  return 0;
}
