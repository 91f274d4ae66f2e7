#pragma once
// Tensor<T, B>: an owning, contiguous, row-major array of T in backend B's
// memory (NCHW for images). A tensor is a handle: it moves but does not copy
// implicitly (clone() copies, to<B2>() copies across backends), and
// reshape() and slice() return further handles on the same storage.
//
// A default-constructed or moved-from tensor is *empty*: it has rank 0 and no
// storage, and every operation that reads it throws haze::Error.

#include <memory>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "haze/core/backend_concept.hpp"
#include "haze/core/dtype.hpp"
#include "haze/core/error.hpp"
#include "haze/core/shape.hpp"

namespace haze {

template <Element T, Backend B>
class Tensor {
 public:
  using value_type = T;
  using backend_type = B;

  Tensor() = default;

  // Allocates numel() elements, left uninitialised.
  explicit Tensor(Shape shape) : shape_(shape) {
    HAZE_REQUIRE(shape.rank() >= 1, "Tensor: cannot allocate a rank-0 (empty) shape");
    const int64_t n = shape.numel();
    storage_ = std::shared_ptr<T>(B::template allocate<T>(n), [n](T* p) { B::template deallocate<T>(p, n); });
  }

  static Tensor zeros(Shape shape) { return full(shape, T(0)); }

  static Tensor full(Shape shape, T value) {
    Tensor t(shape);
    B::template fill<T>(t.data(), t.numel(), value);
    return t;
  }

  static Tensor from_host(Shape shape, std::span<const T> values) {
    HAZE_REQUIRE(shape.rank() >= 1, "Tensor::from_host: empty shape");
    HAZE_REQUIRE(static_cast<int64_t>(values.size()) == shape.numel(), "Tensor::from_host: shape ", shape,
                 " holds ", shape.numel(), " elements but ", values.size(), " values were given");
    Tensor t(shape);
    B::template copy_from_host<T>(t.data(), values.data(), t.numel());
    return t;
  }

  Tensor(Tensor&& other) noexcept
      : storage_(std::move(other.storage_)), shape_(std::exchange(other.shape_, Shape{})) {}
  Tensor& operator=(Tensor&& other) noexcept {
    storage_ = std::move(other.storage_);
    shape_ = std::exchange(other.shape_, Shape{});
    return *this;
  }
  Tensor(const Tensor&) = delete;  // use clone() for a copy, reshape() for an alias
  Tensor& operator=(const Tensor&) = delete;

  Shape shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  int64_t dim(int axis) const { return shape_[axis]; }
  int64_t numel() const { return shape_.numel(); }
  bool empty() const { return storage_ == nullptr; }

  // Pointer into backend memory (device memory for Device under CUDA).
  T* data() { return storage_.get(); }
  const T* data() const { return storage_.get(); }

  std::vector<T> to_host() const {
    require_nonempty("Tensor::to_host");
    std::vector<T> host(static_cast<size_t>(numel()));
    B::template copy_to_host<T>(host.data(), data(), numel());
    return host;
  }

  // Overwrites the contents from host memory; sizes must match exactly.
  void assign_from_host(std::span<const T> values) {
    require_nonempty("Tensor::assign_from_host");
    HAZE_REQUIRE(static_cast<int64_t>(values.size()) == numel(), "Tensor::assign_from_host: tensor ", shape_,
                 " holds ", numel(), " elements but ", values.size(), " values were given");
    B::template copy_from_host<T>(data(), values.data(), numel());
  }

  Tensor clone() const {
    require_nonempty("Tensor::clone");
    Tensor copy(shape_);
    B::template copy<T>(copy.data(), data(), numel());
    return copy;
  }

  // Deep copy into another backend's memory, staged through the host.
  template <Backend B2>
  Tensor<T, B2> to() const {
    require_nonempty("Tensor::to");
    if constexpr (std::is_same_v<B, B2>) {
      return clone();
    } else {
      const std::vector<T> host = to_host();
      return Tensor<T, B2>::from_host(shape_, host);
    }
  }

  // A second handle on the same storage with another shape of equal numel.
  // Writes through either handle are seen by both.
  Tensor reshape(Shape shape) const {
    require_nonempty("Tensor::reshape");
    HAZE_REQUIRE(shape.numel() == numel(), "Tensor::reshape: cannot view ", shape_, " (", numel(),
                 " elements) as ", shape, " (", shape.numel(), " elements)");
    Tensor alias;
    alias.storage_ = storage_;
    alias.shape_ = shape;
    return alias;
  }

  // A handle on shape.numel() elements of this one's, from flat element
  // `offset` (a parameter's place in a flat arena). It keeps the whole
  // storage alive; writes through either handle are seen by both.
  Tensor slice(int64_t offset, Shape shape) const {
    require_nonempty("Tensor::slice");
    HAZE_REQUIRE(shape.rank() >= 1 && offset >= 0 && offset + shape.numel() <= numel(), "Tensor::slice: ", shape,
                 " from element ", offset, " does not fit in ", shape_, " (", numel(), " elements)");
    Tensor part;
    part.storage_ = std::shared_ptr<T>(storage_, storage_.get() + offset);
    part.shape_ = shape;
    return part;
  }

  // Whether both start at the same element (an alias: reshape, keep).
  bool shares_storage_with(const Tensor& other) const { return storage_ && storage_ == other.storage_; }
  // Whether both are handles on one allocation (slices of one arena, say).
  bool shares_allocation_with(const Tensor& other) const {
    return storage_ && other.storage_ && !storage_.owner_before(other.storage_) &&
           !other.storage_.owner_before(storage_);
  }

  void require_nonempty(const char* op) const {
    HAZE_REQUIRE(!empty(), op, ": the tensor is empty (default-constructed or moved-from)");
  }

 private:
  std::shared_ptr<T> storage_;
  Shape shape_;
};

}  // namespace haze
