// SPDX-License-Identifier: MIT
// Owners of every cuDNN and cuBLASLt object the backend creates: UniqueHandle over the opaque
// handle with the library's destroy call (failures there are logged, never thrown).
// make_*() create them and throw a kCuda dpt::Error naming the call when creation fails.
#pragma once

#include <cublasLt.h>
#include <cudnn.h>

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/library_check.h"
#include "runtime/unique_handle.h"

namespace dpt::kernels::cuda {

namespace handles_detail {
// Handle types are pointers to opaque structs, freed by the library's destroy call.
template <typename Handle, auto Destroy>
struct LibraryTraits {
  using handle_type = Handle;
  static Handle null() noexcept { return nullptr; }
  static void close(Handle handle) noexcept {
    if constexpr (std::is_same_v<decltype(Destroy(handle)), cudnnStatus_t>) {
      DPT_CUDNN_CHECK_LOG(Destroy(handle));
    } else {
      DPT_CUBLAS_CHECK_LOG(Destroy(handle));
    }
  }
};
template <typename Handle, auto Destroy>
using Owner = UniqueHandle<LibraryTraits<Handle, Destroy>>;
}  // namespace handles_detail

using CudnnHandle = handles_detail::Owner<cudnnHandle_t, cudnnDestroy>;
using CudnnTensorDesc = handles_detail::Owner<cudnnTensorDescriptor_t, cudnnDestroyTensorDescriptor>;
using CudnnFilterDesc = handles_detail::Owner<cudnnFilterDescriptor_t, cudnnDestroyFilterDescriptor>;
using CudnnConvDesc =
    handles_detail::Owner<cudnnConvolutionDescriptor_t, cudnnDestroyConvolutionDescriptor>;
using CublasLtHandle = handles_detail::Owner<cublasLtHandle_t, cublasLtDestroy>;
using CublasLtMatmulDesc = handles_detail::Owner<cublasLtMatmulDesc_t, cublasLtMatmulDescDestroy>;
using CublasLtLayout = handles_detail::Owner<cublasLtMatrixLayout_t, cublasLtMatrixLayoutDestroy>;
using CublasLtPreference =
    handles_detail::Owner<cublasLtMatmulPreference_t, cublasLtMatmulPreferenceDestroy>;

inline CudnnHandle make_cudnn_handle() {
  cudnnHandle_t h = nullptr;
  DPT_CUDNN_CHECK(cudnnCreate(&h));
  return CudnnHandle(h);
}
inline CudnnTensorDesc make_tensor_desc() {
  cudnnTensorDescriptor_t d = nullptr;
  DPT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d));
  return CudnnTensorDesc(d);
}
inline CudnnFilterDesc make_filter_desc() {
  cudnnFilterDescriptor_t d = nullptr;
  DPT_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d));
  return CudnnFilterDesc(d);
}
inline CudnnConvDesc make_conv_desc() {
  cudnnConvolutionDescriptor_t d = nullptr;
  DPT_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d));
  return CudnnConvDesc(d);
}
inline CublasLtHandle make_cublaslt_handle() {
  cublasLtHandle_t h = nullptr;
  DPT_CUBLAS_CHECK(cublasLtCreate(&h));
  return CublasLtHandle(h);
}
inline CublasLtMatmulDesc make_matmul_desc(cublasComputeType_t compute, cudaDataType_t scale) {
  cublasLtMatmulDesc_t d = nullptr;
  DPT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&d, compute, scale));
  return CublasLtMatmulDesc(d);
}
// A column-major rows x cols matrix with leading dimension ld (cuBLASLt's default order).
inline CublasLtLayout make_layout(cudaDataType_t type, std::uint64_t rows, std::uint64_t cols,
                                  std::int64_t ld) {
  cublasLtMatrixLayout_t l = nullptr;
  DPT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, type, rows, cols, ld));
  return CublasLtLayout(l);
}
inline CublasLtPreference make_preference() {
  cublasLtMatmulPreference_t p = nullptr;
  DPT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&p));
  return CublasLtPreference(p);
}

}  // namespace dpt::kernels::cuda
