// One configuration of data-parallel training on the small preset, timed:
// steps of a Trainer on synthetic 32x32 data, after two warm-up steps, with
// the time spent in the communicator (the gradient sum, and whatever else
// the Trainer sends) measured apart. benchmarks/data_parallel.sh runs it
// as 2 ranks x 1 thread and as 1 rank x 2 threads, rounds alternating.
//
//   [mpirun -np N] bench_data_parallel BATCH ACCUMULATION STEPS [any]
//
// BATCH is per rank; `any` sums with MPI_Allreduce instead of in rank order.
// Rank 0 prints one line: ranks, threads, global batch, the median step and
// the median time communicating per step, in milliseconds.
#include <haze/haze.hpp>
#include <haze/nn/init.hpp>
#include <haze/nn/unet.hpp>
#include <haze/train/mpi_communicator.hpp>
#include <haze/train/trainer.hpp>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "median.hpp"

using namespace haze;

namespace {

// Forwards to another communicator and adds up the wall time of its calls.
class TimedCommunicator final : public train::Communicator {
 public:
  explicit TimedCommunicator(train::Communicator& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  bool device_memory() const override { return inner_.device_memory(); }
  void sum_in_rank_order(std::span<float> d) override { timed([&] { inner_.sum_in_rank_order(d); }); }
  void sum_in_rank_order(std::span<double> d) override { timed([&] { inner_.sum_in_rank_order(d); }); }
  void sum_any_order(std::span<float> d) override { timed([&] { inner_.sum_any_order(d); }); }
  void sum_any_order(std::span<double> d) override { timed([&] { inner_.sum_any_order(d); }); }
  void broadcast(std::span<float> d, int root) override { timed([&] { inner_.broadcast(d, root); }); }
  void broadcast(std::span<double> d, int root) override { timed([&] { inner_.broadcast(d, root); }); }
  double take_milliseconds() { return std::exchange(milliseconds_, 0.0); }

 private:
  template <class F>
  void timed(F&& f) {
    const auto start = Clock::now();
    f();
    milliseconds_ += std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  }
  train::Communicator& inner_;
  double milliseconds_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int code = 0;
  try {
    HAZE_REQUIRE(argc >= 4, "usage: [mpirun -np N] bench_data_parallel BATCH ACCUMULATION STEPS [any]");
    const int64_t batch = std::atoll(argv[1]), steps = std::atoll(argv[3]);
    const int accumulation = std::atoi(argv[2]);
    const bool any_order = argc > 4 && std::strcmp(argv[4], "any") == 0;
    train::MpiCommunicator world;
    train::SingleRank alone;
    // One rank talks to nobody: SingleRank, as haze-train-fmnist does.
    TimedCommunicator timed(world.size() > 1 ? static_cast<train::Communicator&>(world) : alone);

    train::Dataset data{{1, 32, 32}, std::vector<float>(512 * 1024), {}};
    for (size_t i = 0; i < data.values.size(); ++i) data.values[i] = float(i % 97) / 48.0f - 1.0f;
    nn::UNet<float, backend::Cpu> model(nn::UNetConfig::small());
    nn::init_parameters(model, 1);
    train::Trainer<nn::UNet<float, backend::Cpu>, predict::Epsilon> trainer(
        model, Schedule::make("linear", 1000), data,
        {.batch_size = batch, .accumulation = accumulation, .deterministic_sum = !any_order}, timed);
    std::vector<double> step_ms, comm_ms;
    for (int64_t s = 0; s < steps + 2; ++s) {
      MPI_Barrier(MPI_COMM_WORLD);
      timed.take_milliseconds();
      const auto start = Clock::now();
      trainer.step();
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      if (s < 2) continue;  // warm-up: first-touch allocations, caches
      step_ms.push_back(ms);
      comm_ms.push_back(timed.take_milliseconds());
    }
    if (world.rank() == 0)
      std::printf("ranks %d threads %d global_batch %lld step_ms %.2f comm_ms %.2f\n", world.size(),
                  omp_get_max_threads(), (long long)(batch * accumulation * world.size()), median(step_ms),
                  median(comm_ms));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_data_parallel: %s\n", e.what());
    code = 1;
  }
  MPI_Finalize();
  return code;
}
