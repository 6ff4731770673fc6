// SPDX-License-Identifier: MIT
// OpenMP loops over kernels/integrity_math.h: the first non-finite value of a buffer (the gradient
// check of each bucket before its all-reduce) and the parameter hash of the desync check.
#include <atomic>
#include <vector>

#include "kernels/cpu/kernels_cpu.h"
#include "kernels/cpu/simd_loops.h"
#include "kernels/integrity_math.h"

namespace dpt::kernels::cpu {
namespace {
// Below this many elements a parallel region costs more than it saves.
constexpr std::int64_t kParallelMin = 1 << 15;
// The scan tests blocks of this many values with a vectorised OR (no early exit inside a block),
// and looks for the index only inside a block that holds one.
constexpr std::int64_t kScanBlock = 2048;

DPT_SIMD_CLONES bool any_nonfinite(const float* x, std::int64_t n) {
  std::uint32_t any = 0;
#pragma omp simd reduction(| : any)
  for (std::int64_t i = 0; i < n; ++i) any |= is_nonfinite_bits(float_bits(x[i])) ? 1u : 0u;
  return any != 0;
}

// The first non-finite index of x[0, n), or n.
std::int64_t first_nonfinite_range(const float* x, std::int64_t n) {
  for (std::int64_t begin = 0; begin < n; begin += kScanBlock) {
    const std::int64_t count = n - begin < kScanBlock ? n - begin : kScanBlock;
    if (!any_nonfinite(x + begin, count)) continue;
    for (std::int64_t i = begin; i < begin + count; ++i) {
      if (is_nonfinite_bits(float_bits(x[i]))) return i;
    }
  }
  return n;
}

DPT_SIMD_CLONES std::uint64_t hash_one_chunk(const float* x, std::int64_t n) {
  return hash_chunk(x, n);
}
}  // namespace

std::int64_t first_nonfinite(const float* x, std::int64_t n) {
  std::atomic<std::int64_t> first{n};
  for_thread_ranges(n, kParallelMin, [&](std::int64_t begin, std::int64_t end) {
    const std::int64_t found = begin + first_nonfinite_range(x + begin, end - begin);
    if (found == end) return;
    std::int64_t seen = first.load(std::memory_order_relaxed);
    while (found < seen && !first.compare_exchange_weak(seen, found, std::memory_order_relaxed)) {
    }
  });
  return first.load(std::memory_order_relaxed);
}

std::int64_t first_nonfinite_serial(const float* x, std::int64_t n) {
  return first_nonfinite_range(x, n);
}

std::uint64_t hash_bits(const float* x, std::int64_t n) {
  const std::int64_t chunks = (n + kHashChunk - 1) / kHashChunk;
  std::vector<std::uint64_t> chunk_hashes(static_cast<std::size_t>(chunks));
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t begin = c * kHashChunk;
    const std::int64_t count = n - begin < kHashChunk ? n - begin : kHashChunk;
    chunk_hashes[static_cast<std::size_t>(c)] = hash_one_chunk(x + begin, count);
  }
  return hash_chunks(chunk_hashes.data(), chunks, n);
}

}  // namespace dpt::kernels::cpu
