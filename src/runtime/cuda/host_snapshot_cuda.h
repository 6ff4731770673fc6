// SPDX-License-Identifier: MIT
// The GPU side of HostSnapshotter (runtime/host_snapshot.h): device-to-host copies into pinned
// memory on a copy stream.
#pragma once

#include <memory>

#include "runtime/host_snapshot.h"

namespace dpt::cuda {

std::unique_ptr<HostSnapshotter::Impl> make_host_snapshotter(int device);

}  // namespace dpt::cuda
