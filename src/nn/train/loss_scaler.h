// SPDX-License-Identifier: MIT
// Dynamic loss scaling for --precision fp16 (Note [Loss scaling]): the scale, its growth and
// backoff, as PyTorch's torch.cuda.amp.GradScaler (growth factor 2, backoff 1/2).
#pragma once

#include <cstdint>

namespace dpt::nn {

class LossScaler {
 public:
  // `initial_scale` a power of two in [1, 2^64]; `growth_interval` >= 1.
  LossScaler(double initial_scale, std::int64_t growth_interval);

  // The factor on the loss gradient: a power of two, so scaling and unscaling are exact.
  double scale() const { return scale_; }
  // Steps without overflow since the last growth or backoff.
  std::int64_t growth_tracker() const { return growth_tracker_; }
  // Steps skipped for overflow in this process's run.
  std::int64_t overflows() const { return overflows_; }

  // After a step, with whether its reduced gradients held a NaN or Inf (the step is then
  // skipped): halves the scale and restarts the count, or counts the step and doubles the scale
  // after growth_interval such steps in a row.
  void update(bool overflow);
  // A resumed run's state (from a checkpoint); checked like the constructor's.
  void restore(double scale, std::int64_t growth_tracker);

  // Below this the scale cannot rescue a step (it is under fp16's smallest subnormal, 2^-24): an
  // overflow there is a NaN or Inf no scale removes.
  static constexpr double kSmallestUsefulScale = 0x1p-24;

 private:
  double scale_;
  std::int64_t growth_interval_;
  std::int64_t growth_tracker_ = 0;
  std::int64_t overflows_ = 0;
};

}  // namespace dpt::nn
