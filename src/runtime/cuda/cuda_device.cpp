// SPDX-License-Identifier: MIT
// CUDA device probing, selection, description and identity through the runtime API.
#include "runtime/cuda/cuda_device.h"

#include <dlfcn.h>

#include <cstdio>

#include "runtime/cuda/cuda_check.h"

namespace dpt::cuda {

std::string error_string(cudaError_t status) {
  return std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
}

GpuProbeStatus classify_probe(cudaError_t status, int count, bool driver_loadable) {
  // Without the driver library cudart reports cudaErrorInsufficientDriver, the same code as a real
  // driver that is too old: only the library's absence tells "no GPU here" from "fix the driver".
  if (!driver_loadable || status == cudaErrorStubLibrary) return GpuProbeStatus::kNoDriver;
  if (status == cudaErrorNoDevice) return GpuProbeStatus::kNoDevice;
  if (status != cudaSuccess) return GpuProbeStatus::kError;
  return count > 0 ? GpuProbeStatus::kAvailable : GpuProbeStatus::kNoDevice;
}

bool driver_library_loadable() {
  // A fact of the machine, not a resource: computed once, the handle closed at once.
  static const bool loadable = [] {
    void* handle = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (handle == nullptr) return false;
    dlclose(handle);
    return true;
  }();
  return loadable;
}

GpuProbe probe() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) (void)cudaGetLastError();  // later probes and launches start clean
  GpuProbe result;
  result.status = classify_probe(status, count, driver_library_loadable());
  result.count = result.status == GpuProbeStatus::kAvailable ? count : 0;
  switch (result.status) {
    case GpuProbeStatus::kAvailable:
      break;
    case GpuProbeStatus::kNoDriver:
      result.reason = status == cudaErrorStubLibrary
                          ? error_string(status)
                          : "the CUDA driver library libcuda.so.1 cannot be loaded (" +
                                error_string(status) + ")";
      break;
    case GpuProbeStatus::kNoDevice:
      result.reason = status == cudaSuccess ? std::string("the CUDA driver reports 0 devices")
                                            : error_string(status);
      break;
    case GpuProbeStatus::kNotBuilt:  // not a CUDA answer
    case GpuProbeStatus::kError:
      result.reason = error_string(status);
      break;
  }
  return result;
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

std::string gpu_identity(int device) {
  cudaDeviceProp prop{};
  DPT_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  const auto* u = reinterpret_cast<const unsigned char*>(prop.uuid.bytes);
  char uuid[64];
  std::snprintf(uuid, sizeof uuid,
                "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
                u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
                u[14], u[15]);
  char bus[32] = {};
  DPT_CUDA_CHECK(cudaDeviceGetPCIBusId(bus, static_cast<int>(sizeof bus), device));
  return std::string(uuid) + " (PCI " + bus + ")";
}

void synchronize_device(int device) {
  set_current_device(device);
  DPT_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace dpt::cuda
