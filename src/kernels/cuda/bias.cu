// SPDX-License-Identifier: MIT
// Bias kernels around the library calls: bias + activation after a convolution (and an empty
// GEMM), the bias gradient of Linear (bitwise the CPU's row-order loop) and of Conv2d (a fixed
// per-channel reduction tree). No atomics: each output has one writer, in a fixed order.
#include <cstdint>

#include "kernels/cuda/grid.cuh"
#include "kernels/cuda/launch.h"
#include "kernels/elementwise_math.h"
#include "runtime/check.h"
#include "runtime/dtype.h"

namespace dpt::kernels::cuda {
namespace {

// A gradient value in f32: itself, or a half value widened exactly.
__device__ inline float widen(float v) { return v; }
__device__ inline float widen(BFloat16 v) { return to_float(v); }
__device__ inline float widen(Float16 v) { return to_float(v); }

__global__ void bias_act_kernel(float* y, const float* b, std::int64_t total, std::int64_t c,
                                std::int64_t hw, bool relu) {
  for (std::int64_t i = grid_start(); i < total; i += grid_stride()) {
    float v = y[i];
    if (b != nullptr) v += b[(i / hw) % c];
    y[i] = relu ? ::dpt::kernels::relu(v) : v;
  }
}

// One thread per column j; rows in order, as the CPU loop adds them (coalesced across j).
template <class T>
__global__ void bias_grad_rows_kernel(const T* dy, float* db, std::int64_t n, std::int64_t m,
                                      bool accumulate) {
  for (std::int64_t j = grid_start(); j < m; j += grid_stride()) {
    float sum = accumulate ? db[j] : 0.0f;
    for (std::int64_t i = 0; i < n; ++i) sum += widen(dy[i * m + j]);
    db[j] = sum;
  }
}

// One block of kThreads per channel: thread t sums elements t, t + kThreads, ... of the channel's
// n * hw values in order, then a fixed halving tree in shared memory. The order depends only on
// kThreads (a constant), not on the GPU or the grid.
template <class T>
__global__ void bias_grad_nchw_kernel(const T* dy, float* db, std::int64_t n, std::int64_t c,
                                      std::int64_t hw, bool accumulate) {
  __shared__ float partial[kThreads];
  const std::int64_t count = n * hw;
  for (std::int64_t ch = blockIdx.x; ch < c; ch += gridDim.x) {
    float sum = 0.0f;
    for (std::int64_t e = threadIdx.x; e < count; e += kThreads) {
      const std::int64_t img = e / hw, pos = e - img * hw;
      sum += widen(dy[(img * c + ch) * hw + pos]);
    }
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (int half = kThreads / 2; half > 0; half /= 2) {
      if (static_cast<int>(threadIdx.x) < half) {
        partial[threadIdx.x] += partial[threadIdx.x + half];
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) db[ch] = accumulate ? db[ch] + partial[0] : partial[0];
    __syncthreads();  // partial[] is reused by the next channel of this block
  }
}

// Calls launch(p) with dy as a pointer to its element type.
template <class Launch>
void with_element_type(const void* dy, DType format, Launch&& launch) {
  switch (format) {
    case DType::kF32:
      launch(static_cast<const float*>(dy));
      return;
    case DType::kBF16:
      launch(static_cast<const BFloat16*>(dy));
      return;
    case DType::kF16:
      launch(static_cast<const Float16*>(dy));
      return;
    default:
      DPT_ASSERT(false && "bias gradient of a non-float dy");
  }
}

}  // namespace

void bias_act_nchw(cudaStream_t stream, float* y, const float* b, std::int64_t n, std::int64_t c,
                   std::int64_t hw, bool relu) {
  const std::int64_t total = n * c * hw;
  if (total == 0 || (b == nullptr && !relu)) return;
  bias_act_kernel<<<blocks_for(total), kThreads, 0, stream>>>(y, b, total, c, hw, relu);
  DPT_CUDA_CHECK_LAUNCH();
}

void bias_grad_rows(cudaStream_t stream, const void* dy, DType format, float* db, std::int64_t n,
                    std::int64_t m, bool accumulate) {
  if (m == 0) return;
  with_element_type(dy, format, [&](const auto* values) {
    bias_grad_rows_kernel<<<blocks_for(m), kThreads, 0, stream>>>(values, db, n, m, accumulate);
  });
  DPT_CUDA_CHECK_LAUNCH();
}

void bias_grad_nchw(cudaStream_t stream, const void* dy, DType format, float* db, std::int64_t n,
                    std::int64_t c, std::int64_t hw, bool accumulate) {
  if (c == 0) return;
  const auto blocks = static_cast<unsigned>(c < kMaxBlocks ? c : kMaxBlocks);
  with_element_type(dy, format, [&](const auto* values) {
    bias_grad_nchw_kernel<<<blocks, kThreads, 0, stream>>>(values, db, n, c, hw, accumulate);
  });
  DPT_CUDA_CHECK_LAUNCH();
}

}  // namespace dpt::kernels::cuda
