// SPDX-License-Identifier: MIT
// CUDA device queries; the only runtime file that includes CUDA headers.
#pragma once

namespace dpt::cuda {
// Number of visible devices; 0 when the driver reports none (no GPU on this machine).
int device_count();
}  // namespace dpt::cuda
