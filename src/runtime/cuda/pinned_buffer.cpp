// SPDX-License-Identifier: MIT
#include "runtime/cuda/pinned_buffer.h"

#include "runtime/cuda/cuda_check.h"

namespace dpt::cuda {

void PinnedTraits::close(void* data) noexcept { DPT_CUDA_CHECK_LOG(cudaFreeHost(data)); }

PinnedBuffer::PinnedBuffer(std::size_t size_bytes) : size_bytes_(size_bytes) {
  if (size_bytes == 0) return;
  void* data = nullptr;
  const cudaError_t status = cudaHostAlloc(&data, size_bytes, cudaHostAllocDefault);
  if (status != cudaSuccess) (void)cudaGetLastError();  // reported here, not by a later check
  DPT_CHECK_KIND(ErrorKind::kCuda, status == cudaSuccess, "cannot allocate ", size_bytes,
                 " bytes of pinned host memory: ", error_string(status));
  data_.reset(data);
}

}  // namespace dpt::cuda
