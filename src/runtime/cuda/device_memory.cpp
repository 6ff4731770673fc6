// SPDX-License-Identifier: MIT
// Stream-ordered device allocations (cudaMallocAsync pools) and copies on the compute stream.
#include "runtime/cuda/device_memory.h"

#include <array>
#include <cstdint>
#include <mutex>

#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/stream.h"

namespace dpt::cuda {
namespace {

// Once per device: keep freed blocks in the pool instead of returning them to the driver at every
// synchronisation (the default threshold is 0), as PyTorch's caching allocator does.
void configure_pool(int device) {
  constexpr int kMaxDevices = 64;
  static std::array<bool, kMaxDevices> configured{};
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  if (device < 0 || device >= kMaxDevices || configured[static_cast<std::size_t>(device)]) return;
  cudaMemPool_t pool = nullptr;
  DPT_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
  std::uint64_t threshold = UINT64_MAX;
  DPT_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  configured[static_cast<std::size_t>(device)] = true;
}

}  // namespace

void* allocate(std::size_t size_bytes, int device, void* stream) {
  configure_pool(device);
  void* ptr = nullptr;
  if (size_bytes == 0) return nullptr;
  const auto on = stream != nullptr ? static_cast<cudaStream_t>(stream) : compute_stream(device);
  cudaError_t status = cudaMallocAsync(&ptr, size_bytes, on);
  if (status == cudaErrorMemoryAllocation) {
    // The pool keeps every freed block (release threshold unlimited); cuDNN, cuBLASLt and NCCL
    // allocate outside it. Give the pool's free blocks back to the driver and try once more.
    (void)cudaGetLastError();
    cudaMemPool_t pool = nullptr;
    DPT_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
    DPT_CUDA_CHECK(cudaStreamSynchronize(on));
    DPT_CUDA_CHECK(cudaMemPoolTrimTo(pool, 0));
    status = cudaMallocAsync(&ptr, size_bytes, on);
  }
  if (status != cudaSuccess) (void)cudaGetLastError();  // handled here: not a later kernel's error
  DPT_CHECK_KIND(ErrorKind::kCuda, status == cudaSuccess, "cannot allocate ", size_bytes,
                 " bytes on cuda:", device, ": ", error_string(status));
  return ptr;
}

void deallocate(void* ptr, int device) noexcept {
  if (ptr == nullptr) return;
  try {
    DPT_CUDA_CHECK_LOG(cudaFreeAsync(ptr, compute_stream(device)));
  } catch (...) {
    // compute_stream() throws only for an impossible device index; nothing to free then.
  }
}

void copy(void* dst, bool dst_on_device, const void* src, bool src_on_device,
          std::size_t size_bytes, int device) {
  if (size_bytes == 0) return;
  const cudaStream_t stream = compute_stream(device);
  const cudaMemcpyKind kind = dst_on_device ? (src_on_device ? cudaMemcpyDeviceToDevice
                                                             : cudaMemcpyHostToDevice)
                                            : (src_on_device ? cudaMemcpyDeviceToHost
                                                             : cudaMemcpyHostToHost);
  DPT_CUDA_CHECK(cudaMemcpyAsync(dst, src, size_bytes, kind, stream));
  // A host buffer on either side may be pageable and may be reused as soon as we return.
  if (!dst_on_device || !src_on_device) DPT_CUDA_CHECK(cudaStreamSynchronize(stream));
}

void zero(void* dst, std::size_t size_bytes, int device) {
  if (size_bytes == 0) return;
  DPT_CUDA_CHECK(cudaMemsetAsync(dst, 0, size_bytes, compute_stream(device)));
}

bool is_device_pointer(const void* ptr) {
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, ptr) != cudaSuccess) {
    (void)cudaGetLastError();  // plain host memory unknown to CUDA: not an error
    return false;
  }
  return attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged;
}

}  // namespace dpt::cuda
