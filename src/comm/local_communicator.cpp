// SPDX-License-Identifier: MIT
// The world of one: arguments are validated exactly as the MPI backend validates them (so a bad
// call fails in single-rank tests too), then every collective is the identity.
#include "comm/local_communicator.h"

#include <algorithm>

#include "comm/work_clock.h"
#include "runtime/check.h"
#include "runtime/exact_sum.h"

namespace dpt::comm {
namespace {

// A collective that finished before its Work was handed out.
class CompletedWork final : public Work {
 public:
  CompletedWork() : start_(detail::steady_seconds()), end_(detail::steady_seconds()) {}
  void wait() override {}
  bool test() override { return true; }
  double start_time() const override { return start_; }
  double end_time() const override { return end_; }

 private:
  double start_;
  double end_;
};

void check_buffer(const char* op, const void* data, std::int64_t count) {
  DPT_CHECK(count >= 0, op, ": count ", count, " is negative");
  DPT_CHECK(data != nullptr || count == 0, op, ": null buffer for ", count, " elements");
}

void check_blocks(const char* op, const void* data, const std::vector<std::int64_t>& counts,
                  int root) {
  uneven_block_starts(op, counts, 1);
  DPT_CHECK(root == 0, op, ": root ", root, " is not a rank of a world of 1");
  check_buffer(op, data, counts[0]);
}

}  // namespace

std::unique_ptr<Work> LocalCommunicator::reduce_scatter_async(float* data,
                                                              std::vector<std::int64_t> counts,
                                                              ReduceOp /*op*/) {
  check_blocks("reduce_scatter_async", data, counts, 0);
  return std::make_unique<CompletedWork>();
}

std::unique_ptr<Work> LocalCommunicator::all_gather_async(float* data,
                                                          std::vector<std::int64_t> counts) {
  check_blocks("all_gather_async", data, counts, 0);
  return std::make_unique<CompletedWork>();
}

void LocalCommunicator::gather(const float* local, float* all,
                               const std::vector<std::int64_t>& counts, int root) {
  check_blocks("gather", local, counts, root);
  check_buffer("gather", all, counts[0]);
  std::copy(local, local + counts[0], all);
}

void LocalCommunicator::scatter(const float* all, float* local,
                                const std::vector<std::int64_t>& counts, int root) {
  check_blocks("scatter", all, counts, root);
  check_buffer("scatter", local, counts[0]);
  std::copy(all, all + counts[0], local);
}

std::unique_ptr<Work> LocalCommunicator::all_reduce_async(float* data, std::int64_t count,
                                                          ReduceOp /*op*/) {
  check_buffer("all_reduce", data, count);
  return std::make_unique<CompletedWork>();
}

std::unique_ptr<Work> LocalCommunicator::all_reduce_bf16_async(BFloat16* data, std::int64_t count) {
  check_buffer("all_reduce_bf16", data, count);
  return std::make_unique<CompletedWork>();
}

void LocalCommunicator::all_reduce(double* data, std::int64_t count, ReduceOp /*op*/) {
  check_buffer("all_reduce", data, count);
}

void LocalCommunicator::all_reduce(std::int64_t* data, std::int64_t count, ReduceOp /*op*/) {
  check_buffer("all_reduce", data, count);
}

std::unique_ptr<Work> LocalCommunicator::exact_sum_async(ExactSumBucket bucket) {
  DPT_CHECK(bucket.owned_counts.empty() ||
                (bucket.owned_counts.size() == 1 && bucket.owned_counts[0] == bucket.count),
            "exact_sum: a world of 1 owns the whole bucket, got owned counts for ",
            bucket.owned_counts.size(), " rank(s)");
  exact::check_chunks("exact_sum", bucket.count, bucket.chunk_starts, bucket.total_shards,
                      static_cast<std::int64_t>(bucket.shards.size()));
  check_buffer("exact_sum", bucket.out, bucket.count);
  exact::sum_alone(bucket.shards, bucket.count, bucket.chunk_starts, bucket.total_shards,
                   bucket.out);
  return std::make_unique<CompletedWork>();
}

void LocalCommunicator::broadcast(void* data, std::int64_t count_bytes, int root) {
  check_buffer("broadcast", data, count_bytes);
  DPT_CHECK(root == 0, "broadcast: root ", root, " is not a rank of a world of 1");
}

std::vector<std::string> LocalCommunicator::all_gather(const std::string& local) { return {local}; }

void LocalCommunicator::reduce_scatter(float* data, std::int64_t block_count, ReduceOp /*op*/) {
  check_buffer("reduce_scatter", data, block_count);
}

}  // namespace dpt::comm
