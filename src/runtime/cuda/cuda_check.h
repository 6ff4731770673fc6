// SPDX-License-Identifier: MIT
// DPT_CUDA_CHECK: throws a kCuda dpt::Error naming the call, CUDA's error name and text, file:line
// and rank. DPT_CUDA_CHECK_LOG: the same as a warning, for destructors. Only files under */cuda/
// include this (it includes the CUDA runtime header).
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "runtime/check.h"
#include "runtime/logging.h"

namespace dpt::cuda {
// "cudaErrorMemoryAllocation: out of memory".
std::string error_string(cudaError_t status);
inline bool succeeded(cudaError_t status) noexcept { return status == cudaSuccess; }
}  // namespace dpt::cuda

#define DPT_CUDA_CHECK(expr) \
  DPT_CHECK_STATUS(::dpt::ErrorKind::kCuda, expr, ::dpt::cuda::succeeded, ::dpt::cuda::error_string)

#define DPT_CUDA_CHECK_LOG(expr)                                                              \
  do {                                                                                        \
    const cudaError_t dpt_cuda_status_ = (expr);                                              \
    if (dpt_cuda_status_ != cudaSuccess && dpt_cuda_status_ != cudaErrorCudartUnloading) {    \
      ::dpt::log(::dpt::LogLevel::kWarning, #expr, " failed: ",                              \
                 ::dpt::cuda::error_string(dpt_cuda_status_), " at ", __FILE__, ':', __LINE__); \
    }                                                                                         \
  } while (false)
