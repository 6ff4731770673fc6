// SPDX-License-Identifier: MIT
// DeviceTimer: how long the device spent on the work between begin() and end(), so that the
// step-time split (forward, backward, exposed communication, optimizer) means the same on every
// backend. On the CPU, ops run on the calling thread: the host's steady clock at begin() and end().
// On a GPU, ops are only queued: an event pair is recorded on the compute stream, and the times
// are read once, by take_ms() at the end of the step (which waits for the last recorded event), so
// timing adds no synchronisation inside the step.
#pragma once

#include <chrono>
#include <memory>

#include "runtime/device.h"

namespace dpt {

class DeviceTimer {
 public:
  explicit DeviceTimer(Device device);
  DeviceTimer(const DeviceTimer&) = delete;
  DeviceTimer& operator=(const DeviceTimer&) = delete;
  ~DeviceTimer();

  // An interval starts (begin) and ends (end); intervals add up until take_ms().
  void begin();
  void end();
  // Milliseconds of every interval ended since the last take_ms(); resets the sum. On a GPU this
  // waits until the device has reached the last end().
  double take_ms();
  // Intervals ended since the last take_ms().
  int intervals() const noexcept { return intervals_; }

  // The GPU part (runtime/cuda/device_timer_cuda.cpp).
  class Impl {
   public:
    virtual ~Impl() = default;
    virtual void begin() = 0;
    virtual void end() = 0;
    virtual double take_ms() = 0;
  };

 private:
  std::unique_ptr<Impl> impl_;  // null on the CPU
  std::chrono::steady_clock::time_point began_{};
  double host_ms_ = 0.0;
  bool open_ = false;
  int intervals_ = 0;
};

}  // namespace dpt
