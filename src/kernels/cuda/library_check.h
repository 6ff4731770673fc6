// SPDX-License-Identifier: MIT
// DPT_CUDNN_CHECK and DPT_CUBLAS_CHECK: throw a kCuda dpt::Error naming the call, the library's
// status text, file:line and rank, in the style of DPT_CUDA_CHECK (runtime/cuda/cuda_check.h).
// The _LOG variants warn instead, for destructors. cuBLASLt returns cublasStatus_t, so
// DPT_CUBLAS_CHECK covers cublasLt* calls too. Only files under kernels/cuda/ include this.
#pragma once

#include <cublasLt.h>
#include <cudnn.h>

#include <string>

#include "runtime/check.h"

namespace dpt::kernels::cuda {
// cuDNN's name of the status ("CUDNN_STATUS_BAD_PARAM...") and its number.
inline std::string cudnn_status_string(cudnnStatus_t status) {
  return detail::str(cudnnGetErrorString(status), " (", static_cast<int>(status), ")");
}
// "CUBLAS_STATUS_NOT_SUPPORTED: <text>". The cublasLt* spellings live in libcublasLt, so no
// libcublas is needed for them.
inline std::string cublas_status_string(cublasStatus_t status) {
  return detail::str(cublasLtGetStatusName(status), ": ", cublasLtGetStatusString(status));
}
inline bool succeeded(cudnnStatus_t status) noexcept { return status == CUDNN_STATUS_SUCCESS; }
inline bool succeeded(cublasStatus_t status) noexcept { return status == CUBLAS_STATUS_SUCCESS; }
}  // namespace dpt::kernels::cuda

#define DPT_CUDNN_CHECK(expr)                                                    \
  DPT_CHECK_STATUS(::dpt::ErrorKind::kCuda, expr, ::dpt::kernels::cuda::succeeded, \
                   ::dpt::kernels::cuda::cudnn_status_string)

#define DPT_CUBLAS_CHECK(expr)                                                   \
  DPT_CHECK_STATUS(::dpt::ErrorKind::kCuda, expr, ::dpt::kernels::cuda::succeeded, \
                   ::dpt::kernels::cuda::cublas_status_string)

#define DPT_CUDNN_CHECK_LOG(expr)                                                      \
  DPT_CHECK_STATUS_LOG(::dpt::ErrorKind::kCuda, expr, ::dpt::kernels::cuda::succeeded, \
                       ::dpt::kernels::cuda::cudnn_status_string)

#define DPT_CUBLAS_CHECK_LOG(expr)                                                     \
  DPT_CHECK_STATUS_LOG(::dpt::ErrorKind::kCuda, expr, ::dpt::kernels::cuda::succeeded, \
                       ::dpt::kernels::cuda::cublas_status_string)
