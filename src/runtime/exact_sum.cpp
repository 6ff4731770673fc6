// SPDX-License-Identifier: MIT
// Host loops of the exact gradient sum.
#include "runtime/exact_sum.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "runtime/check.h"
#include "runtime/simd_clones.h"

namespace dpt::exact {

// Note [Exact gradient sum]
// ~~~~~~~~~~~~~~~~~~~~~~~~~
// A float sum depends on the order of its additions, and an all-reduce's order depends on the
// number of ranks (ring, tree, recursive halving), so N-rank gradients differ from 1-rank ones in
// their last bits, and those differences grow over steps. Integers add associatively. So in exact
// mode each micro-shard's gradient is converted to 64-bit fixed point and the integers are summed:
// any partition of the shards among ranks, any order and any collective algorithm (MPI's, NCCL's)
// gives the same integer, which becomes one float at the end, the same on every rank.
//
// Fixed point needs a common scale. The flat gradient is cut into chunks (256 values of one
// parameter, Note [Exact sum chunks] in data_parallel.cpp); a chunk's exponent code E is the
// smallest integer with |g| < 2^E over all of its values in every shard of the step (one
// MAX-reduction of int32 codes), and each value becomes round(g * 2^F), F = 51 - h - E, where
// h = ceil(log2(total shards)). Every quantised value is then below 2^(51 - h) in magnitude and
// the sum of all shards below 2^51, so nothing overflows, rounding to an integer is one double
// addition (the 1.5 * 2^52 trick, vectorisable, round-half-even on every IEEE machine), and the
// sum converts back to double exactly: the result is the float nearest to the sum of the rounded
// values. Everything is a function of the shards' values and the total shard count only.
//
// Precision: each value is rounded to a multiple of 2^(E - 51 + h), i.e. relative to the largest
// magnitude in its chunk, to 2^-(51 - h) (2^-45 for 64 shards). A value at or near the chunk's
// maximum therefore sums far more accurately than a float sum (whose error grows with the shard
// count); a value 2^-k of its chunk's maximum keeps about 51 - h - k bits, float precision down
// to k = 21 at 64 shards. Zeros stay exactly zero (the sum of -0 and -0 is +0).
//
// NaN and infinities must not vanish. A chunk holding one gets kNonFiniteCode (INT32_MAX, so the
// MAX-reduction spreads it); its values are then counted instead of summed (NaN, +Inf and -Inf in
// three 21-bit fields of the integer) and each element comes out as the IEEE sum of its
// non-finite values (NaN for NaN or +Inf + -Inf), and NaN where all were finite: the sum of the
// chunk is unknown, and a NaN gradient is what the training loop and the optimizer must see.

void check_chunks(const char* what, std::int64_t count, std::span<const std::int64_t> starts,
                  std::int64_t total_shards, std::int64_t local_shards) {
  DPT_CHECK(count >= 0, what, ": count ", count, " is negative");
  DPT_CHECK(total_shards >= 1 && total_shards <= kMaxShards, what, ": ", total_shards,
            " shards in all; the exact sum takes 1 to ", kMaxShards);
  DPT_CHECK(local_shards >= 1 && local_shards <= total_shards, what, ": ", local_shards,
            " shard(s) on this rank of ", total_shards, " in all");
  DPT_CHECK(count == 0 || (!starts.empty() && starts[0] == 0), what,
            ": the chunk starts must begin with 0");
  for (std::size_t c = 1; c < starts.size(); ++c) {
    DPT_CHECK(starts[c] > starts[c - 1] && starts[c] < count, what, ": chunk start ", starts[c],
              " (chunk ", c, ") is not ascending inside [0, ", count, ")");
  }
}

// Note [Exact sum dispatch]
// ~~~~~~~~~~~~~~~~~~~~~~~~~
// These loops run on the communication thread over every gradient a step (a few GB/s of
// traffic), so they are compiled for x86-64-v4 (AVX-512 with DQ: int64 <-> double in vectors),
// x86-64-v3 (AVX2) and the baseline, and the loader picks the widest the CPU has (GCC
// target_clones). The arithmetic is exact or correctly rounded IEEE
// (a product by a power of two, one addition, one conversion), so every clone gives the same bits.

namespace {
std::int64_t chunk_end(std::span<const std::int64_t> starts, std::size_t c, std::int64_t count) {
  return c + 1 < starts.size() ? starts[c + 1] : count;
}
}  // namespace

DPT_SIMD_CLONES void chunk_codes(std::span<const float* const> shards, std::int64_t count,
                 std::span<const std::int64_t> starts, std::int32_t* codes) {
  for (std::size_t c = 0; c < starts.size(); ++c) {
    const std::int64_t begin = starts[c], end = chunk_end(starts, c, count);
    std::int32_t code = kZeroCode;
    for (const float* shard : shards) {
      // The largest biased exponent field decides the code; NaN and Inf have the largest field.
      std::uint32_t widest = 0;
      for (std::int64_t i = begin; i < end; ++i) {
        std::uint32_t bits;
        std::memcpy(&bits, shard + i, sizeof bits);
        widest = std::max(widest, bits & 0x7fffffffu);
      }
      float largest;
      std::memcpy(&largest, &widest, sizeof largest);
      code = std::max(code, value_code(largest));
    }
    codes[c] = code;
  }
}

DPT_SIMD_CLONES void quantize_sum(std::span<const float* const> shards, std::int64_t count,
                                  std::span<const std::int64_t> starts, const std::int32_t* codes,
                                  std::int64_t total_shards, std::int64_t first, std::int64_t last,
                                  std::int64_t* out) {
  const int headroom = headroom_bits(total_shards);
  std::int64_t* sums = out - first;
  for (std::size_t c = 0; c < starts.size(); ++c) {
    const std::int64_t begin = std::max(starts[c], first);
    const std::int64_t end = std::min(chunk_end(starts, c, count), last);
    if (begin >= end) continue;
    // A chunk at a time: its sums stay in L1 while each shard is added, and are written once.
    std::fill(sums + begin, sums + end, std::int64_t{0});
    if (codes[c] == kZeroCode) continue;
    if (codes[c] == kNonFiniteCode) {
      for (const float* shard : shards) {
        for (std::int64_t i = begin; i < end; ++i) sums[i] += nonfinite_count(shard[i]);
      }
      continue;
    }
    const double scale = std::ldexp(1.0, scale_exponent(codes[c], headroom));
    for (const float* shard : shards) {
      for (std::int64_t i = begin; i < end; ++i) sums[i] += quantize(shard[i], scale);
    }
  }
}

DPT_SIMD_CLONES void dequantize_range(const std::int64_t* sums, std::int64_t count,
                      std::span<const std::int64_t> starts, const std::int32_t* codes,
                      std::int64_t total_shards, std::int64_t first, std::int64_t last,
                      float* out) {
  const int headroom = headroom_bits(total_shards);
  for (std::size_t c = 0; c < starts.size(); ++c) {
    const std::int64_t begin = std::max(starts[c], first);
    const std::int64_t end = std::min(chunk_end(starts, c, count), last);
    if (begin >= end) continue;
    const std::int64_t* in = sums - first;
    float* result = out - first;
    if (codes[c] == kZeroCode) {
      std::fill(result + begin, result + end, 0.0f);
    } else if (codes[c] == kNonFiniteCode) {
      for (std::int64_t i = begin; i < end; ++i) result[i] = nonfinite_result(in[i]);
    } else {
      const double inverse = std::ldexp(1.0, -scale_exponent(codes[c], headroom));
      for (std::int64_t i = begin; i < end; ++i) result[i] = dequantize(in[i], inverse);
    }
  }
}

void sum_alone(std::span<const float* const> shards, std::int64_t count,
               std::span<const std::int64_t> starts, std::int64_t total_shards, float* out) {
  // A chunk's shards (a few KB) stay in L1 from the code pass to the conversion: the shards are
  // read from memory once and `out` written once, where the three steps would also write and
  // read back 8 bytes a value.
  std::vector<std::int64_t> sums;
  std::vector<const float*> at(shards.size());
  const std::int64_t zero = 0;
  for (std::size_t c = 0; c < starts.size(); ++c) {
    const std::int64_t begin = starts[c], length = chunk_end(starts, c, count) - begin;
    sums.resize(std::max<std::size_t>(sums.size(), static_cast<std::size_t>(length)));
    for (std::size_t s = 0; s < shards.size(); ++s) at[s] = shards[s] + begin;
    const std::span<const std::int64_t> whole(&zero, 1);
    std::int32_t code = 0;
    chunk_codes(at, length, whole, &code);
    quantize_sum(at, length, whole, &code, total_shards, 0, length, sums.data());
    dequantize_range(sums.data(), length, whole, &code, total_shards, 0, length, out + begin);
  }
}

}  // namespace dpt::exact
