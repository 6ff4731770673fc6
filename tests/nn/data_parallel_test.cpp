// SPDX-License-Identifier: MIT
// DataParallel under mpirun (1, 2 and 4 ranks): N ranks with B/N samples each compute the 1-rank
// gradients of the same global batch, for every bucket layout and with accumulation; training
// keeps parameters equal to the 1-rank run and bitwise identical across ranks; all-reduces start
// during backward only when overlap is on.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>

#include "comm/local_communicator.h"
#include "kernels/ops.h"
#include "nn/models.h"
#include "nn/parallel/data_parallel.h"
#include "nn/train/trainer.h"
#include "testing/mpi_test_util.h"
#include "testing/test_util.h"

namespace dpt::nn {
namespace {

constexpr std::int64_t kGlobalBatch = 16;

Context cpu() { return Context::create(Device::cpu(), 1); }

struct Batch {
  Tensor images, labels;
};

Batch global_batch(const Shape& sample_shape) {
  Shape shape{kGlobalBatch};
  shape.insert(shape.end(), sample_shape.begin(), sample_shape.end());
  Batch b{test::random_tensor(shape, 42), Tensor::empty({kGlobalBatch}, DType::kI32)};
  for (std::int64_t i = 0; i < kGlobalBatch; ++i) b.labels.data<std::int32_t>()[i] = (i * 7) % 10;
  return b;
}

// Forward + loss + backward of `count` rows starting at `first`.
void forward_backward(const Context& ctx, Sequential& model, const Batch& batch, std::int64_t first,
                      std::int64_t count, bool accumulate) {
  StepInfo info;
  info.first_sample = first;
  info.accumulate_grads = accumulate;
  const Tensor logits = model.forward(ctx, Tensor::rows_of(batch.images, first, count), info);
  Tensor dlogits = Tensor::empty(logits.shape());
  kernels::softmax_cross_entropy(ctx, logits, Tensor::rows_of(batch.labels, first, count),
                                 &dlogits);
  model.backward(ctx, dlogits, info);
}

struct Layout {
  const char* name;
  DataParallelOptions options;
};

std::vector<Layout> layouts() {
  return {{"one bucket per parameter", {1e-9, 1e-9, true, 4, /*min_bucket_elements=*/0}},
          {"automatic", DataParallelOptions::automatic_layout()},
          {"one bucket", {1e6, 1e6, true, /*min_buckets=*/1}},
          {"default without overlap", {25.0, 1.0, false}}};
}

class DataParallelGrad : public ::testing::TestWithParam<const char*> {};

TEST_P(DataParallelGrad, NRanksEqualOneRankForEveryBucketLayoutAndWithAccumulation) {
  comm::Communicator& world = test::world();
  const int r = world.rank(), n = world.world_size();
  const Context ctx = cpu();
  const Shape sample{1, 28, 28};
  const Batch batch = global_batch(sample);

  // The 1-rank reference, computed by every rank on the whole batch without communication.
  Sequential reference = build_model(reference_model(GetParam()), sample);
  reference.init_parameters(3);
  forward_backward(ctx, reference, batch, 0, kGlobalBatch, false);
  const Tensor expected = reference.flat_grads().clone();

  const std::int64_t share = kGlobalBatch / n;
  for (const Layout& layout : layouts()) {
    for (int micro_steps : {1, 2}) {
      Sequential model = build_model(reference_model(GetParam()), sample);
      model.init_parameters(3);
      DataParallel ddp(model, world, layout.options);
      if (std::string(layout.name) == "one bucket per parameter") {
        EXPECT_EQ(ddp.buckets().size(), model.parameters().size());
      }
      if (std::string(layout.name) == "one bucket") {
        EXPECT_EQ(ddp.buckets().size(), 1u);
      }
      if (std::string(layout.name) == "automatic") {
        // Several buckets even for the 350 KB cnn (at most a quarter of the gradients each, never
        // a bias alone), so that its all-reduces overlap backward.
        EXPECT_GE(ddp.buckets().size(), 3u);
        for (const GradBucket& b : ddp.buckets()) EXPECT_GE(b.count, 4096) << GetParam();
      }
      const std::int64_t micro = share / micro_steps;
      for (int m = 0; m < micro_steps; ++m) {
        ddp.prepare_backward(/*reduce=*/m == micro_steps - 1);
        forward_backward(ctx, model, batch, r * share + m * micro, micro, m > 0);
      }
      ddp.finish();
      EXPECT_TRUE(test::all_close(model.flat_grads(), expected, 1e-5, 1e-6))
          << layout.name << ", " << micro_steps << " micro-step(s), rank " << r << " of " << n;
    }
  }
}

// Exact mode: shards of 2 samples, each backward into its own buffer, summed exactly. Every world
// size and every bucket layout gives the bits of one rank summing all eight shards with one bucket
// (chunks follow parameters, not buckets: Note [Exact sum chunks]), and those bits are the float
// sum to rounding (a wrong but consistent result would pass the first check only).
TEST_P(DataParallelGrad, ExactModeIsTheSameBitsForEveryWorldSizeAndBucketLayout) {
  comm::Communicator& world = test::world();
  const int r = world.rank(), n = world.world_size();
  const Context ctx = cpu();
  const Shape sample{1, 28, 28};
  const Batch batch = global_batch(sample);
  constexpr std::int64_t kShard = 2, kShards = kGlobalBatch / kShard;

  auto exact_grads = [&](comm::Communicator& comm, DataParallelOptions options) {
    Sequential model = build_model(reference_model(GetParam()), sample);
    model.init_parameters(3);
    const int local = static_cast<int>(kShards / comm.world_size());
    options.exact_total_shards = kShards;
    options.exact_local_shards = local;
    DataParallel ddp(model, comm, options);
    for (int s = 0; s < local; ++s) {
      ddp.prepare_backward(/*reduce=*/s == local - 1, 0, s);
      forward_backward(ctx, model, batch, (comm.rank() * local + s) * kShard, kShard, false);
    }
    ddp.finish();
    return model.flat_grads().clone();
  };
  comm::LocalCommunicator alone;
  const Tensor expected = exact_grads(alone, {1e6, 1e6, true, 1});

  Sequential reference = build_model(reference_model(GetParam()), sample);
  reference.init_parameters(3);
  forward_backward(ctx, reference, batch, 0, kGlobalBatch, false);
  EXPECT_TRUE(test::all_close(expected, reference.flat_grads(), 1e-5, 1e-6));

  for (const Layout& layout : layouts()) {
    const Tensor got = exact_grads(world, layout.options);
    EXPECT_EQ(std::memcmp(got.raw_data(), expected.raw_data(), got.size_bytes()), 0)
        << layout.name << ", rank " << r << " of " << n;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, DataParallelGrad, ::testing::Values("cnn", "mlp"));

TEST(DataParallel, BucketsAreContiguousReverseOrderRangesCoveringEveryGradient) {
  Sequential model = build_model(reference_model("mlp"), {1, 28, 28});
  DataParallel ddp(model, test::world(), {4.0, 1.0, true});
  std::int64_t end = model.flat_grads().numel();
  int next_param = static_cast<int>(model.parameters().size()) - 1;
  for (const GradBucket& b : ddp.buckets()) {
    EXPECT_EQ(b.offset + b.count, end);  // each bucket ends where the previous one began
    EXPECT_EQ(b.last_param, next_param);
    end = b.offset;
    next_param = b.first_param - 1;
  }
  EXPECT_EQ(end, 0);
  EXPECT_EQ(next_param, -1);
  // The first bucket holds the last layers and stays near 1 MiB unless one parameter is larger.
  EXPECT_LE(ddp.buckets()[0].count, (1 << 20) / 4 + 2048 * 10 + 10);
}

// A given cap governs: each bucket is at most the cap unless it is one parameter larger than
// the cap, and is closed only because the next parameter would take it past the cap. So `mlp`
// (16 MB weights) gets a different layout for 1, 25 and 100 MiB.
TEST(DataParallel, GivenBucketCapGovernsTheLayout) {
  Sequential model = build_model(reference_model("mlp"), {1, 28, 28});
  const auto& params = model.parameters();
  const std::int64_t total = model.flat_grads().numel();
  const float* base = model.flat_grads().data<float>();
  // Elements from parameter i's start to the next one's (or the end): what a bucket spans.
  auto span = [&](int i) {
    const std::int64_t end = i + 1 < static_cast<int>(params.size())
                                 ? params[static_cast<std::size_t>(i) + 1]->grad.data<float>() - base
                                 : total;
    return end - (params[static_cast<std::size_t>(i)]->grad.data<float>() - base);
  };
  std::vector<std::size_t> counts;
  for (double mb : {1.0, 25.0, 100.0}) {
    DataParallelOptions options;
    options.bucket_mb = mb;
    DataParallel ddp(model, test::world(), options);
    const auto& buckets = ddp.buckets();
    counts.push_back(buckets.size());
    for (std::size_t b = 0; b < buckets.size(); ++b) {
      const double cap_mb = b == 0 ? std::min(1.0, mb) : mb;
      const auto cap = static_cast<std::int64_t>(cap_mb * 1024 * 1024 / sizeof(float));
      const GradBucket& g = buckets[b];
      // Over the cap only as one parameter larger than it, with at most a bias (under 16 KiB)
      // that may not be a bucket of its own.
      if (g.count > cap) {
        EXPECT_LT(g.count - span(g.first_param), options.min_bucket_elements)
            << "bucket " << b << " at --bucket-mb " << mb;
      }
      if (b + 1 < buckets.size()) {  // closed because the next parameter did not fit
        EXPECT_GT(g.count + span(g.first_param - 1), cap) << "bucket " << b << " at " << mb;
      }
    }
  }
  // 1 MiB: every weight apart (with the bias before it); 25 MiB: the two 16 MiB weights apart,
  // the 6 MiB first layer with the second; 100 MiB: all but the 1 MiB first bucket together.
  EXPECT_EQ(counts, (std::vector<std::size_t>{4, 3, 2}));
  // Not given (automatic): at most a quarter of the gradients per bucket, more than at 25 MiB.
  DataParallel automatic(model, test::world(), DataParallelOptions::automatic_layout());
  EXPECT_EQ(automatic.buckets().size(), 4u);
  EXPECT_NE(describe_buckets(model, automatic.buckets()).find("layers.7.bias .. layers.5.bias (parameters 5..7)"),
            std::string::npos)
      << describe_buckets(model, automatic.buckets());
}

TEST(DataParallel, OverlapStartsAllReducesDuringBackwardAndNoOverlapDoesNot) {
  comm::Communicator& world = test::world();
  if (world.world_size() == 1) GTEST_SKIP() << "the local world reduces instantly; nothing to overlap";
  const Context ctx = cpu();
  const Shape sample{1, 28, 28};
  const Batch batch = global_batch(sample);
  for (bool overlap : {true, false}) {
    Sequential model = build_model(reference_model("mlp"), sample);
    model.init_parameters(1);
    DataParallel ddp(model, world, {1.0, 1.0, overlap});
    const std::int64_t share = kGlobalBatch / world.world_size();
    // With more ranks than cores (np4 on 2) the communication thread may not be scheduled
    // before backward ends, once in a while: overlap must show in one of a few steps on every
    // rank. Ranks agree on each attempt's outcome so that they run the same collectives.
    constexpr int kAttempts = 5;
    int started_during_backward = 0;
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
      ddp.prepare_backward(true);
      forward_backward(ctx, model, batch, world.rank() * share, share, false);
      const double backward_end = steady_seconds();
      ddp.finish();
      started_during_backward = 0;
      for (const BucketRecord& rec : ddp.records()) {
        EXPECT_LE(rec.started, rec.finished);
        started_during_backward += rec.started < backward_end;
      }
      if (!overlap) break;
      double everywhere = started_during_backward >= 1 ? 1.0 : 0.0;
      world.all_reduce(&everywhere, 1, comm::ReduceOp::kMin);
      if (everywhere == 1.0) break;
    }
    if (overlap) {
      EXPECT_GE(started_during_backward, 1)
          << "no all-reduce began before backward finished in " << kAttempts << " steps";
    } else {
      EXPECT_EQ(started_during_backward, 0);
    }
  }
}

}  // namespace
}  // namespace dpt::nn
