// SPDX-License-Identifier: MIT
// Max pooling as own kernels with the CPU backend's workspace: one byte per output holding the
// argmax's offset in its window (a * kernel_w + b), first maximum in row-major order wins.
//
// Note [Why not cuDNN pooling]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// (1) The ops.h contract hands the backward a byte workspace of argmax positions; cuDNN's pooling
//     backward wants x and y instead and recomputes the argmax, so it would need the forward's
//     input kept alive, which the contract does not promise. (2) cuDNN's backward scatters with
//     atomics when windows overlap (stride < kernel): not deterministic. (3) Its tie-breaking and
//     NaN handling are not documented; ours are the CPU's, so CPU and GPU agree bitwise, ties
//     included, and a workspace written by one is read the same by the other.
// The backward is a gather: one thread per input element adds, in output order, the dy of every
// window whose argmax is that element (the CPU's scatter adds them in the same order), so
// overlapping windows need no atomics and the sum's order is fixed.
#include <cmath>
#include <cstdint>

#include "kernels/cuda/grid.cuh"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/cuda/launch.h"
#include "kernels/pool_math.h"

namespace dpt::kernels::cuda {
namespace {

// The CPU's fast path (kernels/cpu/pool.cpp, forward_plane_2x2 / backward_plane_2x2): its
// select-based argmax treats NaN differently from the general loop, so it is reproduced as is.
__host__ __device__ bool is_plain_2x2(const PoolShape& s) {
  return s.kh == 2 && s.kw == 2 && s.sh == 2 && s.sw == 2 && s.ph == 0 && s.pw == 0;
}

__global__ void max_pool_forward_kernel(PoolShape s, bool plain_2x2, const float* x, float* y,
                                        std::uint8_t* workspace) {
  const std::int64_t out_plane = s.oh * s.ow, total = s.n * s.c * out_plane;
  for (std::int64_t o = grid_start(); o < total; o += grid_stride()) {
    const std::int64_t plane = o / out_plane, r = o - plane * out_plane;
    const std::int64_t i = r / s.ow, j = r - i * s.ow;
    const float* xp = x + plane * s.h * s.w;
    if (plain_2x2) {
      const float* r0 = xp + 2 * i * s.w;
      const float* r1 = r0 + s.w;
      max_2x2(r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1], &y[o], &workspace[o]);
      continue;
    }
    max_window(xp, i, j, s.h, s.w, s.kh, s.kw, s.sh, s.sw, s.ph, s.pw, &y[o], &workspace[o]);
  }
}

__global__ void max_pool_backward_kernel(PoolShape s, bool plain_2x2, const float* dy,
                                         const std::uint8_t* workspace, float* dx) {
  const std::int64_t in_plane = s.h * s.w, out_plane = s.oh * s.ow;
  const std::int64_t total = s.n * s.c * in_plane;
  for (std::int64_t e = grid_start(); e < total; e += grid_stride()) {
    const std::int64_t plane = e / in_plane, r = e - plane * in_plane;
    const std::int64_t h = r / s.w, w = r - h * s.w;
    const float* dyp = dy + plane * out_plane;
    const std::uint8_t* at = workspace + plane * out_plane;
    if (plain_2x2) {
      // One window per element at most; the CPU assigns (not adds) there, and zero elsewhere.
      const std::int64_t i = h / 2, j = w / 2;
      const int offset = static_cast<int>((h & 1) * 2 + (w & 1));
      dx[e] = i < s.oh && j < s.ow && at[i * s.ow + j] == offset ? dyp[i * s.ow + j] : 0.0f;
      continue;
    }
    // Windows i with i*sh - ph <= h <= i*sh - ph + kh - 1, likewise j; in output order.
    const std::int64_t lo_h = h + s.ph - s.kh + 1, lo_w = w + s.pw - s.kw + 1;
    const std::int64_t i0 = lo_h <= 0 ? 0 : (lo_h + s.sh - 1) / s.sh;
    const std::int64_t j0 = lo_w <= 0 ? 0 : (lo_w + s.sw - 1) / s.sw;
    const std::int64_t i1 = (h + s.ph) / s.sh < s.oh - 1 ? (h + s.ph) / s.sh : s.oh - 1;
    const std::int64_t j1 = (w + s.pw) / s.sw < s.ow - 1 ? (w + s.pw) / s.sw : s.ow - 1;
    float sum = 0.0f;  // the CPU zeroes dx, then adds
    for (std::int64_t i = i0; i <= i1; ++i) {
      const std::int64_t a = h + s.ph - i * s.sh;
      for (std::int64_t j = j0; j <= j1; ++j) {
        const std::int64_t b = w + s.pw - j * s.sw;
        if (at[i * s.ow + j] == a * s.kw + b) sum += dyp[i * s.ow + j];
      }
    }
    dx[e] = sum;
  }
}

}  // namespace

std::size_t max_pool2d_workspace_bytes(const PoolShape& s) {
  return static_cast<std::size_t>(s.n * s.c * s.oh * s.ow);
}

void max_pool2d_forward(const Context& ctx, const PoolShape& s, const float* x, float* y,
                        std::uint8_t* workspace) {
  const std::int64_t total = s.n * s.c * s.oh * s.ow;
  if (total == 0) return;
  max_pool_forward_kernel<<<blocks_for(total), kThreads, 0, stream_of(ctx)>>>(s, is_plain_2x2(s), x,
                                                                              y, workspace);
  DPT_CUDA_CHECK_LAUNCH();
}

void max_pool2d_backward(const Context& ctx, const PoolShape& s, const float* dy,
                         const std::uint8_t* workspace, float* dx) {
  const std::int64_t total = s.n * s.c * s.h * s.w;
  if (total == 0) return;
  max_pool_backward_kernel<<<blocks_for(total), kThreads, 0, stream_of(ctx)>>>(s, is_plain_2x2(s),
                                                                               dy, workspace, dx);
  DPT_CUDA_CHECK_LAUNCH();
}

}  // namespace dpt::kernels::cuda
