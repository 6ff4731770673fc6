// SPDX-License-Identifier: MIT
// Softmax cross-entropy: one thread per row calling softmax_xent_row (elementwise_math.h), the
// per-row losses and hit flags copied back and summed on the host in row order, as the CPU does.
// The labels are data: copied to the host and checked before any kernel runs.
#include <cstdint>
#include <vector>

#include "kernels/cuda/grid.cuh"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/cuda/launch.h"
#include "kernels/elementwise_math.h"
#include "runtime/check.h"
#include "runtime/cuda/device_memory.h"

namespace dpt::kernels::cuda {
namespace {

__global__ void softmax_xent_kernel(const float* logits, const std::int32_t* labels, float* dlogits,
                                    std::int64_t n, std::int64_t classes, double* row_loss,
                                    std::int32_t* hit) {
  for (std::int64_t i = grid_start(); i < n; i += grid_stride()) {
    std::int64_t argmax = 0;
    row_loss[i] = softmax_xent_row(logits + i * classes, classes, labels[i],
                                   dlogits != nullptr ? dlogits + i * classes : nullptr, &argmax);
    hit[i] = argmax == labels[i] ? 1 : 0;
  }
}

}  // namespace

LossResult softmax_cross_entropy(const Context& ctx, const float* logits,
                                 const std::int32_t* labels, float* dlogits, std::int64_t n,
                                 std::int64_t classes) {
  if (n == 0) return {};
  const int device = ctx.device().index;
  const auto rows = static_cast<std::size_t>(n);
  std::vector<std::int32_t> host_labels(rows);
  ::dpt::cuda::copy(host_labels.data(), false, labels, true, rows * sizeof(std::int32_t), device);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int32_t label = host_labels[static_cast<std::size_t>(i)];
    DPT_CHECK(label >= 0 && label < classes, "softmax_cross_entropy: label ", label, " of sample ",
              i, " is outside [0, ", classes, ")");
  }
  // Scratch: n row losses (double), then n hit flags (int32).
  const std::size_t bytes = rows * (sizeof(double) + sizeof(std::int32_t));
  auto* row_loss = static_cast<double*>(scratch(ctx, bytes));
  auto* hit = reinterpret_cast<std::int32_t*>(row_loss + n);
  softmax_xent_kernel<<<blocks_for(n), kThreads, 0, stream_of(ctx)>>>(logits, labels, dlogits, n,
                                                                      classes, row_loss, hit);
  DPT_CUDA_CHECK_LAUNCH();
  std::vector<double> losses(rows);
  std::vector<std::int32_t> hits(rows);
  // Device-to-host copies synchronise the compute stream: the kernel has finished.
  ::dpt::cuda::copy(losses.data(), false, row_loss, true, rows * sizeof(double), device);
  ::dpt::cuda::copy(hits.data(), false, hit, true, rows * sizeof(std::int32_t), device);
  LossResult result;
  for (double v : losses) result.loss_sum += v;  // row order, as the CPU
  for (std::int32_t h : hits) result.correct += h;
  return result;
}

}  // namespace dpt::kernels::cuda
