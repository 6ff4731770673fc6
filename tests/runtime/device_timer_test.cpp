// SPDX-License-Identifier: MIT
// DeviceTimer on the CPU: intervals add up until take_ms(), which resets; begin/end must pair.
// (On a GPU it times event pairs: tests/cuda/cuda_model_test.cpp.)
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "runtime/device_timer.h"
#include "runtime/error.h"

namespace dpt {
namespace {

TEST(DeviceTimer, IntervalsAddUpAndTakeResets) {
  DeviceTimer timer(Device::cpu());
  EXPECT_EQ(timer.take_ms(), 0.0);
  for (int i = 0; i < 3; ++i) {
    timer.begin();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    timer.end();
  }
  EXPECT_EQ(timer.intervals(), 3);
  // Three sleeps of 2 ms each at least (a lower bound only: no timing upper bound in tests).
  EXPECT_GE(timer.take_ms(), 6.0);
  EXPECT_EQ(timer.intervals(), 0);
  EXPECT_EQ(timer.take_ms(), 0.0) << "take_ms() resets the sum";
}

TEST(DeviceTimer, TimeBetweenIntervalsIsNotCounted) {
  DeviceTimer timer(Device::cpu());
  const auto t0 = std::chrono::steady_clock::now();
  timer.begin();
  timer.end();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // at least 20 ms outside both
  timer.begin();
  timer.end();
  const double wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  // Both intervals lie inside [t0, now) and outside the sleep.
  EXPECT_LE(timer.take_ms(), wall_ms - 20.0) << "the sleep between the intervals was counted";
}

TEST(DeviceTimer, BeginAndEndMustPair) {
  DeviceTimer timer(Device::cpu());
  EXPECT_THROW(timer.end(), Error);
  timer.begin();
  EXPECT_THROW(timer.begin(), Error);
  EXPECT_THROW(timer.take_ms(), Error);
  timer.end();
  EXPECT_NO_THROW(timer.take_ms());
}

}  // namespace
}  // namespace dpt
