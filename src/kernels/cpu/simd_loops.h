// SPDX-License-Identifier: MIT
// The two pieces of the CPU backend's vectorised elementwise loops (optimizer steps, relu, dropout
// backward, scale, axpy): ISA clones of the loop, and contiguous per-thread ranges around it.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "runtime/simd_clones.h"

// Note [SIMD clones]
// ~~~~~~~~~~~~~~~~~~
// A loop over one contiguous range is compiled for x86-64-v4 (AVX-512), x86-64-v3 (AVX2) and the
// baseline, and the loader picks the widest the CPU has (GCC target_clones, as Note [Exact sum
// dispatch] in runtime/exact_sum.cpp). The project builds with -ffp-contract=off, so an
// FMA-capable clone still rounds each product and sum on its own; selects, products, sums, sqrt
// and division are correctly rounded in every ISA, so every clone gives the bits of the scalar
// math (and of the CUDA kernels over the same *_math.h functions). The clone is a plain function
// called inside the OpenMP region: target_clones does not reach the body of an OpenMP region,
// which GCC outlines into a function of its own. Helpers the loop inlines must be always_inline
// to be compiled inside each clone.
#define DPT_ALWAYS_INLINE inline __attribute__((always_inline))

namespace dpt::kernels::cpu {

// Calls f(begin, end) on contiguous ranges covering [0, n), one per OpenMP thread, or once on
// [0, n) below parallel_min elements (where a parallel region costs more than it saves). Ranges
// start at multiples of 16 elements (a 64-byte line when the buffer is aligned), so no two threads
// write one line. For elementwise loops only: the result cannot depend on the thread count.
template <class F>
void for_thread_ranges(std::int64_t n, std::int64_t parallel_min, const F& f) {
  if (n < parallel_min || omp_get_max_threads() == 1) {
    if (n > 0) f(std::int64_t{0}, n);
    return;
  }
#pragma omp parallel
  {
    const std::int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    const std::int64_t per = ((n + threads - 1) / threads + 15) / 16 * 16;
    const std::int64_t begin = std::min(n, t * per), end = std::min(n, begin + per);
    if (begin < end) f(begin, end);
  }
}

}  // namespace dpt::kernels::cpu
