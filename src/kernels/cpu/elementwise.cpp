// SPDX-License-Identifier: MIT
// OpenMP loops over the shared math of kernels/elementwise_math.h: relu, dropout, scale, axpy and
// the fixed-order sum of squares used for the global gradient norm.
#include "kernels/cpu/kernels_cpu.h"
#include "kernels/cpu/simd_loops.h"
#include "kernels/elementwise_math.h"

namespace dpt::kernels::cpu {
namespace {
// Below this many elements a parallel region costs more than it saves.
constexpr std::int64_t kParallelMin = 1 << 15;
// sum_squares works on fixed chunks so its result does not depend on the thread count.
constexpr std::int64_t kSumChunk = 4096;
// Chunk sums formed per parallel region (4 KiB of stack; 2 M elements).
constexpr std::int64_t kSumBlock = 512;
}  // namespace

namespace {
// The loops of one thread's range, in ISA clones (Note [SIMD clones] in cpu/simd_loops.h).
DPT_SIMD_CLONES void relu_forward_range(const float* x, float* y, std::int64_t n) {
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) y[i] = relu(x[i]);
}
DPT_SIMD_CLONES void relu_backward_range(const float* y, const float* dy, float* dx,
                                         std::int64_t n) {
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) dx[i] = relu_grad(y[i], dy[i]);
}
DPT_SIMD_CLONES void multiply_range(const float* a, const float* b, float* out, std::int64_t n) {
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) out[i] = a[i] * b[i];
}
DPT_SIMD_CLONES void scale_range(float* y, float alpha, std::int64_t n) {
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) y[i] *= alpha;
}
DPT_SIMD_CLONES void axpy_range(float alpha, const float* x, float* y, std::int64_t n) {
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}
}  // namespace

void relu_forward(const float* x, float* y, std::int64_t n) {
  for_thread_ranges(n, kParallelMin, [&](std::int64_t begin, std::int64_t end) {
    relu_forward_range(x + begin, y + begin, end - begin);
  });
}

void relu_backward(const float* y, const float* dy, float* dx, std::int64_t n) {
  for_thread_ranges(n, kParallelMin, [&](std::int64_t begin, std::int64_t end) {
    relu_backward_range(y + begin, dy + begin, dx + begin, end - begin);
  });
}

void dropout_forward(const float* x, float* y, float* mask, std::int64_t samples,
                     std::int64_t per_sample, float p, const DropoutKey& key) {
  const float keep_scale = 1.0f / (1.0f - p);
  const std::int64_t blocks = (per_sample + 3) / 4;
#pragma omp parallel for collapse(2) schedule(static) if (samples * per_sample >= kParallelMin)
  for (std::int64_t s = 0; s < samples; ++s) {
    for (std::int64_t blk = 0; blk < blocks; ++blk) {
      dropout_block(x, y, mask, s, blk, per_sample, p, keep_scale, key.seed, key.step, key.layer,
                    key.first_sample);
    }
  }
}

void dropout_backward(const float* dy, const float* mask, float* dx, std::int64_t n) {
  for_thread_ranges(n, kParallelMin, [&](std::int64_t begin, std::int64_t end) {
    multiply_range(dy + begin, mask + begin, dx + begin, end - begin);
  });
}

void scale(float* y, float alpha, std::int64_t n) {
  for_thread_ranges(n, kParallelMin, [&](std::int64_t begin, std::int64_t end) {
    scale_range(y + begin, alpha, end - begin);
  });
}

void axpy(float alpha, const float* x, float* y, std::int64_t n) {
  for_thread_ranges(n, kParallelMin, [&](std::int64_t begin, std::int64_t end) {
    axpy_range(alpha, x + begin, y + begin, end - begin);
  });
}

namespace {
// One chunk's sum of squares. Eight fixed lanes (element i goes to lane i % 8) let the compiler
// vectorise while the order of additions stays a function of the chunk's length only.
double chunk_sum_squares(const float* x, std::int64_t begin, std::int64_t end) {
  double lane[8] = {};
  std::int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    for (int l = 0; l < 8; ++l) {
      const double v = x[i + l];
      lane[l] += v * v;
    }
  }
  for (int l = 0; i < end; ++i, ++l) {
    const double v = x[i];
    lane[l] += v * v;
  }
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

// Chunk sums [first, first + count) of x[0, n) into out[0, count).
void chunk_sums(const float* x, std::int64_t n, std::int64_t first, std::int64_t count,
                double* out) {
#pragma omp parallel for schedule(static) if (count * kSumChunk >= kParallelMin)
  for (std::int64_t c = 0; c < count; ++c) {
    const std::int64_t begin = (first + c) * kSumChunk;
    out[c] = chunk_sum_squares(x, begin, begin + kSumChunk < n ? begin + kSumChunk : n);
  }
}
}  // namespace

static_assert(kSumChunk == kSumSquaresChunk, "the chunk ops.h promises");

double sum_squares(const float* x, std::int64_t n) {
  const std::int64_t chunks = (n + kSumChunk - 1) / kSumChunk;
  // The chunk sums are added in index order. They are formed kSumBlock chunks at a time into a
  // fixed array on the stack, so that the call allocates nothing (it runs every step when
  // gradients are clipped) and the order of additions stays that of one pass over all chunks.
  double total = 0.0;
  for (std::int64_t first = 0; first < chunks; first += kSumBlock) {
    const std::int64_t count = chunks - first < kSumBlock ? chunks - first : kSumBlock;
    double partial[kSumBlock];
    chunk_sums(x, n, first, count, partial);
    for (std::int64_t c = 0; c < count; ++c) total += partial[c];  // chunk sums in index order
  }
  return total;
}

void sum_squares_chunks(const float* x, std::int64_t n, double* out) {
  chunk_sums(x, n, 0, (n + kSumChunk - 1) / kSumChunk, out);
}

}  // namespace dpt::kernels::cpu
