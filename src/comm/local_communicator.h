// SPDX-License-Identifier: MIT
// LocalCommunicator: a world of one rank. Every collective is exact and immediate (the identity),
// so single-process runs need no MPI and compute bit-identical results to the reduction of one.
#pragma once

#include "comm/communicator.h"

namespace dpt::comm {

class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  int node_count() const override { return 1; }
  std::string backend() const override { return "local"; }

  using Communicator::all_reduce;
  std::unique_ptr<Work> all_reduce_async(float* data, std::int64_t count, ReduceOp op) override;
  std::unique_ptr<Work> all_reduce_bf16_async(BFloat16* data, std::int64_t count) override;
  void all_reduce(double* data, std::int64_t count, ReduceOp op) override;
  void all_reduce(std::int64_t* data, std::int64_t count, ReduceOp op) override;
  // Runs at once on the calling thread (the same integers a world of N would sum).
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
  void barrier() override {}
  double native_all_reduce_seconds(float*, std::int64_t) override { return 0.0; }
};

}  // namespace dpt::comm
