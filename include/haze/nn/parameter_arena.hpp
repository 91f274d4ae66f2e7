#pragma once
// ParameterArena: all of a model's parameter values in one flat buffer, and
// all their gradients in a second with the same layout. Packing copies each
// parameter into its slice and rebinds the parameter's tensors to that
// slice (Tensor::slice), so layers read and write them as before, while
// the optimizer, the EMA, the gradient norm and zeroing the gradients each
// cover every parameter in one pass: one launch on a GPU instead of one per
// parameter, and one buffer for an all-reduce to send.
//
// Layout: the weights (ParamKind::Weight, what weight decay applies to by
// default) first, then the rest, then the frozen parameters (which the
// optimizer and the EMA skip), each group in list order; every slice
// starts on a 256-byte boundary (cudaMalloc's alignment, which cuBLAS and
// cuDNN expect of their operands). The gaps are zero in both buffers and
// stay zero: a zero gradient leaves a zero value, its moments and its
// average at zero.
//
// Packing is idempotent: parameters already packed in this layout are
// described, not moved. (Every parameter at its offset from the first, all
// in one allocation, is enough to know the arena's extent lies inside that
// allocation: it ends where the last parameter ends. A lone parameter is
// an arena of its own.) A parameter whose tensor is later replaced
// (`*p.value = other`) is no longer in the arena; every use checks that.

#include <cstdint>
#include <vector>

#include "haze/core/error.hpp"
#include "haze/core/tensor.hpp"
#include "haze/nn/module.hpp"

namespace haze::nn {

template <Real T, Backend B>
class ParameterArena {
 public:
  static constexpr int64_t alignment = 256 / int64_t(sizeof(T));  // elements

  explicit ParameterArena(Parameters<T, B> params) : params_(std::move(params)) {
    const auto group = [](ParamKind kind) { return kind == ParamKind::Weight ? 0 : kind == ParamKind::Frozen ? 2 : 1; };
    for (const int g : {0, 1, 2})
      for (size_t i = 0; i < params_.size(); ++i)
        if (group(params_[i].kind) == g) order_.push_back(i);
    offsets_.resize(params_.size());
    for (size_t i : order_) {
      offsets_[i] = (size_ + alignment - 1) / alignment * alignment;
      size_ = offsets_[i] + params_[i].value->numel();  // no gap after the last
      if (params_[i].kind == ParamKind::Weight) decayed_end_ = size_;
      if (params_[i].kind != ParamKind::Frozen) trained_end_ = size_;
    }
    if (!params_.empty() && !packed()) pack();
  }

  const Parameters<T, B>& parameters() const { return params_; }
  // Elements in each buffer, gaps included.
  int64_t size() const { return size_; }
  // Parameter i's first element.
  int64_t offset(size_t i) const { return offsets_.at(i); }
  // The weights sit in [0, decayed_end()).
  int64_t decayed_end() const { return decayed_end_; }
  // Everything but the frozen parameters sits in [0, trained_end()).
  int64_t trained_end() const { return trained_end_; }

  // The buffers; `op` names the caller in the error thrown when a
  // parameter's tensor has been replaced since packing.
  // (Null for an arena of no parameters.)
  T* values(const char* op) const {
    require_intact(op);
    return params_.empty() ? nullptr : first().value->data();
  }
  T* grads(const char* op) const {
    require_intact(op);
    return params_.empty() ? nullptr : first().grad->data();
  }

  void zero_grads() const {
    if (size_ > 0) B::fill(grads("ParameterArena::zero_grads"), size_, T(0));
  }

  // Which parameter holds arena element e (or params.size() for a gap).
  size_t parameter_at(int64_t e) const {
    for (size_t i = 0; i < params_.size(); ++i)
      if (e >= offsets_[i] && e < offsets_[i] + params_[i].value->numel()) return i;
    return params_.size();
  }

  void require_intact(const char* op) const {
    for (size_t i = 0; i < params_.size(); ++i)
      HAZE_REQUIRE(in_place(i), op, ": parameter '", params_[i].name,
                   "' was replaced after it was packed into the parameter arena (assign into it, e.g. "
                   "assign_from_host, instead of replacing the tensor)");
  }

 private:
  const ParameterRef<T, B>& first() const { return params_[order_.front()]; }

  // Whether parameter i's value and gradient are their slices of the arena.
  bool in_place(size_t i) const {
    const auto& p = params_[i];
    const auto& base = first();
    return p.value->data() == base.value->data() + offsets_[i] && p.grad->data() == base.grad->data() + offsets_[i] &&
           p.value->shares_allocation_with(*base.value) && p.grad->shares_allocation_with(*base.grad);
  }

  bool packed() const {
    for (size_t i = 0; i < params_.size(); ++i)
      if (!in_place(i)) return false;
    return true;
  }

  void pack() {
    auto values = Tensor<T, B>::zeros({size_});
    auto grads = Tensor<T, B>::zeros({size_});
    for (size_t i = 0; i < params_.size(); ++i) {
      auto& p = params_[i];
      HAZE_REQUIRE(p.grad->shape() == p.value->shape(), "ParameterArena: parameter '", p.name, "' is ",
                   p.value->shape(), " but its gradient is ", p.grad->shape());
      const Shape shape = p.value->shape();
      B::copy(values.data() + offsets_[i], p.value->data(), shape.numel());
      B::copy(grads.data() + offsets_[i], p.grad->data(), shape.numel());
      *p.value = values.slice(offsets_[i], shape);
      *p.grad = grads.slice(offsets_[i], shape);
    }
  }

  Parameters<T, B> params_;
  std::vector<size_t> order_;      // parameters in arena order
  std::vector<int64_t> offsets_;   // by parameter index
  int64_t size_ = 0;
  int64_t decayed_end_ = 0;
  int64_t trained_end_ = 0;
};

}  // namespace haze::nn
