#pragma once
// Device::convolution in nvcc builds with cuDNN (HAZE_CUDNN, set by the
// haze::device_cuda target where cudnn.h and libcudnn are found): the
// products of ops/conv.hpp as cuDNN's convolution calls, NCHW, cross
// correlation as in PyTorch. Its twin is the generic im2col + cuBLAS form,
// which every build without cuDNN runs and the OpenMP build tests on the
// host. Algorithms are cuDNN's heuristic choice among the deterministic
// ones (the same bits on every run), FMA math unless TF32 is allowed
// (backend::allow_tf32), and workspaces come from the caching
// allocator, so a call allocates nothing after the first of its shape;
// descriptors and algorithms are made once per shape (Plan).

#include <cudnn.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <type_traits>

#include "haze/backend/cuda/caching_allocator.hpp"
#include "haze/backend/device_counters.hpp"
#include "haze/backend/tf32.hpp"
#include "haze/core/error.hpp"
#include "haze/core/tensor.hpp"
#include "haze/ops/im2col.hpp"

#define HAZE_CUDNN_CHECK(call)                                                                                  \
  do {                                                                                                          \
    const cudnnStatus_t haze_status_ = (call);                                                                  \
    HAZE_REQUIRE(haze_status_ == CUDNN_STATUS_SUCCESS, "cuDNN call ", #call, " failed: ",                       \
                 cudnnGetErrorString(haze_status_));                                                            \
  } while (false)

namespace haze::backend::cuda {

inline cudnnHandle_t cudnn_handle() {
  static cudnnHandle_t handle = [] {
    cudnnHandle_t h = nullptr;
    HAZE_CUDNN_CHECK(cudnnCreate(&h));
    HAZE_CUDNN_CHECK(cudnnSetStream(h, stream()));
    return h;
  }();
  return handle;
}

namespace cudnn_detail {

template <class T>
inline constexpr cudnnDataType_t data_type = std::is_same_v<T, float> ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;

inline int narrow(int64_t v, const char* what) {
  HAZE_REQUIRE(v >= 0 && v <= INT_MAX, "cuDNN convolution: ", what, " = ", v, " exceeds cuDNN's 32-bit extents");
  return int(v);
}

// The descriptors of one convolution: x [N, C, H, W], w [Cout, C, kh, kw],
// y [N, Cout, Ho, Wo], the bias as [1, Cout, 1, 1].
template <class T>
struct Descriptors {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, bias = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;

  Descriptors(int64_t n, int64_t cout, const ops::ConvGeometry& g) {
    HAZE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    HAZE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
    HAZE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&bias));
    HAZE_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    HAZE_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    const cudnnDataType_t type = data_type<T>;
    HAZE_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, type, narrow(n, "N"),
                                                narrow(g.channels, "C"), narrow(g.height, "H"),
                                                narrow(g.width, "W")));
    HAZE_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, type, int(n), narrow(cout, "Cout"),
                                                narrow(g.out_height(), "Ho"), narrow(g.out_width(), "Wo")));
    HAZE_CUDNN_CHECK(cudnnSetTensor4dDescriptor(bias, CUDNN_TENSOR_NCHW, type, 1, int(cout), 1, 1));
    HAZE_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, type, CUDNN_TENSOR_NCHW, int(cout), int(g.channels),
                                                narrow(g.kernel_h, "kh"), narrow(g.kernel_w, "kw")));
    HAZE_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv, narrow(g.padding, "padding"),
                                                     int(g.padding), narrow(g.stride, "stride"), int(g.stride),
                                                     1, 1, CUDNN_CROSS_CORRELATION, type));
    HAZE_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, tf32_allowed() ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
  }
  ~Descriptors() {
    cudnnDestroyConvolutionDescriptor(conv);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyTensorDescriptor(bias);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyTensorDescriptor(x);
  }
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;
};

// The three algorithms of one shape and math mode.
struct Algorithms {
  cudnnConvolutionFwdAlgo_t forward;
  cudnnConvolutionBwdDataAlgo_t data;
  cudnnConvolutionBwdFilterAlgo_t filter;
  size_t workspace;  // bytes, the largest of the three
};

// cuDNN's heuristic ranking, best first; the first deterministic one that
// is supported.
template <class Perf>
auto first_deterministic(const Perf* perf, int count, const char* which) {
  for (int i = 0; i < count; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].determinism == CUDNN_DETERMINISTIC) return perf[i];
  HAZE_FAIL("cuDNN convolution: no deterministic ", which, " algorithm for this shape");
}

