// SPDX-License-Identifier: MIT
// exp for float written out in plain arithmetic, so that a loop calling it vectorises (glibc's
// expf is a scalar call unless the whole build is -ffast-math) and every backend and vector width
// computes the same bits (the build has -ffp-contract=off: no fused multiply-adds).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "runtime/host_device.h"

namespace dpt::kernels {

// Note [Exp by polynomial]
// ~~~~~~~~~~~~~~~~~~~~~~~~
// Cephes' expf: x = n ln2 + r with n = round(x / ln2) and r in [-ln2/2, ln2/2] (ln2 split in two
// parts, Cody-Waite, so that n * ln2 is exact enough), exp(r) by a degree-7 polynomial, times 2^n
// built from its exponent bits. Measured over [-87, 88] against the double-precision exp: at most
// 2 ulp (2.4e-7 relative; glibc's expf is within 1 ulp). x is clamped to [-87.3, 88.7] first:
// above, 2^128 is +inf (as expf overflows); below, the result is 2^-126 * exp(r) instead of a
// subnormal or 0, a difference of at most 1.2e-38. NaN stays NaN.
DPT_HOST_DEVICE float exp_float(float x) {
  constexpr float kHigh = 88.72283935546875f;
  constexpr float kLow = -87.33654022216797f;
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2High = 0.693359375f;
  constexpr float kLn2Low = -2.12194440e-4f;
  x = x > kHigh ? kHigh : x;
  x = x < kLow ? kLow : x;
  // n = x / ln2 rounded to the nearest integer by the magic-number addition (1.5 * 2^23: the sum's
  // last place is 1), not std::floor, which is a library call that stops vectorisation.
  constexpr float kRound = 12582912.0f;
  float n = (x * kLog2e + kRound) - kRound;
  n = n == n ? n : 0.0f;  // NaN: p below is NaN anyway; converting NaN to int would be undefined
  float r = x - n * kLn2High;
  r = r - n * kLn2Low;
  const float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  const std::int32_t bits = (static_cast<std::int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

}  // namespace dpt::kernels
