// SPDX-License-Identifier: MIT
#include "nn/train/loss_scaler.h"

#include <cmath>

#include "runtime/check.h"

namespace dpt::nn {
namespace {

void check_scale(double scale, const char* what) {
  int exponent = 0;
  DPT_CHECK(std::isfinite(scale) && scale > 0.0 && std::frexp(scale, &exponent) == 0.5, what,
            ": the loss scale must be a power of two, got ", scale);
}

}  // namespace

// Note [Loss scaling]
// ~~~~~~~~~~~~~~~~~~~
// fp16 holds values from 2^-24 (subnormal) to 65504: gradients of a layer's output (dy, cast to
// fp16 for the GEMMs: Note [Mixed precision in layers]) are often smaller and would round to zero.
// So with --precision fp16 the loss gradient is multiplied by a scale S before backward (every
// gradient is then S times larger), and the optimizer takes 1/S of them (folded into the factor it
// applies as it reads them, with the 1/batch mean; clipping sees the unscaled norm). S is a power
// of two, so both are exact: with no overflow, a step computes what an unscaled step with the
// same fp16 roundings of the scaled values computes. When a step's reduced gradients hold a NaN
// or Inf (an fp16 overflow: S too large), every rank skips its optimizer step alike (the finding
// comes from the reduced gradients, Note [Non-finite gradients]), and S halves; after
// --loss-scale-growth-interval steps in a row without, S doubles. These are GradScaler's rules
// and defaults (2^16, 2000 steps). S and the count are checkpointed (as /optimizer attributes
// loss_scale and loss_scale_growth_tracker) and restored exactly, so a resumed run continues the
// same bits. A NaN that no scale removes (a diverged model) halves S on every step until it falls
// below 2^-24, where the run stops with the usual non-finite error.
LossScaler::LossScaler(double initial_scale, std::int64_t growth_interval)
    : scale_(initial_scale), growth_interval_(growth_interval) {
  check_scale(initial_scale, "--loss-scale");
  DPT_CHECK(growth_interval >= 1, "--loss-scale-growth-interval must be >= 1, got ",
            growth_interval);
}

void LossScaler::update(bool overflow) {
  if (overflow) {
    scale_ *= 0.5;
    growth_tracker_ = 0;
    ++overflows_;
    return;
  }
  if (++growth_tracker_ == growth_interval_) {
    scale_ *= 2.0;
    growth_tracker_ = 0;
  }
}

void LossScaler::restore(double scale, std::int64_t growth_tracker) {
  check_scale(scale, "checkpoint attribute loss_scale");
  DPT_CHECK(growth_tracker >= 0 && growth_tracker < growth_interval_,
            "checkpoint attribute loss_scale_growth_tracker: expected a count in [0, ",
            growth_interval_, ") (--loss-scale-growth-interval), got ", growth_tracker);
  scale_ = scale;
  growth_tracker_ = growth_tracker;
}

}  // namespace dpt::nn
