// SPDX-License-Identifier: MIT
// Softmax cross-entropy summed over a batch: rows in parallel, per-row math from
// elementwise_math.h, the loss sum added in row order so it is deterministic.
#include <vector>

#include "kernels/cpu/kernels_cpu.h"
#include "kernels/elementwise_math.h"
#include "runtime/check.h"

namespace dpt::kernels::cpu {

LossResult softmax_cross_entropy(const float* logits, const std::int32_t* labels, float* dlogits,
                                 std::int64_t n, std::int64_t classes) {
  // Labels are data, not shapes: checked here, before the parallel region (which must not throw).
  for (std::int64_t i = 0; i < n; ++i) {
    DPT_CHECK(labels[i] >= 0 && labels[i] < classes, "softmax_cross_entropy: label ", labels[i],
              " of sample ", i, " is outside [0, ", classes, ")");
  }
  std::vector<double> row_loss(static_cast<std::size_t>(n));
  std::int64_t correct = 0;
#pragma omp parallel for schedule(static) reduction(+ : correct) if (n * classes >= 1 << 14)
  for (std::int64_t i = 0; i < n; ++i) {
    std::int64_t argmax = 0;
    row_loss[static_cast<std::size_t>(i)] =
        softmax_xent_row(logits + i * classes, classes, labels[i],
                         dlogits ? dlogits + i * classes : nullptr, &argmax);
    correct += argmax == labels[i] ? 1 : 0;
  }
  LossResult result;
  for (double v : row_loss) result.loss_sum += v;
  result.correct = correct;
  return result;
}

}  // namespace dpt::kernels::cpu
