// SPDX-License-Identifier: MIT
// Softmax cross-entropy: one thread per row calling softmax_xent_row (elementwise_math.h), writing
// per-row losses and hit flags. softmax_cross_entropy_rows leaves them in the caller's device
// buffer (training reads a step's rows once: nn/train/step_loss.h); softmax_cross_entropy
// (evaluation) copies them back at once and sums them on the host in row order, as the CPU does.
// The labels are data: a row whose label is outside [0, classes) is flagged by the kernel (it
// reads no logit for it), and the host then reports the first such sample with the CPU backend's
// message.
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cuda/grid.cuh"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/cuda/launch.h"
#include "kernels/elementwise_math.h"
#include "runtime/check.h"
#include "runtime/cuda/device_memory.h"

namespace dpt::kernels::cuda {
namespace {

constexpr std::int32_t kBadLabel = -1;  // a hit flag is 0 or 1 otherwise

__global__ void softmax_xent_kernel(const float* logits, const std::int32_t* labels, float* dlogits,
                                    std::int64_t n, std::int64_t classes, double* row_loss,
                                    std::int32_t* hit) {
  for (std::int64_t i = grid_start(); i < n; i += grid_stride()) {
    if (labels[i] < 0 || labels[i] >= classes) {
      row_loss[i] = 0.0;
      hit[i] = kBadLabel;
      continue;
    }
    std::int64_t argmax = 0;
    row_loss[i] = softmax_xent_row(logits + i * classes, classes, labels[i],
                                   dlogits != nullptr ? dlogits + i * classes : nullptr, &argmax);
    hit[i] = argmax == labels[i] ? 1 : 0;
  }
}

}  // namespace

void softmax_cross_entropy_rows(const Context& ctx, const float* logits,
                                const std::int32_t* labels, float* dlogits, std::int64_t n,
                                std::int64_t classes, double* row_loss, std::int32_t* row_hit) {
  if (n == 0) return;  // a zero-block grid is a launch error
  softmax_xent_kernel<<<blocks_for(n), kThreads, 0, stream_of(ctx)>>>(logits, labels, dlogits, n,
                                                                      classes, row_loss, row_hit);
  DPT_CUDA_CHECK_LAUNCH();
}

LossResult softmax_cross_entropy(const Context& ctx, const float* logits,
                                 const std::int32_t* labels, float* dlogits, std::int64_t n,
                                 std::int64_t classes) {
  if (n == 0) return {};
  const int device = ctx.device().index;
  const auto rows = static_cast<std::size_t>(n);
  // Scratch: n row losses (double), then n hit flags (int32): one copy brings both back.
  const std::size_t bytes = rows * (sizeof(double) + sizeof(std::int32_t));
  auto* row_loss = static_cast<double*>(scratch(ctx, bytes));
  auto* hit = reinterpret_cast<std::int32_t*>(row_loss + n);
  softmax_cross_entropy_rows(ctx, logits, labels, dlogits, n, classes, row_loss, hit);
  std::vector<double> losses(rows);
  std::vector<std::int32_t> hits(rows);
  std::vector<unsigned char> back(bytes);
  // A device-to-host copy synchronises the compute stream: the kernel has finished.
  ::dpt::cuda::copy(back.data(), false, row_loss, true, bytes, device);
  std::memcpy(losses.data(), back.data(), rows * sizeof(double));
  std::memcpy(hits.data(), back.data() + rows * sizeof(double), rows * sizeof(std::int32_t));
  for (std::size_t i = 0; i < rows; ++i) {
    if (hits[i] != kBadLabel) continue;
    std::int32_t label = 0;  // the error path only: fetch the label for the message
    ::dpt::cuda::copy(&label, false, labels + i, true, sizeof label, device);
    DPT_FAIL("softmax_cross_entropy: label ", label, " of sample ", i, " is outside [0, ", classes,
             ")");
  }
  LossResult result;
  for (double v : losses) result.loss_sum += v;  // row order, as the CPU
  for (std::int32_t h : hits) result.correct += h;
  return result;
}

}  // namespace dpt::kernels::cuda
