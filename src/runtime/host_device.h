// SPDX-License-Identifier: MIT
// DPT_HOST_DEVICE marks math written once and compiled for both the CPU loops and CUDA kernels.
#pragma once

#if defined(__CUDACC__)
#define DPT_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define DPT_HOST_DEVICE inline
#endif
