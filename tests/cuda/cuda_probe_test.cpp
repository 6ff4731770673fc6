// SPDX-License-Identifier: MIT
// What a GPU probe's CUDA status means (runtime/cuda/cuda_device.h), without a GPU: only a missing
// driver library (or the toolkit's stub) and cudaErrorNoDevice are "no GPU"; too old a driver
// with the library present, a system not ready and every other error stay errors. Label unit: it
// runs on the CPU machines of a CUDA build.
#include <gtest/gtest.h>

#include "runtime/cuda/cuda_device.h"

namespace dpt::cuda {
namespace {

TEST(CudaProbe, NoDriverLibraryIsNoGpuWhateverCudartSays) {
  for (cudaError_t status : {cudaErrorInsufficientDriver, cudaErrorNoDevice, cudaSuccess,
                             cudaErrorUnknown}) {
    EXPECT_EQ(classify_probe(status, 0, /*driver_loadable=*/false), GpuProbeStatus::kNoDriver)
        << cudaGetErrorName(status);
  }
  EXPECT_EQ(classify_probe(cudaErrorStubLibrary, 0, true), GpuProbeStatus::kNoDriver);
}

TEST(CudaProbe, NoDeviceIsNoGpu) {
  EXPECT_EQ(classify_probe(cudaErrorNoDevice, 0, true), GpuProbeStatus::kNoDevice);
  EXPECT_EQ(classify_probe(cudaSuccess, 0, true), GpuProbeStatus::kNoDevice);
}

TEST(CudaProbe, OtherErrorsWithADriverAreErrors) {
  for (cudaError_t status : {cudaErrorInsufficientDriver, cudaErrorSystemNotReady,
                             cudaErrorSystemDriverMismatch, cudaErrorCompatNotSupportedOnDevice,
                             cudaErrorDevicesUnavailable, cudaErrorUnknown}) {
    EXPECT_EQ(classify_probe(status, 0, true), GpuProbeStatus::kError) << cudaGetErrorName(status);
  }
}

TEST(CudaProbe, DevicesAreAvailable) {
  EXPECT_EQ(classify_probe(cudaSuccess, 2, true), GpuProbeStatus::kAvailable);
}

TEST(CudaProbe, ThisMachineProbesConsistently) {
  const GpuProbe p = probe();
  EXPECT_EQ(p.status == GpuProbeStatus::kAvailable, p.count > 0);
  EXPECT_EQ(p.reason.empty(), p.status == GpuProbeStatus::kAvailable) << p.reason;
  if (!driver_library_loadable()) {
    EXPECT_EQ(p.status, GpuProbeStatus::kNoDriver) << p.reason;
    EXPECT_NE(p.reason.find("libcuda.so.1"), std::string::npos) << p.reason;
  }
}

}  // namespace
}  // namespace dpt::cuda
