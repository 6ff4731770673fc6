// SPDX-License-Identifier: MIT
// `dpt-bench exact-precision` (exact_precision.h): the shard gradients come from the code path of
// training in exact mode (thread-invariant kernels, each shard's forward and backward on its own
// input buffer, DataParallel with one gradient buffer per shard), so the exact sum is the one
// training computes, chunk rule included.
#include "exact_precision.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <span>

#include "comm/local_communicator.h"
#include "kernels/ops.h"
#include "nn/models.h"
#include "nn/parallel/data_parallel.h"
#include "nn/train/checkpoint.h"
#include "runtime/check.h"
#include "runtime/context.h"
#include "runtime/exact_sum.h"
#include "runtime/io/checkpoint_file.h"
#include "runtime/io/dataset.h"
#include "runtime/io/loader.h"

namespace dpt::bench {
namespace {

// Rows [first, first + count) of a batch tensor, sharing its storage.
Tensor rows(const Tensor& t, std::int64_t first, std::int64_t count) {
  Shape shape = t.shape();
  const std::int64_t row_numel = t.numel() / shape[0];
  shape[0] = count;
  return Tensor::view_of(t, first * row_numel, shape);
}

// The model to measure and where in training its gradients are taken.
struct Subject {
  nn::Sequential model;
  std::string name;
  std::uint64_t seed = 0;
  std::int64_t step = 0;
  bool augment_flip = false;
};

Subject make_subject(const ExactPrecisionOptions& o, const Shape& sample_shape) {
  Subject s;
  if (o.checkpoint.empty()) {
    s.model = nn::build_model(nn::reference_model(o.model), sample_shape);
    s.model.init_parameters(o.seed);
    s.name = o.model;
    s.seed = o.seed;
    return s;
  }
  const io::CheckpointState state = io::read_model_file(o.checkpoint);
  const nn::TrainConfig config = nn::config_of_checkpoint(state, o.checkpoint);
  s.model = nn::build_model(nn::layers_of(config), sample_shape);
  nn::restore_checkpoint(state, o.checkpoint, s.model, /*optimizer=*/nullptr);
  s.name = config.model;
  s.seed = config.seed;
  s.step = state.step;
  s.augment_flip = config.augment == "flip";
  return s;
}

// The global batch of step `step` of a run with this batch size and seed (rank 0 of 1 holds all).
io::Batch batch_at(const io::DatasetSplit& data, const ExactPrecisionOptions& o, const Subject& s) {
  io::LoaderOptions lo;
  lo.global_batch = o.batch;
  lo.seed = s.seed;
  lo.augment_flip = s.augment_flip;
  lo.prefetch_depth = 1;
  const std::int64_t steps_per_epoch = data.size() / o.batch;
  lo.first_epoch = s.step / steps_per_epoch;
  lo.first_step_in_epoch = s.step % steps_per_epoch;
  io::Loader loader(data, lo);
  std::optional<io::Batch> batch = loader.next();
  DPT_CHECK(batch.has_value(), "exact-precision: no batch at step ", s.step, " of ", data.identity());
  return std::move(*batch);
}

// Shards [lo, hi) of element i added pairwise in float: the halves first, then their sum.
float pairwise(const std::vector<const float*>& shards, std::size_t lo, std::size_t hi,
               std::int64_t i) {
  if (hi - lo == 1) return shards[lo][i];
  const std::size_t mid = lo + (hi - lo) / 2;
  return pairwise(shards, lo, mid, i) + pairwise(shards, mid, hi, i);
}

struct Errors {
  double normwise = 0.0;        // the largest over parameters of max|x - ref| / max|ref|
  std::string worst;            // its parameter
  std::vector<double> relative;  // |x - ref| / |ref| of every element with ref != 0
  std::int64_t rounded = 0;     // elements equal to float(ref)
  std::int64_t elements = 0;
};

// The q-quantile (nearest rank) of `values` (reordered).
double quantile(std::vector<double>& values, double q) {
  if (values.empty()) return 0.0;
  const auto k = static_cast<std::size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
  return values[k];
}

// One shard size: shard gradients and the exact sum from DataParallel, then the float sums and
// the errors of all three against the float64 sum.
void measure(const Context& ctx, Subject& s, const io::Batch& batch, std::int64_t shard_size,
             std::int64_t batch_size) {
  const std::int64_t shards = batch_size / shard_size;
  nn::Sequential& model = s.model;
  comm::LocalCommunicator comm;
  nn::DataParallelOptions dp_options = nn::DataParallelOptions::automatic_layout();
  dp_options.exact_total_shards = shards;
  dp_options.exact_local_shards = static_cast<int>(shards);
  // The sums start in finish(), after the last shard's gradient has been copied (with overlap they
  // would overwrite it, in the model's own buffer, during its backward).
  dp_options.overlap = false;
  nn::DataParallel dp(model, comm, dp_options);

  std::vector<Tensor> shard_grads;  // each shard's own buffer (DataParallel's, shared)
  std::vector<double> losses(static_cast<std::size_t>(shard_size));
  std::vector<std::int32_t> hits(static_cast<std::size_t>(shard_size));
  for (std::int64_t sh = 0; sh < shards; ++sh) {
    nn::StepInfo info;
    info.training = true;
    info.seed = s.seed;
    info.step = static_cast<std::uint32_t>(s.step);
    info.first_sample = batch.first_position + sh * shard_size;
    info.accumulate_grads = false;  // exact mode: every shard writes a buffer of its own
    // As training in exact mode: each shard's input in a fresh (aligned) buffer.
    const Tensor input = rows(batch.inputs, sh * shard_size, shard_size).clone();
    const Tensor logits = model.forward(ctx, input, info);
    Tensor dlogits = Tensor::empty(logits.shape(), DType::kF32, logits.device());
    kernels::softmax_cross_entropy_rows(ctx, logits, rows(batch.labels, sh * shard_size, shard_size),
                                        &dlogits, kernels::LossRows{losses.data(), hits.data()});
    dp.prepare_backward(/*reduce=*/sh + 1 == shards, s.step, static_cast<int>(sh));
    model.backward(ctx, dlogits, info);
    // The last shard's buffer is the model's own, which receives the sum: keep a copy.
    shard_grads.push_back(sh + 1 == shards ? model.flat_grads().clone() : model.flat_grads());
  }
  dp.finish();
  dp.complete();
  const float* exact = model.flat_grads().data<float>();
  std::vector<const float*> g;
  for (const Tensor& t : shard_grads) g.push_back(t.data<float>());
  DPT_CHECK(exact != g.back(), "exact-precision: the exact sum overwrote the last shard's copy");

  constexpr int kSums = 3;
  const char* const names[kSums] = {"float, shard order", "float, pairwise tree",
                                    "exact (fixed point)"};
  Errors errors[kSums];
  const float* params_base = model.flat_params().data<float>();
  for (const nn::Parameter* p : model.parameters()) {
    const std::int64_t offset = p->value.data<float>() - params_base;  // same in both flat buffers
    const std::int64_t n = p->value.numel();
    double max_ref = 0.0, max_diff[kSums] = {};
    for (std::int64_t i = offset; i < offset + n; ++i) {
      double ref = 0.0;
      float in_order = 0.0f;
      for (const float* shard : g) {
        ref += shard[i];
        in_order += shard[i];
      }
      const float sums[kSums] = {in_order, pairwise(g, 0, g.size(), i), exact[i]};
      max_ref = std::max(max_ref, std::abs(ref));
      for (int k = 0; k < kSums; ++k) {
        const double diff = std::abs(static_cast<double>(sums[k]) - ref);
        max_diff[k] = std::max(max_diff[k], diff);
        if (ref != 0.0) errors[k].relative.push_back(diff / std::abs(ref));
        errors[k].rounded += sums[k] == static_cast<float>(ref) ? 1 : 0;
        ++errors[k].elements;
      }
    }
    for (int k = 0; k < kSums; ++k) {
      const double normwise = max_ref > 0.0 ? max_diff[k] / max_ref
                              : max_diff[k] > 0.0 ? std::numeric_limits<double>::infinity()
                                                  : 0.0;
      if (errors[k].worst.empty() || normwise > errors[k].normwise) {
        errors[k].normwise = normwise;
        errors[k].worst = p->name;
      }
    }
  }
  for (int k = 0; k < kSums; ++k) {
    Errors& e = errors[k];
    const double median = quantile(e.relative, 0.5);
    const double p99 = quantile(e.relative, 0.99);
    std::printf("| %s | %lld | %lld x %lld | %s | %.3g (%s) | %.3g | %.3g | %.2f%% |\n",
                s.name.c_str(), static_cast<long long>(s.step), static_cast<long long>(shards),
                static_cast<long long>(shard_size), names[k], e.normwise, e.worst.c_str(), median,
                p99, 100.0 * static_cast<double>(e.rounded) / static_cast<double>(e.elements));
  }
  std::fflush(stdout);
}

}  // namespace

int run_exact_precision(const ExactPrecisionOptions& o) {
  DPT_CHECK(o.batch >= 1 && !o.shard_sizes.empty(),
            "dpt-bench exact-precision: need --batch >= 1 and at least one --shard-size");
  for (const std::int64_t m : o.shard_sizes) {
    DPT_CHECK(m >= 1 && o.batch % m == 0 && o.batch / m <= exact::kMaxShards,
              "dpt-bench exact-precision: --shard-size ", m, " must divide --batch ", o.batch,
              " (at most ", exact::kMaxShards, " shards)");
  }
  Context ctx = Context::create(Device::cpu(), o.threads);
  ctx.set_thread_invariant(true);  // the kernels of exact training (train --exact)
  const io::DatasetSplit data = io::DatasetSplit::load(o.data, "train");
  DPT_CHECK(data.size() >= o.batch, "dpt-bench exact-precision: ", data.identity(), " has ",
            data.size(), " samples, fewer than --batch ", o.batch);
  Subject subject = make_subject(o, {data.channels(), data.height(), data.width()});
  const io::Batch batch = batch_at(data, o, subject);

  std::printf("# dpt-bench exact-precision: %s, %s, gradients of the global batch of %lld at step "
              "%lld, %lld parameters, %d thread(s)\n",
              subject.name.c_str(), o.checkpoint.empty() ? "initial parameters" : o.checkpoint.c_str(),
              static_cast<long long>(o.batch), static_cast<long long>(subject.step),
              static_cast<long long>(subject.model.num_parameters()), ctx.threads());
  std::printf("# errors against the float64 sum of the shard gradients; normwise: max|x - ref| / "
              "max|ref| of the worst parameter; elementwise: |x - ref| / |ref| over elements with "
              "ref != 0\n");
  std::printf("| model | step | shards x size | sum | normwise, worst (parameter) | elementwise "
              "median | elementwise p99 | correctly rounded |\n");
  std::printf("|---|---:|---:|---|---|---:|---:|---:|\n");
  for (const std::int64_t m : o.shard_sizes) measure(ctx, subject, batch, m, o.batch);
  return 0;
}

}  // namespace dpt::bench