template <class T>
Algorithms algorithms_for(const Descriptors<T>& d) {
  constexpr int kMax = 16;
  int count = 0;
  cudnnConvolutionFwdAlgoPerf_t fwd[kMax];
  HAZE_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(cudnn_handle(), d.x, d.w, d.conv, d.y, kMax, &count, fwd));
  const auto f = first_deterministic(fwd, count, "forward");
  cudnnConvolutionBwdDataAlgoPerf_t data[kMax];
  HAZE_CUDNN_CHECK(
      cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnn_handle(), d.w, d.y, d.conv, d.x, kMax, &count, data));
  const auto b = first_deterministic(data, count, "data-gradient");
  cudnnConvolutionBwdFilterAlgoPerf_t filter[kMax];
  HAZE_CUDNN_CHECK(
      cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnn_handle(), d.x, d.y, d.conv, d.w, kMax, &count, filter));
  const auto w = first_deterministic(filter, count, "weight-gradient");
  size_t fwd_bytes = 0, data_bytes = 0, filter_bytes = 0;
  HAZE_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(cudnn_handle(), d.x, d.w, d.conv, d.y, f.algo, &fwd_bytes));
  HAZE_CUDNN_CHECK(
      cudnnGetConvolutionBackwardDataWorkspaceSize(cudnn_handle(), d.w, d.y, d.conv, d.x, b.algo, &data_bytes));
  HAZE_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnn_handle(), d.x, d.y, d.conv, d.w, w.algo,
                                                                  &filter_bytes));
  return {f.algo, b.algo, w.algo, std::max(fwd_bytes, std::max(data_bytes, filter_bytes))};
}

// The descriptors and algorithms of one shape and math mode, made at its
// first call and kept: a UNet has a few dozen shapes, and making and
// destroying five descriptors at every call costs host time a small batch
// cannot hide.
template <class T>
struct Plan {
  Descriptors<T> d;
  Algorithms a;
  Plan(int64_t n, int64_t cout, const ops::ConvGeometry& g) : d(n, cout, g), a(algorithms_for(d)) {}
};

template <class T>
const Plan<T>& plan_for(int64_t n, int64_t cout, const ops::ConvGeometry& g) {
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool>;
  static std::mutex mutex;
  // Never destroyed: at exit cuDNN may already be gone. (Map nodes stay
  // put, so a returned plan stays valid while others are added.)
  static auto* plans = new std::map<Key, std::unique_ptr<Plan<T>>>();
  const Key key{n, cout, g.channels, g.height, g.width, g.kernel_h, g.kernel_w, g.stride, g.padding, tf32_allowed()};
  const std::lock_guard<std::mutex> lock(mutex);
  auto it = plans->find(key);
  if (it == plans->end()) it = plans->emplace(key, std::make_unique<Plan<T>>(n, cout, g)).first;
  return *it->second;
}

// A workspace from the caching allocator for the length of one call.
struct Workspace {
  void* data = nullptr;
  size_t bytes = 0;
  explicit Workspace(size_t n) : data(n ? device_allocate(n) : nullptr), bytes(n) {}
  ~Workspace() {
    if (data) device_release(data);
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
};

// Everything one call needs: the shape's plan and a workspace.
template <class T>
struct Call {
  const Descriptors<T>& d;
  const Algorithms& a;
  Workspace workspace;
  const T one = 1, zero = 0;
  Call(int64_t n, int64_t cout, const ops::ConvGeometry& g) : Call(plan_for<T>(n, cout, g)) {}
  explicit Call(const Plan<T>& plan) : d(plan.d), a(plan.a), workspace(plan.a.workspace) {}
};

}  // namespace cudnn_detail

struct CudnnConvolution {
  // y = conv(x, w) + b (shapes checked by ops::conv2d_forward).
  template <Real T, class B>
  static bool forward(const Tensor<T, B>& x, const Tensor<T, B>& w, const Tensor<T, B>& b,
                      const ops::ConvGeometry& g, Tensor<T, B>& y) {
    const cudnn_detail::Call<T> c(x.dim(0), w.dim(0), g);
    device_counters().launch(2);
    HAZE_CUDNN_CHECK(cudnnConvolutionForward(cudnn_handle(), &c.one, c.d.x, x.data(), c.d.w, w.data(), c.d.conv,
                                             c.a.forward, c.workspace.data, c.workspace.bytes, &c.zero, c.d.y,
                                             y.data()));
    HAZE_CUDNN_CHECK(cudnnAddTensor(cudnn_handle(), &c.one, c.d.bias, b.data(), &c.one, c.d.y, y.data()));
    return true;
  }

  // dw += dL/dw, dx = dL/dx (shapes checked by ops::conv2d_backward).
  template <Real T, class B>
  static bool backward(const Tensor<T, B>& x, const Tensor<T, B>& w, const Tensor<T, B>& dy,
                       const ops::ConvGeometry& g, Tensor<T, B>& dw, Tensor<T, B>& dx) {
    const cudnn_detail::Call<T> c(x.dim(0), w.dim(0), g);
    device_counters().launch(2);
    HAZE_CUDNN_CHECK(cudnnConvolutionBackwardFilter(cudnn_handle(), &c.one, c.d.x, x.data(), c.d.y, dy.data(),
                                                    c.d.conv, c.a.filter, c.workspace.data, c.workspace.bytes,
                                                    &c.one, c.d.w, dw.data()));
    HAZE_CUDNN_CHECK(cudnnConvolutionBackwardData(cudnn_handle(), &c.one, c.d.w, w.data(), c.d.y, dy.data(),
                                                  c.d.conv, c.a.data, c.workspace.data, c.workspace.bytes, &c.zero,
                                                  c.d.x, dx.data()));
    return true;
  }
};

}  // namespace haze::backend::cuda
