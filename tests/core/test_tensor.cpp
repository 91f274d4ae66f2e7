#include <haze/backend/cpu.hpp>
#include <haze/core/tensor.hpp>

#include <numeric>

#include "test_support.hpp"

using haze::Shape;
using haze::backend::Cpu;
using haze::test::mentions;

TEMPLATE_TEST_CASE("Tensor factories, host round trips and copies", "[tensor]", float, double, int32_t,
                   int64_t) {
  using Tensor = haze::Tensor<TestType, Cpu>;
  std::vector<TestType> values(24);
  std::iota(values.begin(), values.end(), TestType(1));

  const Tensor t = Tensor::from_host({2, 3, 4}, values);
  CHECK(t.shape() == Shape{2, 3, 4});
  CHECK(t.numel() == 24);
  CHECK(t.rank() == 3);
  CHECK(t.dim(2) == 4);
  CHECK(t.to_host() == values);

  CHECK(Tensor::zeros({5}).to_host() == std::vector<TestType>(5, TestType(0)));
  CHECK(Tensor::full({2, 2}, TestType(7)).to_host() == std::vector<TestType>(4, TestType(7)));

  SECTION("clone is a deep copy") {
    Tensor copy = t.clone();
    copy.assign_from_host(std::vector<TestType>(24, TestType(3)));
    CHECK(t.to_host() == values);
    CHECK_FALSE(copy.shares_storage_with(t));
  }
  SECTION("to<Cpu>() is a deep copy too") {
    auto moved = t.template to<Cpu>();
    CHECK(moved.to_host() == values);
    CHECK_FALSE(moved.shares_storage_with(t));
  }
  SECTION("reshape is an alias over the same storage") {
    Tensor view = t.reshape({6, 4});
    CHECK(view.shape() == Shape{6, 4});
    CHECK(view.shares_storage_with(t));
    view.assign_from_host(std::vector<TestType>(24, TestType(9)));
    CHECK(t.to_host() == std::vector<TestType>(24, TestType(9)));
  }
  SECTION("slice is a window on the same storage that keeps all of it alive") {
    Tensor part = t.slice(5, {2, 3});
    CHECK(part.data() == t.data() + 5);
    CHECK(part.shares_allocation_with(t));
    CHECK_FALSE(part.shares_storage_with(t));  // it starts elsewhere
    part.assign_from_host(std::vector<TestType>(6, TestType(7)));
    const auto whole = t.to_host();
    for (size_t i = 0; i < whole.size(); ++i) CHECK(whole[i] == (i >= 5 && i < 11 ? TestType(7) : values[i]));
    Tensor source = t.clone();
    Tensor last = source.slice(23, {1});
    source = Tensor();  // the slice still holds the allocation
    CHECK(last.to_host() == std::vector<TestType>{values[23]});
    CHECK_FALSE(last.shares_allocation_with(t));
  }
  SECTION("a moved-from tensor is empty and says so") {
    Tensor source = t.clone();
    Tensor target = std::move(source);
    CHECK(target.to_host() == values);
    CHECK(source.empty());  // NOLINT(bugprone-use-after-move): that is the point
    CHECK(source.rank() == 0);
    CHECK_THROWS_WITH(source.to_host(), mentions("Tensor::to_host: the tensor is empty"));
  }
}

TEST_CASE("Tensor reports misuse with the shapes involved", "[tensor][errors]") {
  using Tensor = haze::Tensor<float, Cpu>;
  const std::vector<float> five(5, 1.0f);
  CHECK_THROWS_WITH(Tensor::from_host({2, 3}, five),
                    mentions("shape [2, 3] holds 6 elements but 5 values were given"));
  CHECK_THROWS_WITH(Tensor(Shape{}), mentions("rank-0"));
  const Tensor t = Tensor::zeros({2, 3});
  CHECK_THROWS_WITH(t.reshape({4, 2}), mentions("cannot view [2, 3] (6 elements) as [4, 2] (8 elements)"));
  Tensor empty;
  CHECK_THROWS_WITH(empty.clone(), mentions("Tensor::clone: the tensor is empty"));
  CHECK_THROWS_WITH(empty.reshape({1}), mentions("Tensor::reshape: the tensor is empty"));
  CHECK_THROWS_WITH(t.slice(4, {3}), mentions("Tensor::slice: [3] from element 4 does not fit in [2, 3] (6 elements)"));
  CHECK_THROWS_WITH(t.slice(-1, {2}), mentions("from element -1 does not fit"));
  CHECK_THROWS_WITH(empty.slice(0, {1}), mentions("Tensor::slice: the tensor is empty"));
  Tensor target = Tensor::zeros({3});
  CHECK_THROWS_WITH(target.assign_from_host(five), mentions("tensor [3] holds 3 elements but 5 values"));
}

TEST_CASE("Cpu memory statistics count allocations and live bytes", "[tensor][memory]") {
  auto& stats = haze::backend::memory_stats<Cpu>();
  const int64_t allocations = stats.allocations.load();
  const int64_t live = stats.live_bytes.load();
  {
    auto t = haze::Tensor<double, Cpu>::zeros({4, 8});
    CHECK(stats.allocations.load() == allocations + 1);
    CHECK(stats.live_bytes.load() == live + 4 * 8 * 8);
    auto alias = t.reshape({32});  // an alias allocates nothing
    CHECK(stats.allocations.load() == allocations + 1);
  }
  CHECK(stats.live_bytes.load() == live);
}

TEST_CASE("freed Cpu blocks are reused, so repeated shapes need no fresh memory", "[tensor][memory]") {
  auto& stats = haze::backend::memory_stats<Cpu>();
  { auto warm = haze::Tensor<float, Cpu>({1234, 7}); }
  const int64_t fresh = stats.fresh_allocations.load();
  for (int i = 0; i < 5; ++i) {
    auto t = haze::Tensor<float, Cpu>({1234, 7});
    auto same_bytes = haze::Tensor<float, Cpu>({7, 1234});  // a second live block needs one more, once
  }
  CHECK(stats.fresh_allocations.load() <= fresh + 1);
  haze::backend::Cpu::block_cache().trim();
  CHECK(haze::backend::Cpu::block_cache().cached_bytes() == 0);
}
