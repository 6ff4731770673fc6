// SPDX-License-Identifier: MIT
// CUDA device count through the runtime API; a missing driver counts as zero devices.
#include "runtime/cuda/cuda_device.h"

#include <cuda_runtime_api.h>

namespace dpt::cuda {
int device_count() {
  int count = 0;
  // No driver or no GPU is an answer ("zero devices"), not an error, so the status is not thrown.
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky error so later probes start clean
    return 0;
  }
  return count;
}
}  // namespace dpt::cuda
