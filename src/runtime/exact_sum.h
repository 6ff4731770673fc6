// SPDX-License-Identifier: MIT
// The arithmetic of the exact gradient sum (Note [Exact gradient sum] in exact_sum.cpp): float
// values become 64-bit fixed-point integers against one exponent per chunk, integers are summed
// (associative, so any partition, order or algorithm gives the same bits), and each sum becomes a
// float once. The per-element functions are DPT_HOST_DEVICE so that the CUDA backend computes the
// same integers; the array functions below serve the host communicators.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>

#include "runtime/host_device.h"

namespace dpt::exact {

// Chunk exponent codes. A chunk's code is the maximum over its values of value_code(); reducing
// codes with MAX across ranks gives the code of the chunk over every shard.
inline constexpr std::int32_t kZeroCode = INT32_MIN;     // every value is +-0
inline constexpr std::int32_t kNonFiniteCode = INT32_MAX;  // some value is NaN or +-Inf
// Quantised magnitudes stay below 2^51 (the sum too), so rounding to an integer is one double
// addition and a sum converts back to double without rounding.
inline constexpr int kFractionBits = 51;
// Non-finite chunks count NaN, +Inf and -Inf per element in three 21-bit fields.
inline constexpr int kCountBits = 21;
inline constexpr std::int64_t kMaxShards = std::int64_t{1} << 20;

// The smallest E with |x| < 2^E for a finite non-zero float (subnormals: -126); kZeroCode for +-0,
// kNonFiniteCode for NaN and +-Inf. Exponent field arithmetic: no rounding, the same on any ISA.
DPT_HOST_DEVICE std::int32_t value_code(float x) {
  std::uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  const std::uint32_t biased = (bits >> 23) & 0xffu;
  if (biased == 0xffu) return kNonFiniteCode;
  if (biased == 0) return (bits & 0x7fffffu) == 0 ? kZeroCode : -126;
  return static_cast<std::int32_t>(biased) - 126;
}

// Bits of headroom for `shards` summands: ceil(log2(shards)).
DPT_HOST_DEVICE int headroom_bits(std::int64_t shards) {
  int h = 0;
  while ((std::int64_t{1} << h) < shards) ++h;
  return h;
}

// The power of two a chunk of finite code `code` is scaled by: 2^F, F = 51 - headroom - code, so
// every scaled value is below 2^(51 - headroom) and the sum of `shards` of them below 2^51.
DPT_HOST_DEVICE int scale_exponent(std::int32_t code, int headroom) {
  return kFractionBits - headroom - code;
}

// round-half-even(x * 2^F) for |x * 2^F| < 2^51: adding 1.5 * 2^52 leaves the integer part in the
// low mantissa bits, rounded by the hardware in its default (nearest-even) mode.
DPT_HOST_DEVICE std::int64_t quantize(float x, double scale) {
  constexpr double kMagic = 6755399441055744.0;  // 1.5 * 2^52
  const double shifted = static_cast<double>(x) * scale + kMagic;
  std::int64_t bits, magic_bits;
  std::memcpy(&bits, &shifted, sizeof bits);
  std::memcpy(&magic_bits, &kMagic, sizeof magic_bits);
  return bits - magic_bits;
}

// A sum of quantised values (|sum| < 2^51: exact in double) back to float: one rounding.
DPT_HOST_DEVICE float dequantize(std::int64_t sum, double inverse_scale) {
  return static_cast<float>(static_cast<double>(sum) * inverse_scale);
}

// In a chunk holding NaN or Inf: each value counts into one of three fields.
DPT_HOST_DEVICE std::int64_t nonfinite_count(float x) {
  if (x != x) return std::int64_t{1} << (2 * kCountBits);  // NaN
  if (x > 3.4028235e38f) return std::int64_t{1} << kCountBits;  // +Inf
  if (x < -3.4028235e38f) return 1;                              // -Inf
  return 0;
}

// The IEEE sum of the counted values: NaN when any NaN or both infinities, else the infinity.
// Finite values of such a chunk are not carried (their sum is unknown): they come out NaN.
DPT_HOST_DEVICE float nonfinite_result(std::int64_t counts) {
  const std::int64_t mask = (std::int64_t{1} << kCountBits) - 1;
  const std::int64_t nans = counts >> (2 * kCountBits);
  const std::int64_t pos = (counts >> kCountBits) & mask;
  const std::int64_t neg = counts & mask;
  float result;
  std::uint32_t bits = 0x7fc00000u;  // quiet NaN
  if (nans == 0 && pos > 0 && neg == 0) bits = 0x7f800000u;
  if (nans == 0 && neg > 0 && pos == 0) bits = 0xff800000u;
  std::memcpy(&result, &bits, sizeof result);
  return result;
}

// Reported sums (per-sample losses): fixed point with 32 fraction bits, so that a sum over samples
// is the same whichever ranks added which samples in which order. A loss that is not finite or
// not below 2^30 has no fixed-point value: to_fixed_loss returns false (the caller reports it).
inline constexpr int kLossFractionBits = 32;
inline bool to_fixed_loss(double loss, std::int64_t* fixed) {
  if (!(loss > -1073741824.0 && loss < 1073741824.0)) return false;  // |loss| >= 2^30, or NaN
  // Exact product (a power-of-two scale), rounded half to even (the default rounding mode).
  *fixed = static_cast<std::int64_t>(std::nearbyint(std::ldexp(loss, kLossFractionBits)));
  return true;
}
inline double from_fixed_loss(std::int64_t fixed) {
  return std::ldexp(static_cast<double>(fixed), -kLossFractionBits);
}

// ---- host arrays --------------------------------------------------------------------------
// A range of `count` values cut into chunks: chunk c is [starts[c], starts[c + 1]) (the last ends
// at count). starts is ascending and begins with 0.

// codes[c] = max over shards and the chunk's values of value_code().
void chunk_codes(std::span<const float* const> shards, std::int64_t count,
                 std::span<const std::int64_t> starts, std::int32_t* codes);

// out[i - first] = sum over shards of the quantised shards[s][i], for i in [first, last), with
// each chunk's code (already reduced over every rank) and `total_shards` summands in all.
void quantize_sum(std::span<const float* const> shards, std::int64_t count,
                  std::span<const std::int64_t> starts, const std::int32_t* codes,
                  std::int64_t total_shards, std::int64_t first, std::int64_t last,
                  std::int64_t* out);

// out[i - first] = the float of sums[i - first], for i in [first, last).
void dequantize_range(const std::int64_t* sums, std::int64_t count,
                      std::span<const std::int64_t> starts, const std::int32_t* codes,
                      std::int64_t total_shards, std::int64_t first, std::int64_t last, float* out);

// The exact sum of one rank's shards where no other rank takes part (a world of one): chunk by
// chunk, codes, quantised sums and conversion in one pass over the shards, the same bits as the
// three steps above.
void sum_alone(std::span<const float* const> shards, std::int64_t count,
               std::span<const std::int64_t> starts, std::int64_t total_shards, float* out);

// Checks a chunk layout (ascending starts from 0, each inside [0, count)) and that this rank's
// `local_shards` are at least one and at most `total_shards` (the headroom assumes no more);
// throws naming `what`.
void check_chunks(const char* what, std::int64_t count, std::span<const std::int64_t> starts,
                  std::int64_t total_shards, std::int64_t local_shards);

}  // namespace dpt::exact
