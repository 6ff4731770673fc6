// SPDX-License-Identifier: MIT
// Sharded evaluation with all-reduced loss and accuracy.
#include "nn/train/evaluate.h"

#include <algorithm>

#include "kernels/ops.h"
#include "nn/train/batch_on_device.h"
#include "runtime/io/loader.h"

namespace dpt::nn {
namespace {
// Samples per forward on each rank (no activations are kept, so larger is cheap).
constexpr std::int64_t kEvalBatch = 500;
}  // namespace

EvalResult evaluate_model(const Context& ctx, comm::Communicator& comm, Sequential& model,
                          const io::DatasetSplit& split, std::vector<float>* logits) {
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
  double loss_sum = 0.0;
  std::int64_t correct = 0, samples = 0;
  while (auto host = loader.next()) {
    if (host->labels.numel() == 0) continue;  // a last batch smaller than the world
    io::Batch batch = on_device(uploader, std::move(*host));
    batch.ready.wait_on_device();  // the batch's first use
    const Tensor out = model.forward(ctx, batch.images, info);
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
