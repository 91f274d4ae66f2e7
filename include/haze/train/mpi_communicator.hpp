#pragma once
// MpiCommunicator: data-parallel ranks as MPI processes (build with HAZE_MPI;
// launch with mpirun). The rank-order sum is a reduce-scatter and an
// all-gather written out, so that MPI chooses no order of its own:
//
//   the n values are cut into `size` chunks; rank c receives chunk c of
//   every rank (MPI_Alltoallv), adds them in rank order, and every rank then
//   gathers the summed chunks (MPI_Allgatherv).
//
// Each value is summed once, by one rank, in rank order: the result is the
// bits of train::LocalGroup's and of one rank's accumulation, and each rank
// sends and receives about 2 n values whatever the rank count.
//
// No collective waits forever: each is started non-blocking and polled, and
// a rank that waits longer than `timeout` for the others throws (naming the
// call), after which this communicator refuses further work, since MPI
// cannot cancel a collective under way. A program then ends the job with
// MPI_Abort, as haze's do on any error, which stops every rank.

#include <mpi.h>

#include <chrono>
#include <climits>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "haze/core/error.hpp"
#include "haze/train/communicator.hpp"

namespace haze::train {

class MpiCommunicator final : public Communicator {
 public:
  // The communicator to use (MPI_COMM_WORLD by default); MPI must be
  // initialized. `timeout`: the longest a collective waits for the others.
  explicit MpiCommunicator(MPI_Comm comm = MPI_COMM_WORLD,
                           std::chrono::milliseconds timeout = std::chrono::minutes(5))
      : comm_(comm) {
    set_timeout(timeout);
    int initialized = 0;
    MPI_Initialized(&initialized);
    HAZE_REQUIRE(initialized, "MpiCommunicator: call MPI_Init first");
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  }

  void set_timeout(std::chrono::milliseconds timeout) {
    HAZE_REQUIRE(timeout.count() > 0, "MpiCommunicator: the timeout must be > 0 ms, got ", timeout.count());
    timeout_ = timeout;
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void sum_in_rank_order(std::span<float> data) override { sum(data, MPI_FLOAT); }
  void sum_in_rank_order(std::span<double> data) override { sum(data, MPI_DOUBLE); }
  void sum_any_order(std::span<float> data) override { allreduce(data, MPI_FLOAT); }
  void sum_any_order(std::span<double> data) override { allreduce(data, MPI_DOUBLE); }
  void broadcast(std::span<float> data, int root) override { bcast(data, MPI_FLOAT, root); }
  void broadcast(std::span<double> data, int root) override { bcast(data, MPI_DOUBLE, root); }

 private:
  template <class T>
  void sum(std::span<T> data, MPI_Datatype type) {
    require_usable();
    if (size_ == 1) return;
    const int64_t n = int64_t(data.size());
    HAZE_REQUIRE(n <= int64_t(INT_MAX), "MpiCommunicator: ", n, " values are more than one MPI call sends (", INT_MAX,
                 ")");
    // Chunk c is [start(c), start(c + 1)).
    const auto start = [&](int c) { return int(n * c / size_); };
    const auto ranks = static_cast<size_t>(size_);
    std::vector<int> send_counts(ranks), send_at(ranks), receive_counts(ranks), receive_at(ranks);
    const int mine = start(rank_ + 1) - start(rank_);
    for (int c = 0; c < size_; ++c) {
      send_counts[size_t(c)] = start(c + 1) - start(c);
      send_at[size_t(c)] = start(c);
      receive_counts[size_t(c)] = mine;
      receive_at[size_t(c)] = c * mine;
    }
    std::vector<T>& parts = scratch<T>();  // chunk `rank_` of rank 0, 1, ...
    parts.resize(static_cast<size_t>(mine) * ranks);
    MPI_Request request;
    check(MPI_Ialltoallv(data.data(), send_counts.data(), send_at.data(), type, parts.data(), receive_counts.data(),
                         receive_at.data(), type, comm_, &request),
          "MPI_Ialltoallv");
    wait(request, "MPI_Ialltoallv");
    const detail::SumChunksInRankOrder<T> add{parts.data(), parts.data(), mine, size_};  // into rank 0's part
    for (int i = 0; i < mine; ++i) add(i);
    check(MPI_Iallgatherv(parts.data(), mine, type, data.data(), send_counts.data(), send_at.data(), type, comm_,
                          &request),
          "MPI_Iallgatherv");
    wait(request, "MPI_Iallgatherv");
  }

  template <class T>
  void allreduce(std::span<T> data, MPI_Datatype type) {
    require_usable();
    if (size_ == 1 || data.empty()) return;
    HAZE_REQUIRE(data.size() <= size_t(INT_MAX), "MpiCommunicator: ", data.size(), " values are too many for one call");
    MPI_Request request;
    check(MPI_Iallreduce(MPI_IN_PLACE, data.data(), int(data.size()), type, MPI_SUM, comm_, &request),
          "MPI_Iallreduce");
    wait(request, "MPI_Iallreduce");
  }

  template <class T>
  void bcast(std::span<T> data, MPI_Datatype type, int root) {
    require_usable();
    HAZE_REQUIRE(root >= 0 && root < size_, "MpiCommunicator::broadcast: root ", root, " outside [0, ", size_, ")");
    HAZE_REQUIRE(data.size() <= size_t(INT_MAX), "MpiCommunicator: ", data.size(), " values are too many for one call");
    if (size_ == 1) return;
    MPI_Request request;
    check(MPI_Ibcast(data.data(), int(data.size()), type, root, comm_, &request), "MPI_Ibcast");
    wait(request, "MPI_Ibcast");
  }

  // Polls until the collective completes: busily at first (as MPI_Wait
  // would), then every millisecond, until the timeout.
  void wait(MPI_Request& request, const char* call) {
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    for (;;) {
      int done = 0;
      check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), call);
      if (done) return;
      const auto waited = Clock::now() - start;
      if (waited > timeout_) {
        broken_ = std::string(call) + " timed out";
        HAZE_FAIL("MpiCommunicator: rank ", rank_, " waited ", timeout_.count(), " ms in ", call,
                  " for the other ranks (one failed, hangs, or calls other collectives)");
      }
      if (waited > std::chrono::milliseconds(100)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  void require_usable() const {
    HAZE_REQUIRE(broken_.empty(), "MpiCommunicator: rank ", rank_, ": an earlier collective (", broken_,
                 ") never finished, so no other can start");
  }

  static void check(int code, const char* call) {
    if (code == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(code, text, &length);
    HAZE_FAIL("MpiCommunicator: ", call, " failed: ", std::string(text, size_t(length)));
  }

  // Kept between calls: a fresh gradient-sized buffer every step costs page faults.
  template <class T>
  std::vector<T>& scratch() {
    if constexpr (std::is_same_v<T, float>) return scratch_float_;
    else return scratch_double_;
  }

  MPI_Comm comm_;
  std::chrono::milliseconds timeout_;
  std::string broken_;  // non-empty: a collective timed out
  int rank_ = 0, size_ = 1;
  std::vector<float> scratch_float_;
  std::vector<double> scratch_double_;
};

}  // namespace haze::train
