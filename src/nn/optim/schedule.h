// SPDX-License-Identifier: MIT
// Learning-rate schedules as pure functions of the optimizer step (0-based), so a resumed run gets
// the same rate as one that never stopped.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dpt::nn {

enum class ScheduleKind { kConstant, kCosine, kStep };

ScheduleKind parse_schedule(std::string_view name);  // "constant" | "cosine" | "step"
std::string to_string(ScheduleKind kind);

struct LrSchedule {
  ScheduleKind kind = ScheduleKind::kConstant;
  double base_lr = 1e-3;
  std::int64_t warmup_steps = 0;  // linear ramp: step s < warmup gets base * (s + 1) / warmup
  std::int64_t total_steps = 0;   // cosine: decays to min_lr at total_steps
  double min_lr = 0.0;            // cosine floor
  std::int64_t step_size = 1000;  // step: multiply by gamma every step_size steps after warmup
  double gamma = 0.1;

  double lr_at(std::int64_t step) const;
};

}  // namespace dpt::nn
