// SPDX-License-Identifier: MIT
// StepLoss: the training loss of one step, kept where it is computed until the step ends.
//
// Note [One loss read per step]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Reading a loss from a GPU waits for every kernel queued before it. Read per micro-batch, it
// would stop the host from queueing the next micro-batch (and the optimizer) until the GPU had
// caught up. So each micro-batch's softmax_cross_entropy_rows writes per-sample losses into one
// buffer of the step's rows on the device, and read() copies them back once, after the step's
// optimizer has been queued. The sum is formed exactly as before (and as on the CPU): each
// micro-batch's rows added in row order from 0 in double, then the micro-batch sums in order, so
// the CPU's loss is bitwise what it was.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/ops.h"
#include "runtime/device.h"
#include "runtime/tensor.h"

namespace dpt::nn {

// What a step's (or an evaluation's) rows add up to.
struct LossTotals {
  double sum = 0.0;              // micro-batch sums in row order, added in order (as on the CPU)
  std::int64_t fixed_sum = 0;    // the same in fixed point (exact::to_fixed_loss): order-free
  std::int64_t unrepresented = 0;  // rows whose loss has no fixed-point value (non-finite, huge)
  std::int64_t correct = 0;      // rows whose argmax is the label
};

class StepLoss {
 public:
  explicit StepLoss(Device device) : device_(device) {}

  // Starts a step of `rows` samples (grows the buffer when needed).
  void begin_step(std::int64_t rows);
  // Where the micro-batch of rows [first, first + count) writes its losses; call once per
  // micro-batch, in order.
  kernels::LossRows micro_batch(std::int64_t first, std::int64_t count);
  // The step's loss sum (one device-to-host copy on a GPU). A sample the device flagged with a
  // label outside [0, classes) is reported here, with its label read from `labels`.
  LossTotals read(const Tensor& labels, std::int64_t classes);
  // Micro-batches written since begin_step().
  std::size_t micro_batches() const { return groups_.size(); }

 private:
  Device device_;
  std::int64_t rows_ = 0;
  std::int64_t capacity_ = 0;
  Tensor buffer_;  // u8: capacity_ doubles (losses), then capacity_ int32 (hit flags)
  std::vector<std::pair<std::int64_t, std::int64_t>> groups_;  // (first, count) per micro-batch
};

}  // namespace dpt::nn
