// Data-parallel training: N ranks (train::LocalGroup, threads of this
// process) with accumulation 1 give the bits of one rank with accumulation
// N over the same items, every parameter, moment and average alike; the
// ranks start from rank 0's parameters; a failing rank stops the others
// with an error instead of a hang.
#include "train/data_parallel_support.hpp"

using haze::test::mentions;
using namespace haze::test::parallel;

TEST_CASE("N ranks with accumulation 1 give the bits of one rank with accumulation N", "[train][parallel]") {
  const train::Dataset data = images();  // 37 items: the steps cross epochs at different places
  for (const int ranks : {2, 3}) {
    INFO(ranks << " ranks");
    const State single = one_rank(ranks, 4, data);
    const std::vector<State> parallel =
        on_local_ranks(ranks, [&](train::Communicator& rank) { return run_rank(rank, 4, data); });
    for (const State& s : parallel) require_same(s, single);
  }
}

TEST_CASE("LocalGroup: the rank-order sum, broadcast, and no hang when a rank fails", "[train][parallel]") {
  train::LocalGroup group(3, std::chrono::milliseconds(2000));
  std::vector<std::vector<float>> data = {{1e8f, 1, 2}, {-1e8f, 3, 4}, {1, 5, 6}};
  std::vector<std::vector<double>> root = {{7}, {0}, {0}};
  std::vector<std::thread> threads;
  for (int r = 0; r < 3; ++r)
    threads.emplace_back([&, r] {
      group.rank(r).sum_in_rank_order(std::span<float>(data[size_t(r)]));
      group.rank(r).broadcast(std::span<double>(root[size_t(r)]), 0);
    });
  for (auto& t : threads) t.join();
  // (1e8 + -1e8) + 1 = 1 in float, where 1e8 + (-1e8 + 1) would give 0: the order is the ranks'.
  for (const auto& d : data) CHECK(d == std::vector<float>{1, 9, 12});
  for (const auto& v : root) CHECK(v == std::vector<double>{7});

  // A rank that fails before a collective: the others are told, not left waiting.
  train::LocalGroup failing(2, std::chrono::milliseconds(60000));
  std::string error;
  std::thread waiting([&] {
    try {
      std::vector<float> v(4);
      failing.rank(0).sum_in_rank_order(std::span<float>(v));
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  failing.abandon(1, "could not read its data");
  waiting.join();
  CHECK_THAT(error, mentions("LocalGroup: rank 0 at a collective: rank 1 failed: could not read its data"));

  // A rank that never comes: a timeout, not a hang.
  train::LocalGroup lonely(2, std::chrono::milliseconds(50));
  std::vector<double> v(2);
  CHECK_THROWS_WITH(lonely.rank(0).sum_in_rank_order(std::span<double>(v)),
                    mentions("rank 0 waited 50 ms at a collective for the other ranks"));

  // Collectives that do not match are refused.
  train::LocalGroup mismatched(2, std::chrono::milliseconds(5000));
  std::string errors[2];
  std::thread a([&] {
    std::vector<float> x(3);
    try {
      mismatched.rank(0).sum_in_rank_order(std::span<float>(x));
    } catch (const std::exception& e) {
      errors[0] = e.what();
    }
  });
  std::vector<float> y(5);
  try {
    mismatched.rank(1).sum_in_rank_order(std::span<float>(y));
  } catch (const std::exception& e) {
    errors[1] = e.what();
  }
  a.join();
  CHECK_THAT(errors[1], mentions("(the ranks must call the same collectives in the same order)"));
}
