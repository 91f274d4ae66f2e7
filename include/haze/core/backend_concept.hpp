#pragma once
// What a backend is: a tag type whose static functions are the primitive set
// every higher op is written against (memory, a parallel loop over an index
// range, a few reductions, GEMM, Philox normals). Backends are chosen at
// compile time; Tensor<T, B> only ever talks to B through this set.

#include <concepts>
#include <cstdint>
#include <string_view>

namespace haze {

enum class Transpose : bool { No = false, Yes = true };

namespace detail {
struct ProbeIndexFunctor {
  void operator()(int64_t) const {}
};
}  // namespace detail

template <class B>
concept Backend = requires(float* p, const float* cp, int64_t n, uint64_t u) {
  { B::name } -> std::convertible_to<std::string_view>;
  { B::template allocate<float>(n) } -> std::same_as<float*>;
  B::template deallocate<float>(p, n);
  B::template copy_from_host<float>(p, cp, n);
  B::template copy_to_host<float>(p, cp, n);
  B::template copy<float>(p, cp, n);
  B::template fill<float>(p, n, 0.0f);
  B::for_each_index(n, detail::ProbeIndexFunctor{});
  { B::template sum<float>(cp, n) } -> std::same_as<double>;
  B::template randn<float>(p, n, u, u);
};

// Whether a backend's for_each_index runs on a few CPU threads, where one
// call per contiguous row (vectorised inside) beats one call per element; a
// GPU wants the opposite. A backend opts in with
// `static constexpr bool row_calls = true;`.
template <class B>
inline constexpr bool prefers_row_calls = requires { requires B::row_calls; };

// Whether a backend runs convolutions its own way: `typename B::convolution`
// names a type whose static `forward(x, w, b, g, y)` and
// `backward(x, w, dy, g, dw, dx)` (ops/conv.hpp's products, shapes already
// checked) return false where the generic im2col + GEMM form should run
// instead. The Cpu's is backend/cpu/convolution.hpp.
template <class B>
inline constexpr bool owns_convolution = requires { typename B::convolution; };

// Whether a backend runs softmax over rows its own way: B::softmax::forward
// (x, rows, cols) and backward(p, d, rows, cols), with the contract of
// ops::softmax_rows and softmax_rows_backward (CUDA's: a row per warp).
template <class B>
inline constexpr bool owns_softmax = requires { typename B::softmax; };

// Whether a backend can run a batch as one share per thread
// (`B::in_batch_shares(n, body)`, see backend::Cpu): on a few CPU threads a
// network's many short ops otherwise fork and join once each.
// `B::gemm_extent_exact()` says whether a share's bits are the batch's;
// `B::in_ranges(n, body)` splits a long pass over memory between threads.
template <class B>
inline constexpr bool splits_batches = requires(void (*body)(int64_t, int64_t)) {
  B::in_batch_shares(int64_t(1), body);
  B::in_ranges(int64_t(1), body);
  { B::max_threads() } -> std::convertible_to<int64_t>;
  { B::gemm_extent_exact() } -> std::same_as<bool>;
};

}  // namespace haze
