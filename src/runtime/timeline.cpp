// SPDX-License-Identifier: MIT
#include "runtime/timeline.h"

#include <algorithm>
#include <chrono>

namespace dpt {

void Timeline::add(std::string name, std::string category, double start_s, double end_s,
                   TimelineTrack track) {
  if (!recording_) return;
  spans_.push_back(TimelineSpan{std::move(name), std::move(category), std::max(start_s, origin_s_),
                                std::max(end_s, origin_s_), track});
}

double steady_now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace dpt
