#pragma once
// randn: standard normal samples from a Generator. Element i of the tensor
// comes from Philox block gen.offset + i / 4, lane i % 4, so the numbers
// depend only on (seed, offset, i): the same on every backend and thread
// count. The generator then advances past the blocks used.

#include "haze/core/generator.hpp"
#include "haze/core/tensor.hpp"

namespace haze {

template <Real T, Backend B>
void randn(Tensor<T, B>& x, Generator& gen) {
  x.require_nonempty("randn");
  B::randn(x.data(), x.numel(), gen.seed, gen.offset);
  gen.offset += static_cast<uint64_t>(philox::blocks_for(x.numel()));
}

}  // namespace haze
