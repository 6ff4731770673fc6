// SPDX-License-Identifier: MIT
// Softmax cross-entropy summed over a batch: rows in parallel, per-row math from
// elementwise_math.h, the loss sum added in row order so it is deterministic.
#include <vector>

#include "kernels/cpu/kernels_cpu.h"
#include "kernels/elementwise_math.h"
#include "runtime/check.h"

namespace dpt::kernels::cpu {

void softmax_cross_entropy_rows(const float* logits, const std::int32_t* labels, float* dlogits,
                                std::int64_t n, std::int64_t classes, double* row_loss,
                                std::int32_t* row_hit) {
  // Labels are data, not shapes: checked here, before the parallel region (which must not throw).
  for (std::int64_t i = 0; i < n; ++i) {
    DPT_CHECK(labels[i] >= 0 && labels[i] < classes, "softmax_cross_entropy: label ", labels[i],
              " of sample ", i, " is outside [0, ", classes, ")");
  }
#pragma omp parallel for schedule(static) if (n * classes >= 1 << 14)
  for (std::int64_t i = 0; i < n; ++i) {
    std::int64_t argmax = 0;
    row_loss[i] = softmax_xent_row(logits + i * classes, classes, labels[i],
                                   dlogits ? dlogits + i * classes : nullptr, &argmax);
    row_hit[i] = argmax == labels[i] ? 1 : 0;
  }
}

LossResult softmax_cross_entropy(const float* logits, const std::int32_t* labels, float* dlogits,
                                 std::int64_t n, std::int64_t classes) {
  std::vector<double> row_loss(static_cast<std::size_t>(n));
  std::vector<std::int32_t> row_hit(static_cast<std::size_t>(n));
  softmax_cross_entropy_rows(logits, labels, dlogits, n, classes, row_loss.data(), row_hit.data());
  LossResult result;
  for (double v : row_loss) result.loss_sum += v;  // row order: deterministic
  for (std::int32_t h : row_hit) result.correct += h;
  return result;
}

}  // namespace dpt::kernels::cpu
