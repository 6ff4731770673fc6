// SPDX-License-Identifier: MIT
// runtime/gpu_backend.h for the CUDA build: forwards to the files of runtime/cuda/.
#include "runtime/cuda/batch_uploader_cuda.h"
#include "runtime/cuda/cuda_device.h"
#include "runtime/cuda/device_memory.h"
#include "runtime/cuda/device_timer_cuda.h"
#include "runtime/cuda/host_snapshot_cuda.h"
#include "runtime/gpu_backend.h"

namespace dpt::gpu_backend {

bool built() { return true; }
GpuProbe probe() { return cuda::probe(); }
void set_current_device(int device) { cuda::set_current_device(device); }
std::string describe_device(int device) { return cuda::describe_device(device); }
std::string gpu_identity(int device) { return cuda::gpu_identity(device); }

void* allocate(std::size_t size_bytes, int device, void* stream) {
  return cuda::allocate(size_bytes, device, stream);
}
void deallocate(void* ptr, int device) noexcept { cuda::deallocate(ptr, device); }
void copy(void* dst, bool dst_on_device, const void* src, bool src_on_device,
          std::size_t size_bytes, int device) {
  cuda::copy(dst, dst_on_device, src, src_on_device, size_bytes, device);
}
void zero(void* dst, std::size_t size_bytes, int device) { cuda::zero(dst, size_bytes, device); }

std::unique_ptr<BatchUploader::Impl> make_batch_uploader(int device) {
  return cuda::make_batch_uploader(device);
}
std::unique_ptr<DeviceTimer::Impl> make_device_timer(int device) {
  return cuda::make_device_timer(device);
}
std::unique_ptr<HostSnapshotter::Impl> make_host_snapshotter(int device) {
  return cuda::make_host_snapshotter(device);
}

}  // namespace dpt::gpu_backend
