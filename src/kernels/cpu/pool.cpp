// SPDX-License-Identifier: MIT
// Max pooling forward/backward on the user's NCHW layout, as OpenMP loops over (n, c) planes.
// Why not oneDNN: 2.6 has no vectorised NCHW max pooling (it picks `simple_nchw`, ~20x slower
// than this loop on the cnn's 128x32x28x28 layer), and reordering to nChw8c and back costs more
// than the pooling itself. The workspace holds, per output, the argmax's offset in its window
// (a * kernel_w + b) as one byte.
#include <limits>

#include "kernels/cpu/kernels_cpu.h"

namespace dpt::kernels::cpu {
namespace {
// Planes are independent; below this many outputs a parallel region costs more than it saves.
constexpr std::int64_t kParallelMin = 1 << 14;
}  // namespace

std::size_t max_pool2d_workspace_bytes(const PoolShape& s) {
  return static_cast<std::size_t>(s.n * s.c * s.oh * s.ow);
}

void max_pool2d_forward(const PoolShape& s, const float* x, float* y, std::uint8_t* workspace) {
  const std::int64_t planes = s.n * s.c, in_plane = s.h * s.w, out_plane = s.oh * s.ow;
  const bool fast_2x2 = s.kh == 2 && s.kw == 2 && s.sh == 2 && s.sw == 2 && s.ph == 0 && s.pw == 0;
#pragma omp parallel for schedule(static) if (planes * out_plane >= kParallelMin)
  for (std::int64_t pl = 0; pl < planes; ++pl) {
    const float* xp = x + pl * in_plane;
    float* yp = y + pl * out_plane;
    std::uint8_t* wp = workspace + pl * out_plane;
    if (fast_2x2) {
      // The cnn's case: no padding, every window fully inside. Ties keep the first (row-major).
      for (std::int64_t i = 0; i < s.oh; ++i) {
        const float* r0 = xp + 2 * i * s.w;
        const float* r1 = r0 + s.w;
        for (std::int64_t j = 0; j < s.ow; ++j) {
          const float v0 = r0[2 * j], v1 = r0[2 * j + 1], v2 = r1[2 * j], v3 = r1[2 * j + 1];
          // Branch-free (random data would mispredict every other branch).
          const bool c01 = v1 > v0, c23 = v3 > v2;
          const float m01 = c01 ? v1 : v0, m23 = c23 ? v3 : v2;
          const bool c = m23 > m01;
          const float best = c ? m23 : m01;
          const auto at = static_cast<std::uint8_t>(c ? 2 + c23 : c01);
          yp[i * s.ow + j] = best;
          wp[i * s.ow + j] = at;
        }
      }
      continue;
    }
    for (std::int64_t i = 0; i < s.oh; ++i) {
      for (std::int64_t j = 0; j < s.ow; ++j) {
        float best = -std::numeric_limits<float>::infinity();
        std::int64_t at = -1;
        for (std::int64_t a = 0; a < s.kh; ++a) {
          const std::int64_t h = i * s.sh - s.ph + a;
          if (h < 0 || h >= s.h) continue;
          for (std::int64_t b = 0; b < s.kw; ++b) {
            const std::int64_t w = j * s.sw - s.pw + b;
            if (w < 0 || w >= s.w) continue;
            // at < 0: the first in-bounds value wins even if it is -inf or NaN.
            if (at < 0 || xp[h * s.w + w] > best) {
              best = xp[h * s.w + w];
              at = a * s.kw + b;
            }
          }
        }
        yp[i * s.ow + j] = best;
        wp[i * s.ow + j] = static_cast<std::uint8_t>(at);
      }
    }
  }
}

void max_pool2d_backward(const PoolShape& s, const float* dy, const std::uint8_t* workspace,
                         float* dx) {
  const std::int64_t planes = s.n * s.c, in_plane = s.h * s.w, out_plane = s.oh * s.ow;
#pragma omp parallel for schedule(static) if (planes * in_plane >= kParallelMin)
  for (std::int64_t pl = 0; pl < planes; ++pl) {
    float* dxp = dx + pl * in_plane;
    const float* dyp = dy + pl * out_plane;
    const std::uint8_t* wp = workspace + pl * out_plane;
    if (s.kh == 2 && s.kw == 2 && s.sh == 2 && s.sw == 2 && s.ph == 0 && s.pw == 0) {
      // Disjoint windows: write each 2x2 block once instead of zeroing then scattering; rows
      // and columns past the last window (odd sizes) get zeros.
      for (std::int64_t i = 0; i < s.oh; ++i) {
        float* r0 = dxp + 2 * i * s.w;
        float* r1 = r0 + s.w;
        for (std::int64_t j = 0; j < s.ow; ++j) {
          const std::uint8_t at = wp[i * s.ow + j];
          const float g = dyp[i * s.ow + j];
          r0[2 * j] = at == 0 ? g : 0.0f;
          r0[2 * j + 1] = at == 1 ? g : 0.0f;
          r1[2 * j] = at == 2 ? g : 0.0f;
          r1[2 * j + 1] = at == 3 ? g : 0.0f;
        }
        for (std::int64_t w = 2 * s.ow; w < s.w; ++w) r0[w] = r1[w] = 0.0f;
      }
      for (std::int64_t k = 2 * s.oh * s.w; k < in_plane; ++k) dxp[k] = 0.0f;
      continue;
    }
    for (std::int64_t k = 0; k < in_plane; ++k) dxp[k] = 0.0f;
    // Windows may overlap (stride < kernel): gradients add, in output order.
    for (std::int64_t i = 0; i < s.oh; ++i) {
      for (std::int64_t j = 0; j < s.ow; ++j) {
        const std::int64_t a = wp[i * s.ow + j] / s.kw, b = wp[i * s.ow + j] % s.kw;
        dxp[(i * s.sh - s.ph + a) * s.w + (j * s.sw - s.pw + b)] += dyp[i * s.ow + j];
      }
    }
  }
}

}  // namespace dpt::kernels::cpu
