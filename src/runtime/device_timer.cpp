// SPDX-License-Identifier: MIT
#include "runtime/device_timer.h"

#include "runtime/check.h"
#include "runtime/gpu_backend.h"

namespace dpt {

DeviceTimer::DeviceTimer(Device device) {
  if (device.type == DeviceType::kCuda) impl_ = gpu_backend::make_device_timer(device.index);
}

DeviceTimer::~DeviceTimer() = default;

void DeviceTimer::begin() {
  DPT_CHECK(!open_, "DeviceTimer: begin() twice without end()");
  open_ = true;
  if (impl_) {
    impl_->begin();
    return;
  }
  began_ = std::chrono::steady_clock::now();
}

void DeviceTimer::end() {
  DPT_CHECK(open_, "DeviceTimer: end() without begin()");
  open_ = false;
  ++intervals_;
  if (impl_) {
    impl_->end();
    return;
  }
  host_ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - began_)
                  .count();
}

double DeviceTimer::take_ms() {
  DPT_CHECK(!open_, "DeviceTimer: take_ms() inside an interval (begin() without end())");
  intervals_ = 0;
  if (impl_) return impl_->take_ms();
  const double ms = host_ms_;
  host_ms_ = 0.0;
  return ms;
}

}  // namespace dpt
