// SPDX-License-Identifier: MIT
// Learning-rate schedules at their boundaries.
#include <gtest/gtest.h>

#include "nn/optim/schedule.h"
#include "runtime/check.h"

namespace dpt::nn {
namespace {

TEST(Schedule, WarmupRampsLinearlyToTheBase) {
  LrSchedule s;
  s.base_lr = 1.0;
  s.warmup_steps = 4;
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.25);
  EXPECT_DOUBLE_EQ(s.lr_at(3), 1.0);
  EXPECT_DOUBLE_EQ(s.lr_at(4), 1.0);
  EXPECT_DOUBLE_EQ(s.lr_at(1000), 1.0);
  EXPECT_THROW(s.lr_at(-1), Error);
}

TEST(Schedule, CosineFromBaseToFloor) {
  LrSchedule s;
  s.kind = ScheduleKind::kCosine;
  s.base_lr = 2.0;
  s.min_lr = 0.5;
  s.warmup_steps = 2;
  s.total_steps = 12;
  EXPECT_DOUBLE_EQ(s.lr_at(1), 2.0);   // end of warm-up
  EXPECT_DOUBLE_EQ(s.lr_at(2), 2.0);   // cosine starts at the base
  EXPECT_NEAR(s.lr_at(7), 1.25, 1e-12);  // half way: the mean of base and floor
  EXPECT_NEAR(s.lr_at(12), 0.5, 1e-12);
  EXPECT_NEAR(s.lr_at(50), 0.5, 1e-12);  // stays at the floor after the end
}

TEST(Schedule, StepDecaysAtEachBoundary) {
  LrSchedule s;
  s.kind = ScheduleKind::kStep;
  s.base_lr = 1.0;
  s.step_size = 10;
  s.gamma = 0.5;
  EXPECT_DOUBLE_EQ(s.lr_at(9), 1.0);
  EXPECT_DOUBLE_EQ(s.lr_at(10), 0.5);
  EXPECT_DOUBLE_EQ(s.lr_at(19), 0.5);
  EXPECT_DOUBLE_EQ(s.lr_at(20), 0.25);
}

TEST(Schedule, ParsesNamesAndRejectsOthers) {
  EXPECT_EQ(parse_schedule("cosine"), ScheduleKind::kCosine);
  EXPECT_EQ(to_string(parse_schedule("step")), "step");
  EXPECT_THROW(parse_schedule("linear"), Error);
}

}  // namespace
}  // namespace dpt::nn
