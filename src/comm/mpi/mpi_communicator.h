// SPDX-License-Identifier: MIT
// MpiCommunicator: collectives on host buffers over a duplicate of MPI_COMM_WORLD, executed by a
// communication thread of its own so that compute goes on while a gradient bucket is reduced.
#pragma once

#include <mpi.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "comm/communicator.h"
#include "comm/flight_recorder.h"
#include "comm/mpi/mpi_check.h"
#include "comm/mpi/watchdog.h"

namespace dpt::comm::mpi {

// Note [One MPI thread]
// ~~~~~~~~~~~~~~~~~~~~~
// After construction every MPI call of a communicator runs on its thread, in the order the
// collectives were issued (a FIFO queue). Blocking collectives are queued too and waited for.
// So MPI is never entered by two threads at once (MPI_THREAD_SERIALIZED suffices), and the order
// of collectives on the wire is the issue order on every rank, which MPI matching relies on.
class MpiCommunicator final : public Communicator {
 public:
  // Collective over MPI_COMM_WORLD. MPI must be initialised with MPI_THREAD_SERIALIZED or better.
  // One MPI call moves at most INT_MAX elements (its count is an int); the environment variable
  // DPT_COMM_MAX_CHUNK_COUNT lowers that cap so tests exercise the splitting with small buffers.
  MpiCommunicator();
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;
  // Runs what is queued, then joins the thread; never throws.
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  int node_count() const override { return node_count_; }
  std::string backend() const override { return "mpi"; }

  using Communicator::all_reduce;
  std::unique_ptr<Work> all_reduce_async(float* data, std::int64_t count, ReduceOp op) override;
  // MPI has no bfloat16: 2-byte elements summed by a user reduction (Note [bf16 all-reduce]).
  std::unique_ptr<Work> all_reduce_bf16_async(BFloat16* data, std::int64_t count) override;
  void all_reduce(double* data, std::int64_t count, ReduceOp op) override;
  void all_reduce(std::int64_t* data, std::int64_t count, ReduceOp op) override;
  // On the communication thread: a MAX all-reduce of the chunk codes, an int64 reduce-scatter of
  // the quantised sums (the ring of Note [Ring reduce-scatter]) and a float all-gather of the
  // results (1.5x the bytes of a float all-reduce); with owned_counts, no all-gather.
  std::unique_ptr<Work> exact_sum_async(ExactSumBucket bucket) override;
  void broadcast(void* data, std::int64_t count_bytes, int root) override;
  std::vector<std::string> all_gather(const std::string& local) override;
  void reduce_scatter(float* data, std::int64_t block_count, ReduceOp op) override;
  std::unique_ptr<Work> reduce_scatter_async(float* data, std::vector<std::int64_t> counts,
                                             ReduceOp op) override;
  std::unique_ptr<Work> all_gather_async(float* data, std::vector<std::int64_t> counts) override;
  void gather(const float* local, float* all, const std::vector<std::int64_t>& counts,
              int root) override;
  void scatter(const float* all, float* local, const std::vector<std::int64_t>& counts,
               int root) override;
  void barrier() override;
  double native_all_reduce_seconds(float* data, std::int64_t count) override;
  void set_check_collectives(bool on) override { check_collectives_.store(on); }
  std::string flight_record(std::size_t count) const override { return recorder_.dump(count); }

  struct WorkState;

 protected:
  void apply_collective_timeout(double seconds) override { watchdog_->set_timeout(seconds); }

 private:
  struct Job {
    std::function<void()> run;
    std::shared_ptr<WorkState> state;
    // What it is, for the flight record and --check-collectives.
    std::int64_t seq = 0;
    CollectiveKind kind = CollectiveKind::kAllReduce;
    std::int64_t count = 0;
    int element_bytes = 0;
    CollectiveLabel label;
  };

  std::shared_ptr<WorkState> enqueue(CollectiveKind kind, std::int64_t count, int element_bytes,
                                     std::function<void()> run);
  // enqueue + wait: the caller's stack (captured by reference) outlives the job.
  void run_blocking(CollectiveKind kind, std::int64_t count, int element_bytes,
                    std::function<void()> run);
  void thread_main() noexcept;
  // --check-collectives: all-gathers every rank's (sequence, kind, size, label) of `job` and
  // throws naming both sides when they differ.
  void check_fingerprint(const Job& job) const;

  // MPI helpers; called on the communication thread only.
  // Returns once every rank has reached this point, asleep between polls (Note [Waiting for
  // peers asleep]).
  void wait_for_peers_asleep();
  void all_reduce_chunked(void* data, std::int64_t count, MPI_Datatype type,
                          std::size_t element_bytes, MPI_Op op) const;
  void broadcast_chunked(void* data, std::int64_t count_bytes, int root) const;
  void exact_sum(const ExactSumBucket& bucket);
  // In place over blocks [starts[r], starts[r + 1]): Note [Ring reduce-scatter].
  void ring_reduce_scatter(void* data, const std::vector<std::int64_t>& starts, MPI_Datatype type,
                           std::size_t element_bytes, MPI_Op op);
  // Calls `piece` for consecutive windows [begin, end) of at most max_chunk_count_ elements
  // covering the blocks, with each rank's share of the window (counts and displacements relative
  // to begin: MPI's ints) and this rank's share's start relative to its block (0 when the window
  // holds none of this rank's block).
  void for_each_window(const std::vector<std::int64_t>& starts,
                       const std::function<void(std::int64_t begin, const std::vector<int>& counts,
                                                const std::vector<int>& displacements,
                                                std::int64_t mine_in_block)>& piece) const;

  UniqueComm comm_;
  UniqueOp bf16_sum_;  // Note [bf16 all-reduce]
  FlightRecorder recorder_;
  std::unique_ptr<Watchdog> watchdog_;
  std::atomic<bool> check_collectives_{false};
  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
  int node_count_ = 1;
  std::int64_t max_chunk_count_;
  // exact_sum scratch, reused; touched by the communication thread only.
  std::vector<std::int32_t> codes_;
  std::vector<std::int64_t> sums_;
  std::vector<char> scratch_;  // ring_reduce_scatter's receive buffer

  // Guards queue_ and stopping_; queue_cv_ wakes the thread for a new job or for shutdown.
  std::mutex queue_mutex_;
  std::condition_variable queue_cv_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::thread thread_;  // last: started once everything it reads exists
};

}  // namespace dpt::comm::mpi
