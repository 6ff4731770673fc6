// SPDX-License-Identifier: MIT
// The one clock behind Work::start_time()/end_time(), so that every backend's times share an epoch
// and overlap records from different collectives can be compared.
#pragma once

#include <chrono>

namespace dpt::comm::detail {

// Steady-clock seconds since the clock's own (arbitrary, per-boot) epoch.
inline double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace dpt::comm::detail
