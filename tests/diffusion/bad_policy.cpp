// Compiled by the static_assert tests (tests/CMakeLists.txt) with
// -DHAZE_BAD_POLICY=<n>; each must fail to compile with the named message.
#include <haze/diffusion/noise_schedule.hpp>

namespace schedule = haze::schedule;

#if HAZE_BAD_POLICY == 1
using Bad = schedule::Linear<0>;
#elif HAZE_BAD_POLICY == 2
using Bad = schedule::Linear<1000, 0.02, 0.0001>;
#elif HAZE_BAD_POLICY == 3
using Bad = schedule::Cosine<1000, 0.0>;
#elif HAZE_BAD_POLICY == 4
using Bad = schedule::Sigmoid<1000, 3.0, -3.0>;
#elif HAZE_BAD_POLICY == 5
using Bad = schedule::ZeroTerminalSnr<schedule::Linear<1>>;
#else
using Bad = schedule::Linear<>;  // the control: compiles
#endif

int main() { return haze::NoiseSchedule<Bad>().steps() > 0 ? 0 : 1; }
