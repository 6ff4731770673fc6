// SPDX-License-Identifier: MIT
// Conversions between float and the half-precision formats, and rounding float to them: loops over
// runtime/dtype.h's integer conversions (Note [Half-precision conversions]), in ISA clones (Note
// [SIMD clones]) and per-thread ranges. Integer arithmetic only, so every clone, thread count and
// MXCSR setting gives the same bits, and the CUDA kernels (kernels/cuda/cast.cu) give them too.
#include <cstdint>

#include "kernels/cpu/kernels_cpu.h"
#include "kernels/cpu/simd_loops.h"
#include "runtime/dtype.h"

namespace dpt::kernels::cpu {
namespace {

constexpr std::int64_t kParallelMin = 1 << 16;

DPT_SIMD_CLONES void to_bf16_range(const float* x, BFloat16* y, std::int64_t n) {
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) y[i] = to_bf16(x[i]);
}
DPT_SIMD_CLONES void to_f16_range(const float* x, Float16* y, std::int64_t n) {
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) y[i] = to_f16(x[i]);
}
DPT_SIMD_CLONES void bf16_to_float_range(const BFloat16* x, float* y, std::int64_t n) {
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) y[i] = to_float(x[i]);
}
DPT_SIMD_CLONES void f16_to_float_range(const Float16* x, float* y, std::int64_t n) {
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) y[i] = to_float(x[i]);
}
DPT_SIMD_CLONES void round_bf16_range(const float* x, float* y, std::int64_t n) {
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) y[i] = to_float(to_bf16(x[i]));
}
DPT_SIMD_CLONES void round_f16_range(const float* x, float* y, std::int64_t n) {
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) y[i] = to_float(to_f16(x[i]));
}

}  // namespace

void float_to_half(const float* x, void* y, DType format, std::int64_t n) {
  for_thread_ranges(n, kParallelMin, [&](std::int64_t begin, std::int64_t end) {
    if (format == DType::kBF16) {
      to_bf16_range(x + begin, static_cast<BFloat16*>(y) + begin, end - begin);
    } else {
      to_f16_range(x + begin, static_cast<Float16*>(y) + begin, end - begin);
    }
  });
}

void half_to_float(const void* x, DType format, float* y, std::int64_t n) {
  for_thread_ranges(n, kParallelMin, [&](std::int64_t begin, std::int64_t end) {
    if (format == DType::kBF16) {
      bf16_to_float_range(static_cast<const BFloat16*>(x) + begin, y + begin, end - begin);
    } else {
      f16_to_float_range(static_cast<const Float16*>(x) + begin, y + begin, end - begin);
    }
  });
}

void round_to_format(const float* x, float* y, DType format, std::int64_t n) {
  for_thread_ranges(n, kParallelMin, [&](std::int64_t begin, std::int64_t end) {
    if (format == DType::kBF16) {
      round_bf16_range(x + begin, y + begin, end - begin);
    } else {
      round_f16_range(x + begin, y + begin, end - begin);
    }
  });
}

}  // namespace dpt::kernels::cpu
