// SPDX-License-Identifier: MIT
// The layout and the collectives of a sharded optimizer (Note [Sharded optimizer] in
// nn/parallel/data_parallel.h), seen by rank r of a pretend world of N: ranges aligned to the
// sum-of-squares chunk that cover the buffers (trailing ranks may own nothing), one
// reduce-scatter per bucket whose counts are the bucket's parts in each range, and the parameter
// all-gather launched by the next forward in forward order, each layer waiting only for its own
// buckets. Whether the sums are right is collectives_test's and zero_test's business.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "kernels/ops.h"
#include "nn/models.h"
#include "nn/parallel/data_parallel.h"
#include "runtime/context.h"

namespace dpt::nn {
namespace {

class Done final : public comm::Work {
 public:
  explicit Done(std::vector<std::string>& waits, std::string name)
      : waits_(waits), name_(std::move(name)) {}
  void wait() override { waits_.push_back(name_); }
  bool test() override { return true; }
  double start_time() const override { return 0.0; }
  double end_time() const override { return 0.0; }

 private:
  std::vector<std::string>& waits_;
  std::string name_;
};

// Rank `rank` of `size`; records the uneven collectives (bucket offsets are told apart by the
// data pointer) and the waits for them.
class RecordingWorld final : public comm::Communicator {
 public:
  RecordingWorld(int rank, int size) : rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  int local_rank() const override { return rank_; }
  int local_size() const override { return size_; }
  int node_count() const override { return 1; }
  std::string backend() const override { return "recording"; }
  std::unique_ptr<comm::Work> all_reduce_async(float*, std::int64_t, comm::ReduceOp) override {
    ADD_FAILURE() << "a sharded step all-reduced a bucket";
    return std::make_unique<Done>(waits, "all-reduce");
  }
  void all_reduce(double*, std::int64_t count, comm::ReduceOp) override {
    reduced_doubles.push_back(count);
  }
  void all_reduce(std::int64_t*, std::int64_t, comm::ReduceOp) override {}
  std::unique_ptr<comm::Work> exact_sum_async(comm::ExactSumBucket) override {
    return std::make_unique<Done>(waits, "exact sum");
  }
  void broadcast(void*, std::int64_t, int) override {}
  std::vector<std::string> all_gather(const std::string& local) override {
    return std::vector<std::string>(static_cast<std::size_t>(size_), local);
  }
  void reduce_scatter(float*, std::int64_t, comm::ReduceOp) override {}
  void barrier() override {}
  double native_all_reduce_seconds(float*, std::int64_t) override { return 0.0; }
  using Communicator::all_reduce;

  std::unique_ptr<comm::Work> reduce_scatter_async(float* data, std::vector<std::int64_t> counts,
                                                   comm::ReduceOp) override {
    reduce_scatters.push_back({data, counts});
    return std::make_unique<Done>(waits, "reduce-scatter");
  }
  std::unique_ptr<comm::Work> all_gather_async(float* data,
                                               std::vector<std::int64_t> counts) override {
    all_gathers.push_back({data, counts});
    return std::make_unique<Done>(waits, "all-gather " + std::to_string(all_gathers.size() - 1));
  }

  struct Call {
    float* data;
    std::vector<std::int64_t> counts;
  };
  std::vector<Call> reduce_scatters, all_gathers;
  std::vector<std::string> waits;
  std::vector<std::int64_t> reduced_doubles;

