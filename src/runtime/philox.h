// SPDX-License-Identifier: MIT
// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
// counter-based generator. Every random number is a pure function of (key, counter), so it can be
// keyed by what it belongs to (seed, epoch, step, layer, sample) and never by thread or rank.
#pragma once

#include <cstdint>

#include "runtime/host_device.h"

namespace dpt {

struct Philox4 {
  std::uint32_t v[4];
};

namespace detail {
constexpr std::uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr std::uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr std::uint32_t kPhiloxW0 = 0x9E3779B9u;  // golden ratio
constexpr std::uint32_t kPhiloxW1 = 0xBB67AE85u;  // sqrt(3) - 1

DPT_HOST_DEVICE void mul_hi_lo(std::uint32_t a, std::uint32_t b, std::uint32_t* hi, std::uint32_t* lo) {
  const std::uint64_t product = static_cast<std::uint64_t>(a) * b;
  *hi = static_cast<std::uint32_t>(product >> 32);
  *lo = static_cast<std::uint32_t>(product);
}
}  // namespace detail

// Ten rounds of Philox4x32 on `counter` with key (k0, k1).
DPT_HOST_DEVICE Philox4 philox4x32_10(Philox4 counter, std::uint32_t k0, std::uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0, lo0, hi1, lo1;
    detail::mul_hi_lo(detail::kPhiloxM0, counter.v[0], &hi0, &lo0);
    detail::mul_hi_lo(detail::kPhiloxM1, counter.v[2], &hi1, &lo1);
    counter = Philox4{{hi1 ^ counter.v[1] ^ k0, lo1, hi0 ^ counter.v[3] ^ k1, lo0}};
    k0 += detail::kPhiloxW0;
    k1 += detail::kPhiloxW1;
  }
  return counter;
}

// A uniform float in [0, 1) from the top 24 bits (exactly representable, never 1.0).
DPT_HOST_DEVICE float uniform_from_bits(std::uint32_t bits) {
  return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
}

// What a random stream belongs to: the first counter word. Distinct purposes never share numbers.
enum class RngPurpose : std::uint32_t {
  kInit = 1,
  kDataOrder = 2,
  kDropout = 3,
  kAugment = 4,
  kWindow = 5,  // where a training window of a text dataset starts (io/loader.h)
  kSample = 6,  // the draws of `train sample` (nn/train/sampling.h)
};

// Keyed stream: seed -> key; (purpose, a, b) -> the upper counter words; index -> the lowest word
// and the lane. Element i of the stream is lane i % 4 of block i / 4.
struct PhiloxStream {
  std::uint64_t seed;
  RngPurpose purpose;
  std::uint32_t a;
  std::uint32_t b;

  DPT_HOST_DEVICE Philox4 block(std::uint32_t block_index) const {
    const Philox4 counter{{block_index, static_cast<std::uint32_t>(purpose), a, b}};
    return philox4x32_10(counter, static_cast<std::uint32_t>(seed),
                         static_cast<std::uint32_t>(seed >> 32));
  }
  DPT_HOST_DEVICE std::uint32_t bits(std::uint32_t index) const {
    return block(index >> 2).v[index & 3u];
  }
  DPT_HOST_DEVICE float uniform(std::uint32_t index) const { return uniform_from_bits(bits(index)); }
};

}  // namespace dpt
