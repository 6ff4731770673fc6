// SPDX-License-Identifier: MIT
// CudaBackendState: handles bound to the compute stream, the workspace and scratch buffers.
#include "kernels/cuda/backend_state.h"

#include "kernels/cuda/launch.h"
#include "runtime/check.h"
#include "runtime/cuda/device_memory.h"
#include "runtime/cuda/stream.h"

namespace dpt::kernels::cuda {

void* DeviceBuffer::reserve(std::size_t bytes) {
  if (bytes <= size_ && ptr_ != nullptr) return ptr_;
  // Grow by at least half, so a sequence of slightly larger requests reallocates rarely.
  const std::size_t target = bytes < size_ + size_ / 2 ? size_ + size_ / 2 : bytes;
  release();
  ptr_ = ::dpt::cuda::allocate(target, device_);
  size_ = target;
  return ptr_;
}

void DeviceBuffer::release() noexcept {
  // Stream-ordered: kernels queued before still see the memory.
  ::dpt::cuda::deallocate(ptr_, device_);
  ptr_ = nullptr;
  size_ = 0;
}

CudaBackendState::CudaBackendState(const Context& ctx)
    : device_(ctx.device().index),
      stream_(::dpt::cuda::compute_stream(ctx.device().index)),
      workspace_(ctx.device().index),
      scratch_(ctx.device().index) {
  DPT_ASSERT(ctx.device().type == DeviceType::kCuda);
}

cudnnHandle_t CudaBackendState::cudnn() {
  if (!cudnn_) {
    // cudnnCreate binds the handle to the current device, which Context::create made ours.
    CudnnHandle handle = make_cudnn_handle();
    DPT_CUDNN_CHECK(cudnnSetStream(handle.get(), stream_));
    cudnn_ = std::move(handle);
  }
  return cudnn_.get();
}

cublasLtHandle_t CudaBackendState::cublaslt() {
  // cuBLASLt takes the stream per call (cublasLtMatmul's last argument).
  if (!cublaslt_) cublaslt_ = make_cublaslt_handle();
  return cublaslt_.get();
}

CudaBackendState& state_of(const Context& ctx) { return ctx.backend_state<CudaBackendState>(); }

cudaStream_t stream_of(const Context& ctx) { return state_of(ctx).stream(); }

void* scratch(const Context& ctx, std::size_t bytes) { return state_of(ctx).scratch(bytes); }

}  // namespace dpt::kernels::cuda
