// SPDX-License-Identifier: MIT
// Sharded evaluation with all-reduced loss and accuracy.
#include "nn/train/evaluate.h"

#include <algorithm>
#include <limits>

#include "kernels/ops.h"
#include "nn/layers/rows.h"
#include "nn/train/batch_on_device.h"
#include "nn/train/step_loss.h"
#include "runtime/exact_sum.h"
#include "runtime/io/loader.h"

namespace dpt::nn {
namespace {
// Samples per forward on each rank (no activations are kept, so larger is cheap).
constexpr std::int64_t kEvalBatch = 500;
}  // namespace

EvalResult evaluate_model(const Context& ctx, comm::Communicator& comm, Sequential& model,
                          const io::DatasetSplit& split, std::vector<float>* logits,
                          DType compute) {
  DPT_CHECK(logits == nullptr || comm.world_size() == 1,
            "evaluation: logits can be collected on one rank only, this job has ",
            comm.world_size());
  io::LoaderOptions options;
  options.global_batch = std::max<std::int64_t>(
      comm.world_size(), std::min<std::int64_t>(kEvalBatch * comm.world_size(), split.size()));
  options.shuffle = false;
  options.drop_last = false;
  options.rank = comm.rank();
  options.world_size = comm.world_size();
  io::Loader loader(split, options);
  BatchUploader uploader(ctx.device());
  StepInfo info;
  info.training = false;
  info.compute = compute;
  double loss_sum = 0.0;
  std::int64_t correct = 0, samples = 0;
  while (auto host = loader.next()) {
    if (host->labels.numel() == 0) continue;  // a last batch smaller than the world
    io::Batch batch = on_device(uploader, std::move(*host));
    batch.ready.wait_on_device();  // the batch's first use
    // One row of logits per target: [b, classes], or [b*T, V] for a language model's windows.
    const Tensor out = as_rows(model.forward(ctx, batch.inputs, info));
    const kernels::LossResult r = kernels::softmax_cross_entropy(ctx, out, batch.labels, nullptr);
    loss_sum += r.loss_sum;
    correct += r.correct;
    samples += batch.labels.numel();
    if (logits != nullptr) {
      const std::vector<float> values = out.to_vector();
      logits->insert(logits->end(), values.begin(), values.end());
    }
  }
  double sums[3] = {loss_sum, static_cast<double>(correct), static_cast<double>(samples)};
  comm.all_reduce(sums, 3, comm::ReduceOp::kSum);
  EvalResult e;
  e.samples = static_cast<std::int64_t>(sums[2]);
  if (e.samples > 0) {
    e.loss = sums[0] / sums[2];
    e.accuracy = sums[1] / sums[2];
  }
  return e;
}

}  // namespace dpt::nn

namespace dpt::nn {

// Note [Exact evaluation]
// ~~~~~~~~~~~~~~~~~~~~~~~
// A sample's logits may depend on the batch it is computed in (a GEMM or convolution can choose
// its kernel by the batch's size), and a float sum of losses on the order of its additions. So in
// exact mode the test set is cut into the same blocks of kEvalBatch samples whatever the world
// size, block b is computed whole by rank b % N, and the per-sample losses are added in fixed
// point (exact::to_fixed_loss). Every rank reads the whole split (normalising 10,000 images is
// milliseconds) and skips the blocks of other ranks.
EvalResult evaluate_model_exact(const Context& ctx, comm::Communicator& comm, Sequential& model,
                                const io::DatasetSplit& split, DType compute) {
  io::LoaderOptions options;
  options.global_batch = std::max<std::int64_t>(1, std::min<std::int64_t>(kEvalBatch, split.size()));
  options.shuffle = false;
  options.drop_last = false;
  io::Loader loader(split, options);
  BatchUploader uploader(ctx.device());
  StepLoss losses(ctx.device());
  StepInfo info;
  info.training = false;
  info.compute = compute;
  // [0] fixed-point loss sum, [1] losses without a fixed-point value, [2] correct, [3] samples
  std::int64_t sums[4] = {0, 0, 0, 0};
  for (std::int64_t block = 0; auto host = loader.next(); ++block) {
    if (block % comm.world_size() != comm.rank()) continue;
    io::Batch batch = on_device(uploader, std::move(*host));
    batch.ready.wait_on_device();
    const Tensor out = as_rows(model.forward(ctx, batch.inputs, info));
    const std::int64_t rows = batch.labels.numel();
    losses.begin_step(rows);
    kernels::softmax_cross_entropy_rows(ctx, out, batch.labels, nullptr,
                                        losses.micro_batch(0, rows));
    const LossTotals t = losses.read(batch.labels, out.dim(1));
    sums[0] += t.fixed_sum;
    sums[1] += t.unrepresented;
    sums[2] += t.correct;
    sums[3] += rows;
  }
  comm.all_reduce(sums, 4, comm::ReduceOp::kSum);
  EvalResult e;
  e.samples = sums[3];
  if (e.samples > 0) {
    const double loss_sum = sums[1] > 0 ? std::numeric_limits<double>::quiet_NaN()
                                        : exact::from_fixed_loss(sums[0]);
    e.loss = loss_sum / static_cast<double>(e.samples);
    e.accuracy = static_cast<double>(sums[2]) / static_cast<double>(e.samples);
  }
  return e;
}

}  // namespace dpt::nn
