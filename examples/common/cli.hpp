#pragma once
// What every example program shares: CLI11 parsing with the project's exit
// codes (0 for --help, 2 and the usage for bad flags), haze::Error reported
// as one line and exit code 1, the backend chosen by name, and a Ctrl-C flag.

#include <haze/haze.hpp>

#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

namespace examples {

// nullopt: parsed, go on; otherwise the exit code to return.
inline std::optional<int> parse(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    std::cerr << app.get_name() << ": " << e.what() << "\n\n" << app.help();
    return 2;
  }
}

// Runs body(), turning a haze::Error into a message and exit code 1.
template <class F>
int run_reporting_errors(const char* program, F&& body) {
  try {
    return body();
  } catch (const haze::Error& e) {
    std::fprintf(stderr, "%s: error: %s\n", program, e.what());
    return 1;
  }
}

// Calls f.template operator()<B>() with the backend named `name`; "device"
// exists only in programs built with a device system (the *_cuda builds).
template <class F>
int with_backend(const std::string& name, F&& f) {
  if (name == "cpu") return f.template operator()<haze::backend::Cpu>();
#if defined(__CUDACC__) || defined(THRUST_DEVICE_SYSTEM)
  if (name == "device") return f.template operator()<haze::backend::Device>();
#endif
  HAZE_REQUIRE(name == "device", "unknown backend '", name, "' (known: cpu, device)");
  HAZE_FAIL("this program was built without the Device backend; use its _cuda build for --backend device");
}

// Set by SIGINT / SIGTERM; long loops poll it and finish cleanly.
inline volatile std::sig_atomic_t stop_requested = 0;
inline void request_stop(int) { stop_requested = 1; }
inline void install_stop_handler() {
  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
}

}  // namespace examples
