// Schedules against an independent NumPy reference, compile-time policies
// against the run-time path, the timestep spacings, and bad input.
#include <haze/diffusion/noise_schedule.hpp>
#include <haze/sample/timesteps.hpp>

#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "test_support.hpp"

using haze::NoiseSchedule;
using haze::Schedule;
using haze::test::mentions;
namespace schedule = haze::schedule;

TEST_CASE("schedule tables match the NumPy reference to 1e-12", "[schedule][golden]") {
  // tests/golden/schedules.txt comes from tests/golden/schedules.py (float64
  // NumPy, written independently of the C++). Both sides compute the same
  // formulas in double; 1e-12 relative leaves room for libm differences and
  // the order of the cumulative product, nothing more.
  std::ifstream file(HAZE_GOLDEN_DIR "/schedules.txt");
  REQUIRE(file.good());
  const std::map<std::string, std::function<double(const Schedule&, int)>> quantity = {
      {"beta", &Schedule::beta},
      {"alpha", &Schedule::alpha},
      {"alpha_bar", &Schedule::alpha_bar},
      {"alpha_bar_prev", &Schedule::alpha_bar_prev},
      {"sqrt_alpha_bar", &Schedule::sqrt_alpha_bar},
      {"sqrt_one_minus_alpha_bar", &Schedule::sqrt_one_minus_alpha_bar},
      {"posterior_variance", &Schedule::posterior_variance},
      {"posterior_log_variance_clipped", &Schedule::posterior_log_variance_clipped},
      {"posterior_mean_coef_x0", &Schedule::posterior_mean_coef_x0},
      {"posterior_mean_coef_xt", &Schedule::posterior_mean_coef_xt},
      {"snr", &Schedule::snr},
      {"sigma", &Schedule::sigma},
  };
  std::map<std::string, Schedule> built;
  int checked = 0;
  std::string line;
  while (std::getline(file, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream in(line);
    std::string kind, params, name, value_text;
    int steps, zero_snr, t;
    in >> kind >> steps >> zero_snr >> params >> t >> name >> value_text;
    const std::string key = kind + " " + std::to_string(steps) + " " + std::to_string(zero_snr) + " " + params;
    if (!built.contains(key)) {
      std::vector<double> p;
      std::stringstream list(params);
      for (std::string item; std::getline(list, item, ',');) p.push_back(std::stod(item));
      built.emplace(key, Schedule::make(kind, steps, p, zero_snr == 1));
    }
    const double expected = value_text == "inf" ? INFINITY : std::stod(value_text);
    const double got = quantity.at(name)(built.at(key), t);
    INFO(line << "\n  haze: " << got);
    if (std::isinf(expected)) CHECK(got == expected);
    else CHECK(std::abs(got - expected) <= 1e-12 * std::abs(expected));
    ++checked;
  }
  CHECK(checked == 720);  // 15 schedules x 4 timesteps x 12 quantities
}

template <class Policy>
static void require_same_as_runtime(const Schedule& runtime) {
  const NoiseSchedule<Policy> compiled;
  REQUIRE(compiled.steps() == runtime.steps());
  CHECK(compiled.description() == runtime.description());
  for (int t = 0; t < compiled.steps(); ++t) {
    REQUIRE(compiled.beta(t) == runtime.beta(t));
    REQUIRE(compiled.alpha_bar(t) == runtime.alpha_bar(t));
  }
}

TEST_CASE("compile-time policies and run-time schedules are one computation", "[schedule]") {
  require_same_as_runtime<schedule::Linear<>>(Schedule::make("linear", 1000));
  require_same_as_runtime<schedule::ScaledLinear<>>(Schedule::make("scaled_linear", 1000));
  require_same_as_runtime<schedule::Cosine<>>(Schedule::make("cosine", 1000));
  require_same_as_runtime<schedule::Sigmoid<>>(Schedule::make("sigmoid", 1000));
  require_same_as_runtime<schedule::SigmoidBeta<>>(Schedule::make("sigmoid_beta", 1000));
  require_same_as_runtime<schedule::Cosine<50, 0.02, 0.5>>(Schedule::make("cosine", 50, {0.02, 0.5}));
  require_same_as_runtime<schedule::ZeroTerminalSnr<schedule::Linear<>>>(Schedule::make("linear", 1000, {}, true));
  CHECK(NoiseSchedule<schedule::Cosine<>>().description() == "cosine(steps=1000; 0.008, 0.999)");
}

TEST_CASE("zero terminal SNR ends at alpha_bar = 0 and keeps alpha_bar(0)", "[schedule]") {
  const Schedule plain = Schedule::make("scaled_linear", 1000);
  const Schedule rescaled = Schedule::make("scaled_linear", 1000, {}, true);
  CHECK(rescaled.alpha_bar(999) == 0);
  CHECK(rescaled.snr(999) == 0);
  CHECK(std::isinf(rescaled.sigma(999)));
  CHECK(rescaled.alpha_bar(0) == Approx(plain.alpha_bar(0)).epsilon(1e-14));
  CHECK(rescaled.zero_terminal_snr());
}

TEST_CASE("continuous-time sigma interpolates log sigma and inverts exactly", "[schedule]") {
  const Schedule s = Schedule::make("cosine", 1000);
  CHECK(s.sigma_at(10.0) == s.sigma(10));
  CHECK(s.sigma_at(10.5) == Approx(std::sqrt(s.sigma(10) * s.sigma(11))).epsilon(1e-14));  // geometric mean
  for (double t : {0.0, 0.25, 17.5, 500.75, 998.9, 999.0}) {
    CAPTURE(t);
    CHECK(s.t_at_sigma(s.sigma_at(t)) == Approx(t).margin(1e-9));
  }
  CHECK_THROWS_WITH(s.sigma_at(999.5), mentions("t = 999.5 outside [0, 999]"));
  CHECK_THROWS_WITH(s.t_at_sigma(1e-9), mentions("outside the schedule's"));
}

TEST_CASE("timestep spacings follow DDIM / Lin et al. 2024 Table 2", "[timesteps]") {
  using haze::sample::Spacing;
  using haze::sample::timesteps;
  // Table 2 of "Common diffusion noise schedules and sample steps are flawed", T = 1000, 10 steps.
  CHECK(timesteps(1000, 10, Spacing::Linspace) == std::vector<int>{999, 888, 777, 666, 555, 444, 333, 222, 111, 0});
  CHECK(timesteps(1000, 10, Spacing::Leading) == std::vector<int>{900, 800, 700, 600, 500, 400, 300, 200, 100, 0});
  CHECK(timesteps(1000, 10, Spacing::Trailing) == std::vector<int>{999, 899, 799, 699, 599, 499, 399, 299, 199, 99});
  CHECK(timesteps(1000, 1000, Spacing::Leading).front() == 999);
  CHECK(timesteps(1000, 1000, Spacing::Trailing).back() == 0);
  CHECK(timesteps(1000, 1, Spacing::Trailing) == std::vector<int>{999});
  CHECK(timesteps(10, 3, Spacing::Trailing) == std::vector<int>{9, 6, 2});  // round(10, 6.67, 3.33) - 1
  CHECK(haze::sample::spacing_from_name("trailing") == Spacing::Trailing);
  CHECK_THROWS_WITH(haze::sample::spacing_from_name("evenly"), mentions("timestep spacing 'evenly' is unknown"));
  CHECK_THROWS_WITH(timesteps(1000, 0, Spacing::Leading), mentions("need 1 <= steps <= 1000"));
  CHECK_THROWS_WITH(timesteps(1000, 1001, Spacing::Leading), mentions("got 1001"));
}

TEST_CASE("run-time schedules reject bad names and numbers", "[schedule][errors]") {
  CHECK_THROWS_WITH(Schedule::make("quadratic", 1000), mentions("unknown kind 'quadratic'"));
  CHECK_THROWS_WITH(Schedule::make("linear", 0), mentions("schedule linear: steps must be in [1, 1048576], got 0"));
  // A file asking for 2^31 - 1 steps would need tens of GiB of tables.
  CHECK_THROWS_WITH(Schedule::make("cosine", 2147483647), mentions("steps must be in [1, 1048576], got 2147483647"));
  CHECK(Schedule::make("linear", Schedule::max_steps).steps() == Schedule::max_steps);
  CHECK_THROWS_WITH(Schedule::make("linear", 1000, {0.02, 0.0001}), mentions("need 0 < start <= end < 1"));
  CHECK_THROWS_WITH(Schedule::make("linear", 1000, {0.1}), mentions("expects 2 parameters, got 1"));
  CHECK_THROWS_WITH(Schedule::make("cosine", 1000, {0.0, 0.999}), mentions("offset s must be > 0"));
  CHECK_THROWS_WITH(Schedule::make("cosine", 1000, {0.008, 1.5}), mentions("max_beta must be in (0, 1)"));
  CHECK_THROWS_WITH(Schedule::make("sigmoid", 1000, {3, -3, 1}), mentions("need start < end"));
  CHECK_THROWS_WITH(Schedule::make("sigmoid", 1000, {-3, 3, 0}), mentions("tau must be > 0"));
  CHECK_THROWS_WITH(Schedule::make("linear", 1, {}, true), mentions("needs at least 2 steps"));
  const Schedule s = Schedule::make("linear", 100);
  CHECK_THROWS_WITH(s.beta(100), mentions("timestep t = 100 outside [0, 100)"));
  CHECK_THROWS_WITH(s.alpha_bar(-1), mentions("timestep t = -1"));
}
