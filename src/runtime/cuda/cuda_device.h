// SPDX-License-Identifier: MIT
// CUDA device probing, selection, description and identity, for runtime/cuda/gpu_backend_cuda.cpp.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "runtime/device.h"

namespace dpt::cuda {
// "cudaErrorNoDevice: no CUDA-capable device is detected".
std::string error_string(cudaError_t status);
// What cudaGetDeviceCount's `status` (and `count`) mean, given whether the driver library
// (libcuda.so.1) can be loaded: no driver library (or the toolkit's stub) and cudaErrorNoDevice
// (or zero devices) are "no GPU"; every other error is a GPU machine that cannot be used (too old
// a driver, cudaErrorSystemNotReady...) and stays an error.
GpuProbeStatus classify_probe(cudaError_t status, int count, bool driver_loadable);
// Whether dlopen finds the CUDA driver library libcuda.so.1 (checked once per process).
bool driver_library_loadable();
// cudaGetDeviceCount, classified, with CUDA's words.
GpuProbe probe();
// Makes `device` current for this thread (cudaSetDevice).
void set_current_device(int device);
// "NVIDIA H100 80GB HBM3, compute capability 9.0, 79.1 GiB".
std::string describe_device(int device);
// "GPU-<uuid as nvidia-smi prints it> (PCI 0000:3b:00.0)".
std::string gpu_identity(int device);
// Waits for all work queued on the device.
void synchronize_device(int device);
}  // namespace dpt::cuda
