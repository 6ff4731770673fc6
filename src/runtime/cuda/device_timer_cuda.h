// SPDX-License-Identifier: MIT
#pragma once

#include <memory>

#include "runtime/device_timer.h"

namespace dpt::cuda {
std::unique_ptr<DeviceTimer::Impl> make_device_timer(int device);
}  // namespace dpt::cuda
