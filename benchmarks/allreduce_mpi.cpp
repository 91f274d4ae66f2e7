// What summing in rank order costs beside MPI's own all-reduce, on buffers
// the size of the small and cifar presets' gradients, and in a training
// step of the small preset. Run under mpirun (a build with HAZE_MPI):
//
//   mpirun -np 2 build/bench/benchmarks/bench_allreduce_mpi [rounds]
//
// Rounds alternate the two sums; rank 0 prints medians in milliseconds.
#include <haze/backend/meta.hpp>
#include <haze/haze.hpp>
#include <haze/nn/init.hpp>
#include <haze/nn/unet.hpp>
#include <haze/train/mpi_communicator.hpp>
#include <haze/train/trainer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "median.hpp"

using namespace haze;

namespace {

int64_t parameter_count(const nn::UNetConfig& config) {
  nn::UNet<float, backend::Meta> shapes(config);
  int64_t n = 0;
  for (const auto& p : nn::parameters_of(shapes)) n += p.value->numel();
  return n;
}

// Wall time of f on every rank, from a barrier to a barrier.
template <class F>
double milliseconds(F&& f) {
  MPI_Barrier(MPI_COMM_WORLD);
  const auto start = Clock::now();
  f();
  MPI_Barrier(MPI_COMM_WORLD);
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  {
    train::MpiCommunicator world;
    const int rounds = argc > 1 ? std::atoi(argv[1]) : 7;
    if (world.rank() == 0)
      std::printf("%d ranks, %d rounds alternating, median ms\n%-34s %12s %12s %8s\n", world.size(), rounds, "buffer",
                  "rank order", "MPI_Allreduce", "ratio");
    for (const auto& [name, config] : {std::pair{"small preset gradients", nn::UNetConfig::small()},
                                       std::pair{"cifar preset gradients", nn::UNetConfig::cifar()}}) {
      const int64_t n = parameter_count(config);
      std::vector<float> data(size_t(n), 1.0f / float(world.rank() + 1));
      std::vector<double> ordered, any;
      for (int r = 0; r < rounds; ++r) {
        ordered.push_back(milliseconds([&] { world.sum_in_rank_order(std::span<float>(data)); }));
        std::fill(data.begin(), data.end(), 1.0f / float(world.rank() + 1));
        any.push_back(milliseconds([&] { world.sum_any_order(std::span<float>(data)); }));
        std::fill(data.begin(), data.end(), 1.0f / float(world.rank() + 1));
      }
      if (world.rank() == 0)
        std::printf("%-22s (%5.1f MB) %12.2f %12.2f %8.2f\n", name, double(n) * 4 / 1e6, median(ordered), median(any),
                    median(ordered) / median(any));
    }
    // A training step of the small preset, batch 8 per rank, each sum.
    train::Dataset data{{1, 32, 32}, std::vector<float>(64 * 1024, 0.25f), {}};
    std::vector<double> step_ms[2];
    nn::UNet<float, backend::Cpu> model_ordered(nn::UNetConfig::small()), model_any(nn::UNetConfig::small());
    nn::init_parameters(model_ordered, 1);
    nn::init_parameters(model_any, 1);
    using Trainer = train::Trainer<nn::UNet<float, backend::Cpu>, predict::Epsilon>;
    Trainer ordered(model_ordered, Schedule::make("linear", 1000), data, {.batch_size = 8}, world);
    Trainer any(model_any, Schedule::make("linear", 1000), data, {.batch_size = 8, .deterministic_sum = false}, world);
    for (int r = 0; r < rounds; ++r) {
      step_ms[0].push_back(milliseconds([&] { ordered.step(); }));
      step_ms[1].push_back(milliseconds([&] { any.step(); }));
    }
    if (world.rank() == 0)
      std::printf("%-34s %12.1f %12.1f %8.3f\n", "small preset step, batch 8 / rank", median(step_ms[0]),
                  median(step_ms[1]), median(step_ms[0]) / median(step_ms[1]));
  }
  MPI_Finalize();
  return 0;
}
