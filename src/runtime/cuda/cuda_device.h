// SPDX-License-Identifier: MIT
// CUDA device queries and the per-device compute stream. No CUDA types in this header, so
// runtime/device.cpp can call it.
#pragma once

#include <string>

namespace dpt::cuda {
// Number of visible devices; 0 when the driver reports none (no GPU, no driver).
int device_count();
// Why device_count() is 0, in CUDA's words ("cudaErrorNoDevice: no CUDA-capable device is
// detected"); empty when devices are visible.
std::string no_device_reason();
// Makes `device` current for this thread (cudaSetDevice).
void set_current_device(int device);
// "NVIDIA H100 80GB HBM3, compute capability 9.0, 79.1 GiB".
std::string describe_device(int device);
// Waits for all work queued on the device.
void synchronize_device(int device);
}  // namespace dpt::cuda
