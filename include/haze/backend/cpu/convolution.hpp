#pragma once
// Cpu::convolution: how the Cpu runs the convolution products of
// ops/conv.hpp (see owns_convolution). "Same" convolutions over whole SIMD
// rows take the direct form (conv_direct.hpp), most others a band of one
// image at a time (conv_bands.hpp); images too small for bands to pay are
// left to the generic whole-batch form. Each form sums every element in a
// fixed order, so results do not depend on the thread count.

#include "haze/backend/cpu.hpp"
#include "haze/backend/cpu/conv_bands.hpp"
#include "haze/backend/cpu/conv_direct.hpp"
#include "haze/core/tensor.hpp"
#include "haze/ops/im2col.hpp"

namespace haze::backend::cpu_conv {

struct Convolution {
  // y = conv(x, w) + b, shapes already checked; false: use the generic form.
  template <Real T>
  static bool forward(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& w, const Tensor<T, Cpu>& b,
                      const ConvGeometry& g, Tensor<T, Cpu>& y) {
#if defined(HAZE_DIRECT_CONV)
    if (direct_conv_applies<T>(g)) {
      conv2d_forward_direct(x, w, b, g, y);
      return true;
    }
#endif
    if (!cpu_prefers_bands(g, w.dim(0))) return false;
    conv2d_forward_banded(x, w, b, g, y, bands_of<T>(g, w.dim(0), cpu_band_bytes));
    return true;
  }

  // dw += dL/dw and dx = dL/dx, shapes already checked; false: use the generic form.
  template <Real T>
  static bool backward(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& w, const Tensor<T, Cpu>& dy,
                       const ConvGeometry& g, Tensor<T, Cpu>& dw, Tensor<T, Cpu>& dx) {
    const Bands bands = bands_of<T>(g, w.dim(0), cpu_band_bytes);
    const Bands dx_bands = bands_of<T>(dx_geometry(g, w.dim(0)), g.channels, cpu_band_bytes);
#if defined(HAZE_DIRECT_CONV)
    if (direct_conv_applies<T>(g)) {
      if (direct_weight_grad_applies<T>(g, w.dim(0))) conv2d_weight_grad_direct(x, dy, g, dw);
      else conv2d_backward_banded(x, w, dy, g, dw, dx, bands, dx_bands, false);  // dw only
      conv2d_data_grad_direct(w, dy, g, dx);
      return true;
    }
#endif
    if (!cpu_prefers_bands(g, w.dim(0))) return false;
    conv2d_backward_banded(x, w, dy, g, dw, dx, bands, dx_bands);
    return true;
  }
};

}  // namespace haze::backend::cpu_conv
