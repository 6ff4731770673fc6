// SPDX-License-Identifier: MIT
// CUDA device count, selection and description through the runtime API.
#include "runtime/cuda/cuda_device.h"

#include <cuda_runtime_api.h>

#include <cstdio>

#include "runtime/cuda/cuda_check.h"

namespace dpt::cuda {

std::string error_string(cudaError_t status) {
  return std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
}

int device_count() {
  int count = 0;
  // No driver or no GPU is an answer ("zero devices"), not an error, so the status is not thrown.
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky error so later probes start clean
    return 0;
  }
  return count;
}

std::string no_device_reason() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    return error_string(status);
  }
  return count == 0 ? std::string("the CUDA driver reports 0 devices") : std::string();
}

void set_current_device(int device) { DPT_CUDA_CHECK(cudaSetDevice(device)); }

std::string describe_device(int device) {
  cudaDeviceProp prop{};
  DPT_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  char text[320];
  std::snprintf(text, sizeof text, "%s, compute capability %d.%d, %.1f GiB", prop.name,
                prop.major, prop.minor,
                static_cast<double>(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
  return text;
}

void synchronize_device(int device) {
  set_current_device(device);
  DPT_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace dpt::cuda
