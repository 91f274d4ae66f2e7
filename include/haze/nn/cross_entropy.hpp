#pragma once
// Softmax cross-entropy over class logits, and the predicted class.
//
//   double softmax_cross_entropy(logits [N, K], labels (N, host), grad [N, K])
//     L = (1/N) sum_n -log softmax(logits[n])[label[n]]
//       = (1/N) sum_n (m_n + log sum_j exp(s_nj - m_n) - s_n,label),  m_n = max_j s_nj
//     returns L (in double) and assigns (=) grad = dL/dlogits = (softmax - onehot) / N.
//     Each row is written from its log-sum-exp, never from log(p): a p that
//     underflows to 0 (a logit gap over ~87 in float) would make -log p
//     infinite, which is also why ops::softmax_rows (which yields p only) is
//     not reused here. grad is allocated if it is empty or of another shape.
//   std::vector<int64_t> argmax_rows(logits [N, K])
//     per row the index of the largest logit (the first one on ties).
//
// Labels come from the host and travel to backend memory; one functor call
// per row (K is the number of classes: short rows).

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "haze/core/error.hpp"
#include "haze/core/macros.hpp"
#include "haze/core/tensor.hpp"
#include "haze/ops/reduce.hpp"

namespace haze::nn {

namespace detail {

template <class T>
struct CrossEntropyRow {
  const T* logits;       // (N, K)
  const int64_t* labels;  // (N)
  T* grad;               // (N, K)
  Accumulator* loss;     // (N): -log softmax(row)[label]
  int64_t cols;
  Accumulator inv_rows;  // 1 / N
  HAZE_HD void operator()(int64_t row) const {
    const T* s = logits + row * cols;
    T* g = grad + row * cols;
    T top = s[0];
    for (int64_t j = 1; j < cols; ++j) top = s[j] > top ? s[j] : top;
    Accumulator total = 0;
    for (int64_t j = 0; j < cols; ++j) total += exp(Accumulator(s[j]) - Accumulator(top));
    const Accumulator log_total = log(total), inv_total = 1 / total;
    const int64_t label = labels[row];
    for (int64_t j = 0; j < cols; ++j) {
      const Accumulator p = exp(Accumulator(s[j]) - Accumulator(top)) * inv_total;
      g[j] = static_cast<T>((p - (j == label ? 1.0 : 0.0)) * inv_rows);
    }
    loss[row] = log_total + Accumulator(top) - Accumulator(s[label]);
  }
};

template <class T>
struct ArgmaxRow {
  const T* x;  // (N, K)
  int64_t* out;  // (N)
  int64_t cols;
  HAZE_HD void operator()(int64_t row) const {
    const T* r = x + row * cols;
    int64_t best = 0;
    for (int64_t j = 1; j < cols; ++j) best = r[j] > r[best] ? j : best;
    out[row] = best;
  }
};

template <class T, class B>
void require_logits(const char* op, const Tensor<T, B>& logits) {
  logits.require_nonempty(op);
  HAZE_REQUIRE(logits.rank() == 2, op, ": expects logits [N, K], got ", logits.shape());
}

}  // namespace detail

template <Real T, Backend B>
double softmax_cross_entropy(const Tensor<T, B>& logits, std::span<const int64_t> labels, Tensor<T, B>& grad) {
  detail::require_logits("softmax_cross_entropy", logits);
  const int64_t n = logits.dim(0), k = logits.dim(1);
  HAZE_REQUIRE(static_cast<int64_t>(labels.size()) == n, "softmax_cross_entropy: ", labels.size(),
               " labels for logits ", logits.shape(), " (need ", n, ")");
  for (int64_t i = 0; i < n; ++i)
    HAZE_REQUIRE(labels[i] >= 0 && labels[i] < k, "softmax_cross_entropy: label ", i, " is ", labels[i],
                 ", outside [0, ", k, ")");
  if (grad.empty() || grad.shape() != logits.shape()) grad = Tensor<T, B>(logits.shape());
  HAZE_REQUIRE(!grad.shares_storage_with(logits), "softmax_cross_entropy: grad aliases the logits");

  const auto device_labels = Tensor<int64_t, B>::from_host({n}, labels);
  Tensor<Accumulator, B> loss({n});  // (N)
  B::for_each_index(n,
                    detail::CrossEntropyRow<T>{logits.data(), device_labels.data(), grad.data(), loss.data(), k,
                                               Accumulator(1) / Accumulator(n)},
                    k);
  return ops::sum(loss) / double(n);
}

template <Real T, Backend B>
std::vector<int64_t> argmax_rows(const Tensor<T, B>& logits) {
  detail::require_logits("argmax_rows", logits);
  Tensor<int64_t, B> best({logits.dim(0)});  // (N)
  B::for_each_index(logits.dim(0), detail::ArgmaxRow<T>{logits.data(), best.data(), logits.dim(1)}, logits.dim(1));
  return best.to_host();
}

}  // namespace haze::nn
