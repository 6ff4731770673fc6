// SPDX-License-Identifier: MIT
// Max pooling of one window, written once as DPT_HOST_DEVICE functions for the CPU loops
// (cpu/pool.cpp) and the CUDA kernels (cuda/pool.cu): both write the same maxima and the same
// argmax bytes (the workspace format of ops.h: a * kernel_w + b), ties and NaN included.
#pragma once

#include <cmath>
#include <cstdint>

#include "runtime/host_device.h"

namespace dpt::kernels {

// The 2x2 window v0 v1 / v2 v3 (stride 2, no padding): its maximum into *y, its argmax (0..3)
// into *arg; ties keep the first in row-major order. Selects, no branches (Note [Pooling loops]
// in cpu/pool.cpp); a NaN falls where the selects put it, not as in max_window().
DPT_HOST_DEVICE void max_2x2(float v0, float v1, float v2, float v3, float* y,
                             std::uint8_t* arg) {
  const float m01 = v1 > v0 ? v1 : v0, m23 = v3 > v2 ? v3 : v2;
  *y = m23 > m01 ? m23 : m01;
  // The argmax as arithmetic on 0/1 flags (a nested select defeats if-conversion).
  const int c01 = v1 > v0, c23 = v3 > v2, c = m23 > m01;
  *arg = static_cast<std::uint8_t>(c01 + c * (2 + c23 - c01));
}

// The window of output (i, j) over an h x w plane, kernel kh x kw, stride sh x sw, padding
// ph x pw: its maximum into *y, its argmax into *arg. The first in-bounds value wins even if it
// is -inf or NaN; later ones only when greater. Sizes come as values (Note [Pooling loops]).
DPT_HOST_DEVICE void max_window(const float* x, std::int64_t i, std::int64_t j, std::int64_t h,
                                std::int64_t w, std::int64_t kh, std::int64_t kw,
                                std::int64_t sh, std::int64_t sw, std::int64_t ph,
                                std::int64_t pw, float* y, std::uint8_t* arg) {
  float best = -INFINITY;
  std::int64_t best_at = -1;
  for (std::int64_t a = 0; a < kh; ++a) {
    const std::int64_t r = i * sh - ph + a;
    if (r < 0 || r >= h) continue;
    for (std::int64_t b = 0; b < kw; ++b) {
      const std::int64_t c = j * sw - pw + b;
      if (c < 0 || c >= w) continue;
      const float v = x[r * w + c];
      if (best_at < 0 || v > best) {
        best = v;
        best_at = a * kw + b;
      }
    }
  }
  *y = best;
  *arg = static_cast<std::uint8_t>(best_at);
}

}  // namespace dpt::kernels
