// SPDX-License-Identifier: MIT
// Warm-up, constant, cosine and step learning-rate schedules.
#include "nn/optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "runtime/check.h"

namespace dpt::nn {

ScheduleKind parse_schedule(std::string_view name) {
  if (name == "constant") return ScheduleKind::kConstant;
  if (name == "cosine") return ScheduleKind::kCosine;
  if (name == "step") return ScheduleKind::kStep;
  DPT_FAIL("lr-schedule: expected constant, cosine or step, got '", name, "'");
}

std::string to_string(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::kConstant: return "constant";
    case ScheduleKind::kCosine: return "cosine";
    case ScheduleKind::kStep: return "step";
  }
  return "?";
}

double LrSchedule::lr_at(std::int64_t step) const {
  DPT_CHECK(step >= 0, "lr schedule: negative step ", step);
  if (step < warmup_steps) return base_lr * static_cast<double>(step + 1) / warmup_steps;
  const std::int64_t after = step - warmup_steps;
  switch (kind) {
    case ScheduleKind::kConstant: return base_lr;
    case ScheduleKind::kCosine: {
      const std::int64_t span = std::max<std::int64_t>(1, total_steps - warmup_steps);
      const double t = std::min(1.0, static_cast<double>(after) / static_cast<double>(span));
      return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + std::cos(std::numbers::pi * t));
    }
    case ScheduleKind::kStep: {
      const auto drops = static_cast<double>(after / std::max<std::int64_t>(1, step_size));
      return base_lr * std::pow(gamma, drops);
    }
  }
  return base_lr;
}

}  // namespace dpt::nn
