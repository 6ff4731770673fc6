// SPDX-License-Identifier: MIT
// DPT_CUDA_CHECK: throws a kCuda dpt::Error naming the call, CUDA's error name and text, file:line
// and rank. DPT_CUDA_CHECK_LOG: the same as a warning, for destructors. Only files under */cuda/
// include this (it includes the CUDA runtime header).
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "runtime/check.h"

namespace dpt::cuda {
// "cudaErrorMemoryAllocation: out of memory".
std::string error_string(cudaError_t status);
inline bool succeeded(cudaError_t status) noexcept { return status == cudaSuccess; }
// For clean-up: once the CUDA runtime is unloading at process exit, whatever it owned is gone
// with it, so that is not worth a warning.
inline bool freed_or_unloading(cudaError_t status) noexcept {
  return status == cudaSuccess || status == cudaErrorCudartUnloading;
}
}  // namespace dpt::cuda

#define DPT_CUDA_CHECK(expr) \
  DPT_CHECK_STATUS(::dpt::ErrorKind::kCuda, expr, ::dpt::cuda::succeeded, ::dpt::cuda::error_string)

#define DPT_CUDA_CHECK_LOG(expr)                                                       \
  DPT_CHECK_STATUS_LOG(::dpt::ErrorKind::kCuda, expr, ::dpt::cuda::freed_or_unloading, \
                       ::dpt::cuda::error_string)
