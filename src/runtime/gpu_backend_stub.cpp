// SPDX-License-Identifier: MIT
// runtime/gpu_backend.h for a build without the CUDA backend: no GPU is ever found, and anything
// that would need one is a kCuda error saying how to get a CUDA build.
#include "runtime/gpu_backend.h"

#include "runtime/check.h"

namespace dpt::gpu_backend {
namespace {

constexpr const char* kNotBuilt =
    "this binary was built without the CUDA backend (configure with -DDPT_CUDA=ON)";

[[noreturn]] void not_built(const char* what, int device) {
  DPT_FAIL_KIND(ErrorKind::kCuda, what, " on ", to_string(Device::cuda(device)), ": ", kNotBuilt);
}

}  // namespace

bool built() { return false; }

GpuProbe probe() { return GpuProbe{GpuProbeStatus::kNotBuilt, 0, kNotBuilt}; }

void set_current_device(int device) { not_built("activate", device); }
std::string describe_device(int device) { not_built("describe", device); }
std::string gpu_identity(int device) { not_built("identify", device); }

void* allocate(std::size_t, int device, void*) { not_built("storage", device); }
// Nothing can have been allocated.
void deallocate(void*, int) noexcept {}
void copy(void*, bool dst_on_device, const void*, bool, std::size_t, int device) {
  not_built(dst_on_device ? "copy to" : "copy from", device);
}
void zero(void*, std::size_t, int device) { not_built("zero", device); }

std::unique_ptr<BatchUploader::Impl> make_batch_uploader(int device) {
  not_built("batch uploader", device);
}
std::unique_ptr<DeviceTimer::Impl> make_device_timer(int device) {
  not_built("device timer", device);
}
std::unique_ptr<HostSnapshotter::Impl> make_host_snapshotter(int device) {
  not_built("host snapshotter", device);
}

}  // namespace dpt::gpu_backend
