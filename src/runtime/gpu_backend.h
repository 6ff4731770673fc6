// SPDX-License-Identifier: MIT
// What the generic runtime files (device, tensor, batch uploader, device timer) need from the GPU
// backend, without CUDA types. Implemented by runtime/cuda/gpu_backend_cuda.cpp in a CUDA build and
// by runtime/gpu_backend_stub.cpp (every call an error, "not built") otherwise: CMake picks the
// file, so no generic file carries `#if DPT_HAVE_CUDA` (docs/design.md, Backends).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "runtime/batch_uploader.h"
#include "runtime/device.h"
#include "runtime/device_timer.h"
#include "runtime/host_snapshot.h"

namespace dpt::gpu_backend {

// True in the CUDA build.
bool built();
// What looking for GPUs finds now (runtime/device.h, GpuProbe).
GpuProbe probe();
void set_current_device(int device);
// "NVIDIA H100 80GB HBM3, compute capability 9.0, 79.1 GiB".
std::string describe_device(int device);
// The physical GPU behind `device` in this process: "GPU-<uuid> (PCI 0000:3b:00.0)".
std::string gpu_identity(int device);

// Device memory (runtime/cuda/device_memory.h): stream-ordered allocation, copies, fills.
void* allocate(std::size_t size_bytes, int device, void* stream);
void deallocate(void* ptr, int device) noexcept;
void copy(void* dst, bool dst_on_device, const void* src, bool src_on_device,
          std::size_t size_bytes, int device);
void zero(void* dst, std::size_t size_bytes, int device);

std::unique_ptr<BatchUploader::Impl> make_batch_uploader(int device);
std::unique_ptr<DeviceTimer::Impl> make_device_timer(int device);
std::unique_ptr<HostSnapshotter::Impl> make_host_snapshotter(int device);

}  // namespace dpt::gpu_backend
