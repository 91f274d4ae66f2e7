#pragma once
// LocalGroup: `size` ranks of data-parallel training as threads of one
// process, each thread holding group.rank(r). The collectives meet at a
// barrier; each rank then reads every rank's posted buffer, so the rank-order
// sum is computed the same way (and to the same bits) on each.
//
// No collective hangs: a rank that waits longer than `timeout` for the others
// throws, and a rank that fails calls abandon(), which makes every rank
// waiting now or later throw at once, naming it.

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "haze/core/error.hpp"
#include "haze/train/communicator.hpp"

namespace haze::train {

class LocalGroup {
 public:
  explicit LocalGroup(int size, std::chrono::milliseconds timeout = std::chrono::seconds(120))
      : shared_(std::make_shared<Shared>()) {
    HAZE_REQUIRE(size >= 1, "LocalGroup: size must be >= 1, got ", size);
    shared_->size = size;
    shared_->timeout = timeout;
    shared_->posted.resize(size_t(size));
    for (int r = 0; r < size; ++r) members_.push_back(std::make_unique<Member>(shared_, r));
  }

  int size() const { return shared_->size; }
  Communicator& rank(int r) { return *members_.at(size_t(r)); }

  // Rank r has failed: every collective from now on throws.
  void abandon(int r, const std::string& why) {
    const std::lock_guard lock(shared_->mutex);
    if (shared_->abandoned.empty()) shared_->abandoned = "rank " + std::to_string(r) + " failed: " + why;
    shared_->wake.notify_all();
  }

 private:
  struct Posted {
    void* data = nullptr;
    int64_t n = 0;
    int kind = 0;  // sizeof the element, so that a float and a double collective do not meet
  };
  struct Shared {
    std::mutex mutex;
    std::condition_variable wake;
    int size = 1;
    std::chrono::milliseconds timeout{};
    int arrived = 0;
    uint64_t generation = 0;
    std::vector<Posted> posted;
    std::string abandoned;  // non-empty: why every collective now fails
  };

  class Member final : public Communicator {
   public:
    Member(std::shared_ptr<Shared> shared, int rank) : shared_(std::move(shared)), rank_(rank) {}
    int rank() const override { return rank_; }
    int size() const override { return shared_->size; }
    void sum_in_rank_order(std::span<float> data) override { sum(data); }
    void sum_in_rank_order(std::span<double> data) override { sum(data); }
    void broadcast(std::span<float> data, int root) override { copy_from(data, root); }
    void broadcast(std::span<double> data, int root) override { copy_from(data, root); }

   private:
    template <class T>
    void sum(std::span<T> data) {
      post(data);
      std::vector<T> total(data.size());
      for (int r = 0; r < shared_->size; ++r) {
        const T* d = static_cast<const T*>(shared_->posted[size_t(r)].data);
        if (r == 0)
          std::copy(d, d + data.size(), total.begin());
        else
          for (size_t i = 0; i < data.size(); ++i) total[i] = total[i] + d[i];
      }
      barrier("sum_in_rank_order");  // every rank has read every buffer
      std::copy(total.begin(), total.end(), data.begin());
    }

    template <class T>
    void copy_from(std::span<T> data, int root) {
      HAZE_REQUIRE(root >= 0 && root < shared_->size, "LocalGroup::broadcast: root ", root, " outside [0, ",
                   shared_->size, ")");
      post(data);
      std::vector<T> copy;
      if (rank_ != root) {
        const T* d = static_cast<const T*>(shared_->posted[size_t(root)].data);
        copy.assign(d, d + data.size());
      }
      barrier("broadcast");
      if (rank_ != root) std::copy(copy.begin(), copy.end(), data.begin());
    }

    // Posts data and waits for every rank; checks that all posted alike.
    template <class T>
    void post(std::span<T> data) {
      {
        const std::lock_guard lock(shared_->mutex);
        shared_->posted[size_t(rank_)] = {data.data(), int64_t(data.size()), int(sizeof(T))};
      }
      barrier("a collective");
      for (int r = 0; r < shared_->size; ++r) {
        const Posted& p = shared_->posted[size_t(r)];
        HAZE_REQUIRE(p.n == int64_t(data.size()) && p.kind == int(sizeof(T)), "LocalGroup: rank ", rank_, " passed ",
                     data.size(), " values of ", sizeof(T), " bytes but rank ", r, " passed ", p.n, " of ", p.kind,
                     " (the ranks must call the same collectives in the same order)");
      }
    }

    void barrier(const char* what) {
      std::unique_lock lock(shared_->mutex);
      HAZE_REQUIRE(shared_->abandoned.empty(), "LocalGroup: rank ", rank_, " at ", what, ": ", shared_->abandoned);
      const uint64_t generation = shared_->generation;
      if (++shared_->arrived == shared_->size) {
        shared_->arrived = 0;
        ++shared_->generation;
        shared_->wake.notify_all();
        return;
      }
      const bool met = shared_->wake.wait_for(lock, shared_->timeout, [&] {
        return shared_->generation != generation || !shared_->abandoned.empty();
      });
      HAZE_REQUIRE(shared_->abandoned.empty(), "LocalGroup: rank ", rank_, " at ", what, ": ", shared_->abandoned);
      HAZE_REQUIRE(met, "LocalGroup: rank ", rank_, " waited ", shared_->timeout.count(), " ms at ", what,
                   " for the other ranks (one failed, or they call other collectives)");
    }

    std::shared_ptr<Shared> shared_;
    int rank_;
  };

  std::shared_ptr<Shared> shared_;
  std::vector<std::unique_ptr<Member>> members_;
};

}  // namespace haze::train
