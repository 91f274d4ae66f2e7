#pragma once
// The precision switch of the CUDA build: whether float products on cuBLAS
// and cuDNN may use TF32 tensor cores (inputs rounded to a 10-bit mantissa,
// sums in float). Off by default and in every parity test, so a device
// product stays within float rounding of the Cpu's; PyTorch's default for
// convolutions is TF32, so a benchmark states which it uses. The Cpu and
// the OpenMP build of Device have no TF32 and ignore it. Not thread-safe:
// set it before the work starts.

namespace haze::backend {

namespace detail {
inline bool& tf32_flag() {
  static bool allowed = false;
  return allowed;
}
}  // namespace detail

inline void allow_tf32(bool allowed) { detail::tf32_flag() = allowed; }
inline bool tf32_allowed() { return detail::tf32_flag(); }

}  // namespace haze::backend
