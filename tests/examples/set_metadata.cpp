// set_metadata IN OUT KEY VALUE: copies a safetensors file with one metadata
// value replaced, so the CLI checks can hand the programs crafted checkpoints
// (cmake scripts cannot edit binary files).
#include <haze/io/safetensors.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: set_metadata IN OUT KEY VALUE\n");
    return 2;
  }
  try {
    haze::io::Safetensors file = haze::io::load_safetensors(argv[1]);
    file.metadata[argv[3]] = argv[4];
    haze::io::save_safetensors(argv[2], file);
    return 0;
  } catch (const haze::Error& e) {
    std::fprintf(stderr, "set_metadata: error: %s\n", e.what());
    return 1;
  }
}
