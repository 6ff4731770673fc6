// SPDX-License-Identifier: MIT
// Conversions between float and the half-precision formats, and rounding float to them, over
// runtime/dtype.h's integer conversions: the CPU backend's bits (kernels/cpu/cast.cpp), not the
// CUDA intrinsics' (whose NaN is canonical, not the input's).
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/grid.cuh"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/cuda/launch.h"
#include "runtime/check.h"
#include "runtime/dtype.h"

namespace dpt::kernels::cuda {
namespace {

template <class Half>
__global__ void to_half_kernel(const float* x, Half* y, std::int64_t n) {
  for (std::int64_t i = grid_start(); i < n; i += grid_stride()) {
    if constexpr (std::is_same_v<Half, BFloat16>) {
      y[i] = to_bf16(x[i]);
    } else {
      y[i] = to_f16(x[i]);
    }
  }
}

template <class Half>
__global__ void widen_into_kernel(const Half* x, float* y, std::int64_t n, bool accumulate) {
  for (std::int64_t i = grid_start(); i < n; i += grid_stride()) {
    const float v = to_float(x[i]);
    y[i] = accumulate ? y[i] + v : v;
  }
}

__global__ void round_bf16_kernel(const float* x, float* y, std::int64_t n) {
  for (std::int64_t i = grid_start(); i < n; i += grid_stride()) y[i] = to_float(to_bf16(x[i]));
}

__global__ void round_f16_kernel(const float* x, float* y, std::int64_t n) {
  for (std::int64_t i = grid_start(); i < n; i += grid_stride()) y[i] = to_float(to_f16(x[i]));
}

}  // namespace

void float_to_half(const Context& ctx, const float* x, void* y, DType format, std::int64_t n) {
  if (n == 0) return;
  if (format == DType::kBF16) {
    to_half_kernel<<<blocks_for(n), kThreads, 0, stream_of(ctx)>>>(x, static_cast<BFloat16*>(y), n);
  } else {
    to_half_kernel<<<blocks_for(n), kThreads, 0, stream_of(ctx)>>>(x, static_cast<Float16*>(y), n);
  }
  DPT_CUDA_CHECK_LAUNCH();
}

void half_to_float(const Context& ctx, const void* x, DType format, float* y, std::int64_t n) {
  widen_into(ctx, x, format, y, n, /*accumulate=*/false);
}

void widen_into(const Context& ctx, const void* x, DType format, float* y, std::int64_t n,
                bool accumulate) {
  if (n == 0) return;
  DPT_CHECK(format == DType::kBF16 || format == DType::kF16,
            "widen_into: the source must be bf16 or f16, found ", to_string(format));
  const cudaStream_t stream = stream_of(ctx);
  if (format == DType::kBF16) {
    widen_into_kernel<<<blocks_for(n), kThreads, 0, stream>>>(static_cast<const BFloat16*>(x), y, n,
                                                              accumulate);
  } else {
    widen_into_kernel<<<blocks_for(n), kThreads, 0, stream>>>(static_cast<const Float16*>(x), y, n,
                                                              accumulate);
  }
  DPT_CUDA_CHECK_LAUNCH();
}

void round_to_format(const Context& ctx, const float* x, float* y, DType format, std::int64_t n) {
  if (n == 0) return;
  if (format == DType::kBF16) {
    round_bf16_kernel<<<blocks_for(n), kThreads, 0, stream_of(ctx)>>>(x, y, n);
  } else {
    round_f16_kernel<<<blocks_for(n), kThreads, 0, stream_of(ctx)>>>(x, y, n);
  }
  DPT_CUDA_CHECK_LAUNCH();
}

}  // namespace dpt::kernels::cuda
