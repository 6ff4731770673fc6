// SPDX-License-Identifier: MIT
// Launch helpers of the backend's .cu files: a fixed block size, a capped grid walked with
// grid-stride loops (so any element count works with 32-bit grid dimensions), and the launch check.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "runtime/cuda/cuda_check.h"

namespace dpt::kernels::cuda {

constexpr int kThreads = 256;
// 2^16 blocks of 256 threads (16.7M threads) saturate any current GPU; beyond that each thread
// takes several elements through the grid-stride loop.
constexpr std::int64_t kMaxBlocks = 1 << 16;

// Blocks for `work` items of one thread each (at least 1, so a launch is always valid).
inline unsigned blocks_for(std::int64_t work) {
  const std::int64_t blocks = (work + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > kMaxBlocks ? kMaxBlocks : blocks));
}

// First item and stride of a grid-stride loop, in 64 bits (blockIdx.x * blockDim.x overflows 32).
__device__ __forceinline__ std::int64_t grid_start() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ std::int64_t grid_stride() {
  return static_cast<std::int64_t>(gridDim.x) * blockDim.x;
}

}  // namespace dpt::kernels::cuda

// After every <<<...>>>: a bad configuration shows up here, named; a fault inside the kernel
// surfaces at the next synchronising call. (DESIGN.md plans this macro in cuda_check.h; this one
// steps aside once it is there.)
#ifndef DPT_CUDA_CHECK_LAUNCH
#define DPT_CUDA_CHECK_LAUNCH() DPT_CUDA_CHECK(cudaGetLastError())
#endif
