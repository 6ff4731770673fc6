// SPDX-License-Identifier: MIT
// Shard gradients for the exact-sum tests of every backend (host math, MPI, NCCL): values that
// span many binades, optionally with the special chunks that must survive the sum.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace dpt::test {

// Shard s of `count` values from a fixed LCG: mantissas in [-0.5, 0.5), exponents in [-20, 11].
inline std::vector<float> exact_shard(int s, std::int64_t count) {
  std::vector<float> v(static_cast<std::size_t>(count));
  std::uint32_t x = 2654435761u * static_cast<std::uint32_t>(s + 1);
  for (float& e : v) {
    x = x * 1664525u + 1013904223u;
    e = std::ldexp(static_cast<float>(x & 0xffffff) / 16777216.0f - 0.5f,
                   static_cast<int>(x >> 27) - 20);
  }
  return v;
}

// exact_shard with special chunks, for shard s of `total`: chunk 1 gets a NaN (in shard total/2),
// chunk 2 +Inf (shard 0) and -Inf then +Inf (the last shard), chunk 3 only +-0, chunk 4 only
// subnormals. Chunks that do not exist are left alone. Every value doubled is exact (no overflow,
// and subnormals keep their bits), which a test that doubles shards on the device relies on.
inline std::vector<float> exact_shard_with_specials(int s, std::int64_t count,
                                                    const std::vector<std::int64_t>& starts,
                                                    int total) {
  std::vector<float> v = exact_shard(s, count);
  const auto chunk = [&](std::size_t k, std::int64_t& begin, std::int64_t& end) {
    if (k >= starts.size()) return false;
    begin = starts[k];
    end = k + 1 < starts.size() ? starts[k + 1] : count;
    return true;
  };
  constexpr float kInf = std::numeric_limits<float>::infinity();
  std::int64_t begin = 0, end = 0;
  if (chunk(1, begin, end) && s == total / 2) v[static_cast<std::size_t>(begin)] = std::nanf("");
  if (chunk(2, begin, end)) {
    if (s == 0) v[static_cast<std::size_t>(begin)] = kInf;
    if (s == total - 1) v[static_cast<std::size_t>(begin)] = -kInf;
    if (s == total - 1 && end - begin > 1) v[static_cast<std::size_t>(begin) + 1] = kInf;
  }
  if (chunk(3, begin, end)) {
    for (std::int64_t i = begin; i < end; ++i) {
      v[static_cast<std::size_t>(i)] = (i + s) % 2 ? -0.0f : 0.0f;
    }
  }
  if (chunk(4, begin, end)) {
    for (std::int64_t i = begin; i < end; ++i) {
      v[static_cast<std::size_t>(i)] =
          std::ldexp(static_cast<float>((i * 7 + s * 3) % 100 - 50), -140);
    }
  }
  return v;
}

}  // namespace dpt::test
