// Resuming data-parallel training (train::LocalGroup, ranks as threads):
// each rank reads a checkpoint of its own, rank 0 the newest and the others
// an older one, as ranks on machines without a shared disk might; all
// continue from rank 0's state, to the bits of one rank with accumulation.
#include "train/data_parallel_resume.hpp"

#include "io/io_test_support.hpp"

using haze::test::TempDir;
using namespace haze::test::parallel;

TEST_CASE("a resume on N ranks continues from rank 0's checkpoint whatever the others read",
          "[train][parallel][checkpoint]") {
  const train::Dataset data = images();
  const TempDir dir;
  for (const int ranks : {2, 3}) {
    INFO(ranks << " ranks");
    save_one_rank(ranks, 2, data, dir / "newest.safetensors");
    save_one_rank(ranks, 1, data, dir / "older.safetensors");
    const std::vector<State> resumed = on_local_ranks(ranks, [&](train::Communicator& rank) {
      return resume_rank(rank, rank.rank() == 0 ? dir / "newest.safetensors" : dir / "older.safetensors", 2, data);
    });
    const State single = one_rank_tail(ranks, 4, 2, data);
    for (const State& s : resumed) require_same(s, single);
  }
}

TEST_CASE("ranks whose data differ in size are refused by name", "[train][parallel][errors]") {
  const train::Dataset data = images();
  train::Dataset fewer = data;
  fewer.values.resize(36 * 256);
  fewer.labels.resize(36);
  train::LocalGroup group(2, std::chrono::milliseconds(20000));
  std::string errors[2];
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&, r] {
      try {
        UNet model(config());
        Trainer trainer(model, schedule(), r == 0 ? data : fewer, base, group.rank(r));
      } catch (const std::exception& e) {
        errors[size_t(r)] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  CHECK(errors[0].empty());
  CHECK_THAT(errors[1], haze::test::mentions("rank 1 has 36 training items but rank 0 has 37"));
}
