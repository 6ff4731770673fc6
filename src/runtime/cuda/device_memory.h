// SPDX-License-Identifier: MIT
// Device memory for Storage and Tensor: stream-ordered allocation from the device's memory pool on
// its compute stream, copies and fills. No CUDA types here: runtime/tensor.cpp calls it.
#pragma once

#include <cstddef>

namespace dpt::cuda {

// cudaMallocAsync on the compute stream of `device`, or on `stream` (a cudaStream_t) when given.
// The pool keeps freed memory (release threshold: unlimited), so steps after the first allocate
// nothing from the driver; when it runs out, its free blocks go back to the driver and the
// allocation is tried once more.
void* allocate(std::size_t size_bytes, int device, void* stream = nullptr);
// cudaFreeAsync on the compute stream: the memory is reused only by work queued after it.
void deallocate(void* ptr, int device) noexcept;
// Copies `size_bytes` on the compute stream of `device`. Returns when the host may use its side:
// after a device-to-host copy the data has arrived, after a host-to-device copy the source may
// be reused.
void copy(void* dst, bool dst_on_device, const void* src, bool src_on_device,
          std::size_t size_bytes, int device);
// Zeroes device memory on the compute stream (asynchronously).
void zero(void* dst, std::size_t size_bytes, int device);
// True when `ptr` points into memory of a CUDA device (not host or pinned host memory).
bool is_device_pointer(const void* ptr);

}  // namespace dpt::cuda
