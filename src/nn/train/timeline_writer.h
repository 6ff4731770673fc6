// SPDX-License-Identifier: MIT
// Merges every rank's timeline into one Chrome trace file (JSON "traceEvents", complete events in
// microseconds): one process per rank ("rank r"), with a compute and a communication track.
#pragma once

#include <string>

#include "comm/communicator.h"
#include "runtime/timeline.h"

namespace dpt::nn {

// Collective: every rank calls it; rank 0 writes `path`. Times are relative to each rank's
// origin, taken right after a barrier, so ranks line up to within the barrier's skew.
void write_timeline(comm::Communicator& comm, const Timeline& timeline, const std::string& path);

}  // namespace dpt::nn
