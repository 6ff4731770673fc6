// SPDX-License-Identifier: MIT
#include "runtime/cuda/pinned_buffer.h"

#include "runtime/cuda/cuda_check.h"

namespace dpt::cuda {

PinnedBuffer::PinnedBuffer(std::size_t size_bytes) : size_bytes_(size_bytes) {
  if (size_bytes == 0) return;
  const cudaError_t status = cudaHostAlloc(&data_, size_bytes, cudaHostAllocDefault);
  if (status != cudaSuccess) (void)cudaGetLastError();  // reported here, not by a later check
  DPT_CHECK_KIND(ErrorKind::kCuda, status == cudaSuccess, "cannot allocate ", size_bytes,
                 " bytes of pinned host memory: ", error_string(status));
}

void PinnedBuffer::reset() noexcept {
  if (data_ == nullptr) return;
  DPT_CUDA_CHECK_LOG(cudaFreeHost(data_));
  data_ = nullptr;
  size_bytes_ = 0;
}

}  // namespace dpt::cuda
