#pragma once
// backend::Meta: tensors with shapes and no storage (PyTorch calls the same
// idea the "meta" device). Building a model on it costs a few bytes per
// layer whatever its size, and lists the exact names and shapes of its
// parameters; a loader compares those with a file's tensors before it
// allocates anything the size of the model (io/checkpoint.hpp).
//
// Nothing can be computed on it: every primitive is a no-op, and data()
// points at one shared sentinel (non-null, so a tensor is not "empty") that
// nothing reads or writes. Only construct modules and read their parameter
// lists.

#include <cstdint>
#include <string_view>

#include "haze/core/backend_concept.hpp"
#include "haze/core/dtype.hpp"

namespace haze::backend {

struct Meta {
  static constexpr std::string_view name = "meta";

  template <class T>
  static T* allocate(int64_t) {
    alignas(64) static unsigned char sentinel[64];
    return reinterpret_cast<T*>(sentinel);
  }
  template <class T>
  static void deallocate(T*, int64_t) {}
  template <class T>
  static void copy_from_host(T*, const T*, int64_t) {}
  template <class T>
  static void copy_to_host(T*, const T*, int64_t) {}
  template <class T>
  static void copy(T*, const T*, int64_t) {}
  template <class T>
  static void fill(T*, int64_t, T) {}
  template <class F>
  static void for_each_index(int64_t, F, int64_t = 1) {}
  template <class T>
  static Accumulator sum(const T*, int64_t) {
    return 0;
  }
  template <class T>
  static void randn(T*, int64_t, uint64_t, uint64_t) {}
};

static_assert(Backend<Meta>);

}  // namespace haze::backend
