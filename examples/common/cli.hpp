#pragma once
// What every example program shares: CLI11 parsing, checks of flag values
// and output paths, errors reported as one line, the backend chosen by name,
// and a Ctrl-C flag.
//
// Exit codes: 0 success or --help; 2 a wrong command line (an unknown flag,
// a value that is no number, out of its flag's range, or not a known name),
// printed with the usage; 1 anything found wrong after parsing (files,
// folders, data, a NaN loss, flags that clash with each other or with a
// checkpoint). Every error is one line "<program>: error: ..." on stderr.

#include <haze/haze.hpp>

#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <iostream>
#include <string>
#include <string_view>
#include <utility>

namespace examples {

// The running program's name, for messages printed outside the error path.
inline std::string program_name = "haze";

namespace detail {

// The shortest text that reads back as `value`: 1048576, not 1.04858e+06.
inline std::string text(double value) {
  char out[32];
  return std::string(out, std::to_chars(out, out + sizeof out, value).ptr);
}

// A check that a flag's value satisfies `ok`; NaN and infinities never do.
// Its message reads "--n: must be >= 1, got 0"; `rule` also shows in --help.
inline CLI::Validator number_check(const std::string& rule, std::function<bool(double)> ok) {
  return CLI::Validator(
      [rule, ok](std::string& input) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(input, value)) return "";  // CLI11's conversion reports it
        return std::isfinite(value) && ok(value) ? "" : "must be " + rule + ", got " + input;
      },
      rule);
}

// A haze::Error's text without the "haze: " in front and the "[file:line]" behind.
inline std::string brief(const haze::Error& e) {
  std::string_view message = e.what();
  if (message.starts_with("haze: ")) message.remove_prefix(6);
  if (const size_t at = message.rfind(" ["); at != std::string_view::npos && message.ends_with(']'))
    message = message.substr(0, at);
  return std::string(message);
}

}  // namespace detail

inline CLI::Validator at_least(double low) {
  return detail::number_check(">= " + detail::text(low), [low](double v) { return v >= low; });
}
inline CLI::Validator in_range(double low, double high) {
  return detail::number_check("in [" + detail::text(low) + ", " + detail::text(high) + "]",
                              [low, high](double v) { return v >= low && v <= high; });
}
inline CLI::Validator positive() {
  return detail::number_check("> 0", [](double v) { return v > 0; });
}

// A check of a name by the library's own lookup (which throws haze::Error
// for an unknown name), so the known names are listed in one place.
template <class Lookup>
CLI::Validator known(Lookup lookup) {
  return CLI::Validator(
      [lookup](std::string& name) -> std::string {
        try {
          lookup(name);
          return "";
        } catch (const haze::Error& e) {
          return detail::brief(e);
        }
      },
      "");
}

// The samplers haze::sample::run_sampler knows.
inline void require_sampler(std::string_view name) {
  if (std::ranges::find(haze::sample::sampler_names, name) != haze::sample::sampler_names.end()) return;
  std::string names;
  for (std::string_view known_name : haze::sample::sampler_names)
    names += (names.empty() ? "" : ", ") + std::string(known_name);
  HAZE_FAIL("unknown sampler '", name, "' (known: ", names, ")");
}

#if defined(__CUDACC__) || defined(THRUST_DEVICE_SYSTEM)
inline constexpr bool has_device_backend = true;
#else
inline constexpr bool has_device_backend = false;
#endif

inline void require_backend(std::string_view name) {
  HAZE_REQUIRE(name == "cpu" || name == "device", "unknown backend '", name, "' (known: cpu, device)");
  HAZE_REQUIRE(name == "cpu" || has_device_backend,
               "this program was built without the Device backend (link it with haze::device_omp, or compile it "
               "with nvcc and haze::device_cuda)");
}

// Makes sure each output file can be written, so that a bad path fails now
// and not after the long work: creates its folder, then creates and removes
// a probe file there. Throws haze::Error naming the flag, the path and why.
inline void require_writable(std::initializer_list<std::pair<std::string_view, std::string>> outputs) {
  namespace fs = std::filesystem;
  for (const auto& [flag, path] : outputs) {
    HAZE_REQUIRE(!path.empty(), flag, ": an empty path");
    const fs::path folder = fs::path(path).has_parent_path() ? fs::path(path).parent_path() : fs::path(".");
    std::error_code error;
    fs::create_directories(folder, error);
    HAZE_REQUIRE(!error, flag, " ", path, ": cannot create the folder ", folder.string(), ": ", error.message());
    HAZE_REQUIRE(!fs::is_directory(path, error), flag, " ", path, ": is a folder");
    const fs::path probe = folder / (".haze-probe-" + std::to_string(::getpid()));
    const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    const int reason = errno;
    HAZE_REQUIRE(fd >= 0, flag, " ", path, ": cannot write in the folder ", folder.string(), ": ",
                 std::strerror(reason));
    ::close(fd);
    ::unlink(probe.c_str());
  }
}

// Parses the command line, then runs body(); returns the exit code (above).
template <class F>
int run_reporting_errors(CLI::App& app, int argc, char** argv, F&& body) {
  program_name = app.get_name();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    std::cerr << program_name << ": error: " << e.what() << "\n\n" << app.help();
    return 2;
  }
  try {
    return body();
  } catch (const std::exception& e) {  // haze::Error, and std::bad_alloc, std::filesystem::filesystem_error...
    std::fprintf(stderr, "%s: error: %s\n", program_name.c_str(), e.what());
    return 1;
  }
}

// Calls f.template operator()<B>() with the backend named `name`; "device"
// exists only in programs built with a device system.
template <class F>
int with_backend(const std::string& name, F&& f) {
  require_backend(name);
#if defined(__CUDACC__) || defined(THRUST_DEVICE_SYSTEM)
  if (name == "device") {
#if !defined(__CUDACC__)
    // The OpenMP build proves the device code on machines without a GPU; it is no speed-up.
    std::fprintf(stderr,
                 "%s: note: --backend device runs Thrust's OpenMP system on the CPU in this build (a test vehicle, "
                 "slower than --backend cpu); build the .cu programs with nvcc for a GPU\n",
                 program_name.c_str());
#endif
    return f.template operator()<haze::backend::Device>();
  }
#endif
  return f.template operator()<haze::backend::Cpu>();
}

// Set by SIGINT / SIGTERM / SIGUSR1; long loops poll it and finish cleanly.
// (mpirun forwards SIGUSR1 to every rank and, unlike Ctrl-C, kills none of
// them a second later: the clean stop of a run whose steps are long.)
inline volatile std::sig_atomic_t stop_requested = 0;
inline void request_stop(int) { stop_requested = 1; }
inline void install_stop_handler() {
  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
  std::signal(SIGUSR1, request_stop);
}

}  // namespace examples
