// SPDX-License-Identifier: MIT
// The math of the integrity checks, written once as DPT_HOST_DEVICE functions for the CPU loops
// and the CUDA kernels: the non-finite test on a float's bits and the 64-bit hash of parameters.
#pragma once

#include <cstdint>
#include <cstring>

#include "runtime/host_device.h"

namespace dpt::kernels {

DPT_HOST_DEVICE std::uint32_t float_bits(float x) {
  std::uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits;
}

// NaN or +-Inf: all exponent bits set. A test on the bits rather than std::isfinite, so that it
// holds under any floating-point flags and vectorises as an integer compare.
DPT_HOST_DEVICE bool is_nonfinite_bits(std::uint32_t bits) {
  return (bits & 0x7f800000u) == 0x7f800000u;
}

// Note [Parameter hash]
// ~~~~~~~~~~~~~~~~~~~~~
// A 64-bit hash of a tensor's bits that any change of one element always changes (the desync
// check must catch a single flipped bit), computed at memory speed and independent of the thread
// count and the backend. Elements are taken in chunks of kHashChunk; element i of a chunk goes to
// lane i % 32, and each lane steps h = (h ^ bits) * K with K odd. For a fixed h that step is a
// bijection of the element's bits, and so is every later step of the lane for its state, so two
// chunks that differ in one element end with different lane states. The lanes, then the chunks in
// index order, are folded with the same bijective step, and the murmur3 finaliser (bijective too)
// mixes the result. 32 independent lanes vectorise as four AVX-512 registers, whose multiplies
// overlap (eight lanes were one dependent chain, and GCC left them scalar), and chunks run on
// different threads or GPU threads. Not a cryptographic hash: a
// deliberate collision is easy; an accidental one among the parameters of one job is not.
inline constexpr std::int64_t kHashChunk = 4096;
inline constexpr int kHashLanes = 32;
inline constexpr std::uint64_t kHashMultiplier = 0x9E3779B97F4A7C15ull;  // odd

DPT_HOST_DEVICE std::uint64_t hash_step(std::uint64_t h, std::uint64_t value) {
  return (h ^ value) * kHashMultiplier;
}

// murmur3's fmix64: each of its steps is invertible.
DPT_HOST_DEVICE std::uint64_t hash_finish(std::uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

// The starting state of lane l.
DPT_HOST_DEVICE std::uint64_t hash_lane_seed(int lane) {
  return kHashMultiplier * static_cast<std::uint64_t>(lane + 1);
}

// The hash of one chunk of n <= kHashChunk floats.
DPT_HOST_DEVICE std::uint64_t hash_chunk(const float* x, std::int64_t n) {
  std::uint64_t lane[kHashLanes];
  for (int l = 0; l < kHashLanes; ++l) lane[l] = hash_lane_seed(l);
  std::int64_t i = 0;
  for (; i + kHashLanes <= n; i += kHashLanes) {
    for (int l = 0; l < kHashLanes; ++l) lane[l] = hash_step(lane[l], float_bits(x[i + l]));
  }
  for (int l = 0; i < n; ++i, ++l) lane[l] = hash_step(lane[l], float_bits(x[i]));
  std::uint64_t h = static_cast<std::uint64_t>(n);
  for (int l = 0; l < kHashLanes; ++l) h = hash_step(h, lane[l]);
  return hash_finish(h);
}

// Folds the chunk hashes, in index order, into the tensor's hash (n: its element count).
DPT_HOST_DEVICE std::uint64_t hash_chunks(const std::uint64_t* chunk_hashes, std::int64_t chunks,
                                          std::int64_t n) {
  std::uint64_t h = static_cast<std::uint64_t>(n);
  for (std::int64_t c = 0; c < chunks; ++c) h = hash_step(h, chunk_hashes[c]);
  return hash_finish(h);
}

}  // namespace dpt::kernels
