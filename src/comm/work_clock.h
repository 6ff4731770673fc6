// SPDX-License-Identifier: MIT
// The one clock behind Work::start_time()/end_time(), so that every backend's times share an epoch
// with the trainer's timeline and overlap records from different collectives can be compared.
#pragma once

#include "runtime/timeline.h"

namespace dpt::comm::detail {

// Steady-clock seconds since the clock's own (arbitrary, per-boot) epoch.
inline double steady_seconds() { return steady_now_seconds(); }

}  // namespace dpt::comm::detail