 private:
  int rank_, size_;
};

DataParallelOptions sharded_options() {
  DataParallelOptions o;
  o.bucket_mb = 0.1;  // cnn's 350 KB in several buckets, some straddling two ranges
  o.first_bucket_mb = 0.1;
  o.shard_optimizer = true;
  return o;
}

void forward(Sequential& model) {
  const Context ctx = Context::create(Device::cpu(), 1);
  StepInfo info;
  model.forward(ctx, Tensor::zeros({2, 1, 28, 28}), info);
}

void backward_step(Sequential& model) {
  const Context ctx = Context::create(Device::cpu(), 1);
  StepInfo info;
  const Tensor logits = model.forward(ctx, Tensor::zeros({2, 1, 28, 28}), info);
  model.backward(ctx, Tensor::full(logits.shape(), 1.0f), info);
}

TEST(ShardedOptimizer, RangesAreChunkAlignedCoverTheBuffersAndMayBeEmpty) {
  Sequential model = build_model(reference_model("cnn"), {1, 28, 28});
  const std::int64_t total = model.flat_params().numel();
  for (const int size : {1, 2, 3, 4, 7, 40}) {
    SCOPED_TRACE(size);
    RecordingWorld world(size - 1, size);
    DataParallel ddp(model, world, sharded_options());
    const std::vector<std::int64_t>& starts = ddp.shard_starts();
    ASSERT_EQ(starts.size(), static_cast<std::size_t>(size + 1));
    EXPECT_EQ(starts.front(), 0);
    EXPECT_EQ(starts.back(), total);
    for (std::size_t r = 0; r + 1 < starts.size(); ++r) {
      EXPECT_LE(starts[r], starts[r + 1]);
      if (starts[r] < total) {
        EXPECT_EQ(starts[r] % kernels::kSumSquaresChunk, 0) << r;
      }
    }
    const std::vector<std::int64_t> counts = ddp.shard_counts();
    EXPECT_EQ(std::accumulate(counts.begin(), counts.end(), std::int64_t{0}), total);
    // No range is more than one chunk longer than an even share.
    for (const std::int64_t c : counts) {
      EXPECT_LE(c, (total + size - 1) / size + kernels::kSumSquaresChunk);
    }
    EXPECT_EQ(ddp.owned_range(model.flat_params()).numel(), counts.back());
  }
  // cnn (93 K parameters, 23 chunks) on 40 ranks: the trailing ranks own nothing.
  RecordingWorld many(0, 40);
  DataParallel ddp(model, many, sharded_options());
  EXPECT_EQ(ddp.shard_counts().back(), 0);
}

TEST(ShardedOptimizer, BackwardReduceScattersEachBucketByItsPartsInTheRanges) {
  Sequential model = build_model(reference_model("cnn"), {1, 28, 28});
  RecordingWorld world(1, 3);
  DataParallel ddp(model, world, sharded_options());
  ASSERT_GE(ddp.buckets().size(), 2u);
  ddp.prepare_backward(true, 0);
  backward_step(model);
  ddp.finish();
  ASSERT_EQ(world.reduce_scatters.size(), ddp.buckets().size());
  const std::vector<std::int64_t>& starts = ddp.shard_starts();
  int straddling = 0;
  for (const RecordingWorld::Call& call : world.reduce_scatters) {
    straddling += std::count_if(call.counts.begin(), call.counts.end(),
                                [](std::int64_t c) { return c > 0; }) > 1;
  }
  EXPECT_GE(straddling, 1) << "no bucket lies in two ranges: the layout tests too little";
  for (std::size_t b = 0; b < ddp.buckets().size(); ++b) {
    const GradBucket& bucket = ddp.buckets()[b];
    const RecordingWorld::Call& call = world.reduce_scatters[b];
    EXPECT_EQ(call.data, model.flat_grads().data<float>() + bucket.offset) << b;
    ASSERT_EQ(call.counts.size(), 3u);
    for (std::size_t r = 0; r < 3; ++r) {
      const std::int64_t from = std::clamp(starts[r], bucket.offset, bucket.offset + bucket.count);
      const std::int64_t to =
          std::clamp(starts[r + 1], bucket.offset, bucket.offset + bucket.count);
      EXPECT_EQ(call.counts[r], to - from) << "bucket " << b << " rank " << r;
    }
  }
}

TEST(ShardedOptimizer, UpdatedParametersAreGatheredByTheNextForwardInForwardOrder) {
  Sequential model = build_model(reference_model("cnn"), {1, 28, 28});
  RecordingWorld world(0, 2);
  DataParallel ddp(model, world, sharded_options());
  const std::size_t buckets = ddp.buckets().size();
  ASSERT_GE(buckets, 2u);
  forward(model);
  EXPECT_TRUE(world.all_gathers.empty()) << "gathered parameters nobody updated";
  ddp.parameters_updated();
  EXPECT_TRUE(world.all_gathers.empty()) << "the gather waits for the next forward";
  forward(model);
  ASSERT_EQ(world.all_gathers.size(), buckets);
  // Forward order: the last bucket holds the first layers.
  for (std::size_t i = 0; i < buckets; ++i) {
    EXPECT_EQ(world.all_gathers[i].data,
              model.flat_params().data<float>() + ddp.buckets()[buckets - 1 - i].offset);
  }
  // Every gather was waited for during forward, the first layers' first.
  ASSERT_EQ(world.waits.size(), buckets);
  EXPECT_EQ(world.waits.front(), "all-gather 0");
  forward(model);
  EXPECT_EQ(world.all_gathers.size(), buckets) << "a second forward gathered again";
  ddp.parameters_updated();
  ddp.gather_parameters();  // evaluation, checkpoints: launch and wait without a forward
  EXPECT_EQ(world.all_gathers.size(), 2 * buckets);
  EXPECT_EQ(world.waits.size(), 2 * buckets);
  ddp.gather_parameters();
  EXPECT_EQ(world.all_gathers.size(), 2 * buckets) << "nothing was pending";
}

TEST(ShardedOptimizer, TheGradientNormAllReducesOneSumPerChunk) {
  Sequential model = build_model(reference_model("cnn"), {1, 28, 28});
  RecordingWorld world(1, 2);
  DataParallel ddp(model, world, sharded_options());
  model.flat_grads().fill(0.5f);
  const Context ctx = Context::create(Device::cpu(), 1);
  // In a pretend world the other rank's chunks stay zero: rank 1's own part only.
  const double mine = ddp.gradient_sum_squares(ctx);
  ASSERT_EQ(world.reduced_doubles.size(), 1u);
  const std::int64_t total = model.flat_grads().numel();
  EXPECT_EQ(world.reduced_doubles[0],
            (total + kernels::kSumSquaresChunk - 1) / kernels::kSumSquaresChunk);
  EXPECT_EQ(mine, 0.25 * static_cast<double>(ddp.shard_counts()[1]));
}

}  // namespace
}  // namespace dpt::nn
