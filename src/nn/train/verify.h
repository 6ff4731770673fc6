// SPDX-License-Identifier: MIT
// `train verify`: proof, for the user's own model and settings, that N-rank training computes
// what one rank computes. Every rank runs the configured steps distributed; rank 0 also runs the
// same global batches as a world of one, and compares gradients and parameters after each step.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "nn/train/config.h"
#include "runtime/context.h"

namespace dpt::nn {

// The largest differences between the distributed run and the one-rank run, over the steps.
struct ParameterDifference {
  std::string name;
  double grad_abs = 0.0;    // max |g_N - g_1|
  double grad_rel = 0.0;    // max |g_N - g_1| / max |g_1| (normwise: stable where g_1 is near 0)
  double param_abs = 0.0;
  double param_rel = 0.0;
  bool grad_bitwise = true;
  bool param_bitwise = true;
};

struct VerifyReport {
  std::int64_t steps = 0;
  int world_size = 1;
  bool exact = false;
  double bound = 0.0;       // the mode's bound on the relative differences (exact: 0, bitwise)
  std::vector<ParameterDifference> parameters;
  std::vector<double> losses_distributed, losses_one_rank;
  bool within_bound() const;
};

// Relative bound of the default (float all-reduce) mode: rounding differences of the summation
// order grow over steps but stay far below this in K <= 100 steps of the reference models.
inline constexpr double kInexactRelativeBound = 1e-4;

// Runs config.steps steps (1 when 0) on every rank of `comm`; the report is complete on rank 0
// (other ranks: steps, world_size, exact and bound only). Checkpoints, metrics, timeline, resume
// and evaluation of `config` are ignored. DPT_VERIFY_CORRUPT_RANK=r (a test aid) makes rank r's
// gradients wrong, which the report must show.
VerifyReport verify_training(TrainConfig config, const Context& ctx, comm::Communicator& comm);

// Folds the differences of `a` (distributed) against `b` (one rank) into the maxima: max |a - b|,
// that over max |b| (finite values), and whether the bits are equal. A NaN on one side only, or
// infinities that differ, count as an infinite difference.
void fold_difference(const Tensor& a, const Tensor& b, double& max_abs, double& max_rel,
                     bool& bitwise);

// The report as a table, and the verdict.
std::string format_report(const VerifyReport& report);

}  // namespace dpt::nn
