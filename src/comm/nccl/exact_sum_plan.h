// SPDX-License-Identifier: MIT
// What the exact sum on the GPU (Note [Exact sum on the GPU] in exact_sum_kernels.cu) computes
// outside NCCL, in plain C++ so that the CPU tests run it: the blocks of the padded
// reduce-scatter, the layout of the one scratch allocation, the shard groups of the launches, and
// the per-element work of the kernels (DPT_HOST_DEVICE: the kernels call these very functions).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "runtime/exact_sum.h"
#include "runtime/host_device.h"

namespace dpt::comm::nccl {

// One exact sum of `count` values (count > 0) in `chunks` chunks on rank `rank` of `world`:
// - ncclReduceScatter and ncclAllGather move equal blocks, so the integer sums are padded with
//   zeros to `padded` = world * block values, block = ceil(count / world); this rank converts
//   [first(), first() + block) of them, of which own() are real values (0 for a rank whose block
//   lies wholly in the padding, e.g. count 1 on 2 ranks);
// - one device scratch allocation holds, at these byte offsets (each 256-byte aligned, as
//   cudaMalloc aligns allocations): the chunk codes (int32), the padded integer sums (int64) and,
//   unless padded == count (the floats are then gathered straight into the output), the padded
//   float result. (The chunk starts are kept apart, per layout; the shard pointers are kernel
//   arguments.)
struct ExactSumPlan {
  std::int64_t count = 0;
  std::int64_t block = 0;
  std::int64_t padded = 0;
  int rank = 0;
  bool gather_into_out = false;

  std::size_t codes_offset = 0;
  std::size_t sums_offset = 0;
  std::size_t floats_offset = 0;  // == bytes when gather_into_out (no float scratch)
  std::size_t bytes = 0;          // the scratch size

  std::int64_t first() const { return block * rank; }
  std::int64_t own() const {
    const std::int64_t left = count - first();
    return left <= 0 ? 0 : (left < block ? left : block);
  }
};

inline constexpr std::size_t kScratchAlignment = 256;

// The plan; throws kInvalidArgument for a count outside [1, 2^56], chunks outside [1, count] or a
// rank outside the world.
ExactSumPlan plan_exact_sum(std::int64_t count, std::int64_t chunks, int rank, int world);

// Shard pointers travel as kernel arguments (no host-to-device copy per call), at most
// kShardsPerLaunch per launch: 512 bytes of the 4 KiB a kernel's arguments may take.
inline constexpr int kShardsPerLaunch = 64;
struct ShardGroup {
  const float* data[kShardsPerLaunch];
  int count;
};

// Calls launch(group, first_group) for consecutive groups of `shards`, at least once (an empty
// group when there are no shards, so that codes and sums are still written). A later group adds
// to the integers of the first or raises its codes: both order-free, so the grouping changes no
// bit of the result.
template <typename Launch>
void for_each_shard_group(std::span<const float* const> shards, Launch&& launch) {
  std::size_t next = 0;
  bool first_group = true;
  do {
    ShardGroup group{};
    while (next < shards.size() && group.count < kShardsPerLaunch) {
      group.data[group.count++] = shards[next++];
    }
    launch(group, first_group);
    first_group = false;
  } while (next < shards.size());
}

// The chunk of element i (0 <= i): the last c with starts[c] <= i, for ascending starts beginning
// with 0 (exact::check_chunks). A binary search: log2(chunks) reads, the same ones for neighbouring
// threads, so a warp reads mostly one cached line.
DPT_HOST_DEVICE std::int64_t chunk_index(const std::int64_t* starts, std::int64_t chunks,
                                         std::int64_t i) {
  std::int64_t low = 0, high = chunks - 1;
  while (low < high) {
    const std::int64_t middle = low + (high - low + 1) / 2;
    if (starts[middle] <= i) {
      low = middle;
    } else {
      high = middle - 1;
    }
  }
  return low;
}

// 2^e for -1022 <= e <= 1023, from its bits: std::ldexp(1.0, e), which exact_sum.cpp uses, without
// relying on a device ldexp. Scale exponents F = 51 - headroom - code lie in [-97, 177]
// (headroom <= 20, finite codes in [-126, 128]).
DPT_HOST_DEVICE double power_of_two(int e) {
  const std::uint64_t bits = static_cast<std::uint64_t>(e + 1023) << 52;
  double result;
  std::memcpy(&result, &bits, sizeof result);
  return result;
}

// The code of the chunk whose largest magnitude bits (|x| as uint32, the sign cleared) are
// `widest`. exact::chunk_codes takes the largest value_code per shard; value_code is monotone in
// the magnitude bits (zero < subnormal < normal by exponent < Inf and NaN), so the code of the
// widest bits over every shard is the same maximum.
DPT_HOST_DEVICE std::int32_t code_of_widest(std::uint32_t widest) {
  float largest;
  std::memcpy(&largest, &widest, sizeof largest);
  return exact::value_code(largest);
}

// Element i's integer over shards[0, n) for its chunk's reduced code: one element of
// exact::quantize_sum.
DPT_HOST_DEVICE std::int64_t element_sum(const float* const* shards, int n, std::int64_t i,
                                         std::int32_t code, int headroom) {
  std::int64_t sum = 0;
  if (code == exact::kNonFiniteCode) {
    for (int s = 0; s < n; ++s) sum += exact::nonfinite_count(shards[s][i]);
  } else if (code != exact::kZeroCode) {
    const double scale = power_of_two(exact::scale_exponent(code, headroom));
    for (int s = 0; s < n; ++s) sum += exact::quantize(shards[s][i], scale);
  }
  return sum;
}

// The float of an element's reduced integer: one element of exact::dequantize_range.
DPT_HOST_DEVICE float element_result(std::int64_t sum, std::int32_t code, int headroom) {
  if (code == exact::kZeroCode) return 0.0f;
  if (code == exact::kNonFiniteCode) return exact::nonfinite_result(sum);
  return exact::dequantize(sum, power_of_two(-exact::scale_exponent(code, headroom)));
}

}  // namespace dpt::comm::nccl
