// SPDX-License-Identifier: MIT
// The exact sum's arithmetic (Note [Exact gradient sum]): for every way of spreading S shards over
// ranks, and every order in which the ranks' integer sums meet, the floats that come out are the
// same bits; they are as close to the true sum as the note promises; zeros, subnormals, values
// near FLT_MAX, NaN and infinities behave as documented.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "runtime/error.h"
#include "runtime/exact_sum.h"

namespace dpt::exact {
namespace {

using Shards = std::vector<std::vector<float>>;

std::vector<const float*> pointers(const Shards& shards, std::size_t first, std::size_t last) {
  std::vector<const float*> out;
  for (std::size_t s = first; s < last; ++s) out.push_back(shards[s].data());
  return out;
}

// The protocol of a world of `ranks` over contiguous shard ranges, with the ranks' integer sums
// added in the order `order` (a permutation of ranks): codes MAX-reduced, each rank's quantised
// sum, integer addition, one conversion.
std::vector<float> sum_over_ranks(const Shards& shards, std::int64_t count,
                                  const std::vector<std::int64_t>& starts, int ranks,
                                  const std::vector<int>& order) {
  const std::size_t per_rank = shards.size() / static_cast<std::size_t>(ranks);
  std::vector<std::int32_t> codes(starts.size(), kZeroCode), mine(starts.size());
  for (int r = 0; r < ranks; ++r) {
    const auto p = pointers(shards, r * per_rank, (r + 1) * per_rank);
    chunk_codes(p, count, starts, mine.data());
    for (std::size_t c = 0; c < codes.size(); ++c) codes[c] = std::max(codes[c], mine[c]);
  }
  std::vector<std::int64_t> total(static_cast<std::size_t>(count), 0), part(total.size());
  for (const int r : order) {
    const auto p = pointers(shards, r * per_rank, (r + 1) * per_rank);
    quantize_sum(p, count, starts, codes.data(), static_cast<std::int64_t>(shards.size()), 0,
                 count, part.data());
    for (std::size_t i = 0; i < total.size(); ++i) total[i] += part[i];
  }
  std::vector<float> out(total.size());
  // Converted in two ranges, as two ranks of a reduce-scatter would.
  const std::int64_t half = count / 2;
  dequantize_range(total.data(), count, starts, codes.data(),
                   static_cast<std::int64_t>(shards.size()), 0, half, out.data());
  dequantize_range(total.data() + half, count, starts, codes.data(),
                   static_cast<std::int64_t>(shards.size()), half, count, out.data() + half);
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Gradients spanning many binades, with zeros of both signs and subnormals.
Shards random_shards(std::size_t shards, std::int64_t count, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> mantissa(0.5f, 1.0f);
  std::uniform_int_distribution<int> exponent(-40, 8), kind(0, 99);
  Shards out(shards, std::vector<float>(static_cast<std::size_t>(count)));
  for (auto& shard : out) {
    for (float& v : shard) {
      const int k = kind(rng);
      v = std::ldexp(mantissa(rng), exponent(rng)) * (k % 2 == 0 ? 1.0f : -1.0f);
      if (k < 3) v = 0.0f;
      if (k == 3) v = -0.0f;
      if (k == 4) v = std::numeric_limits<float>::denorm_min() * static_cast<float>(k);
    }
  }
  return out;
}

std::vector<std::int64_t> chunks_of(std::int64_t count, std::int64_t size) {
  std::vector<std::int64_t> starts;
  for (std::int64_t s = 0; s < count; s += size) starts.push_back(s);
  return starts;
}

TEST(ExactSum, EveryPartitionAndOrderGivesTheSameBits) {
  constexpr std::int64_t kCount = 1000;
  const Shards shards = random_shards(12, kCount, 7);
  // Uneven chunks, as parameters of different sizes make them.
  const std::vector<std::int64_t> starts{0, 3, 259, 515, 600, 856};
  const std::vector<float> one_rank = sum_over_ranks(shards, kCount, starts, 1, {0});
  for (const int ranks : {2, 3, 4, 6, 12}) {
    std::vector<int> order(static_cast<std::size_t>(ranks));
    std::iota(order.begin(), order.end(), 0);
    std::mt19937 rng(static_cast<std::uint32_t>(ranks));
    for (int trial = 0; trial < 3; ++trial) {
      std::shuffle(order.begin(), order.end(), rng);
      EXPECT_TRUE(same_bits(one_rank, sum_over_ranks(shards, kCount, starts, ranks, order)))
          << ranks << " ranks, trial " << trial;
    }
  }
}

TEST(ExactSum, ResultIsWithinTheDocumentedBoundOfTheTrueSum) {
  constexpr std::int64_t kCount = 4096;
  constexpr std::size_t kShards = 64;
  const Shards shards = random_shards(kShards, kCount, 11);
  const std::vector<std::int64_t> starts = chunks_of(kCount, 256);
  const std::vector<float> result = sum_over_ranks(shards, kCount, starts, 1, {0});
  std::vector<std::int32_t> codes(starts.size());
  chunk_codes(pointers(shards, 0, kShards), kCount, starts, codes.data());
  const int h = headroom_bits(kShards);
  for (std::int64_t i = 0; i < kCount; ++i) {
    long double exact = 0.0L;
    for (const auto& shard : shards) exact += shard[static_cast<std::size_t>(i)];
    const std::int32_t code = codes[static_cast<std::size_t>(i / 256)];
    // Each shard rounds by at most half a unit of 2^(E - 51 + h); the float conversion by half
    // an ulp of the result.
    const long double quantum = std::ldexp(1.0L, code - kFractionBits + h);
    const long double bound = kShards * quantum / 2 + std::fabs(exact) * std::ldexp(1.0L, -24);
    EXPECT_LE(std::fabs(static_cast<long double>(result[static_cast<std::size_t>(i)]) - exact),
              bound)
        << "element " << i;
  }
}

TEST(ExactSum, ValuesAtTheChunkMaximumAreCorrectlyRounded) {
  // Small integers times a power of two: the true sum is exact in float, so the result must be it.
  constexpr std::int64_t kCount = 64;
  Shards shards(24, std::vector<float>(kCount));
  for (std::size_t s = 0; s < shards.size(); ++s) {
    for (std::int64_t i = 0; i < kCount; ++i) {
      shards[s][static_cast<std::size_t>(i)] = std::ldexp(static_cast<float>((s * 7 + i) % 13) - 6.0f, -30);
    }
  }
  const std::vector<float> result = sum_over_ranks(shards, kCount, {0}, 3, {2, 0, 1});
  for (std::int64_t i = 0; i < kCount; ++i) {
    double exact = 0.0;
    for (const auto& shard : shards) exact += shard[static_cast<std::size_t>(i)];
    EXPECT_EQ(result[static_cast<std::size_t>(i)], static_cast<float>(exact)) << i;
  }
}

TEST(ExactSum, ZerosSubnormalsAndOverflow) {
  const float tiny = std::numeric_limits<float>::denorm_min();
  const float big = std::numeric_limits<float>::max();
  // Element 0: -0 everywhere; 1: subnormals; 2: FLT_MAX twice (overflows to +Inf); 3: a mix of
  // +-0 and one subnormal. Separate chunks, so each keeps its own exponent.
  Shards shards = {{-0.0f, tiny, big, 0.0f}, {-0.0f, tiny, big, -0.0f},
                   {-0.0f, tiny, 0.0f, tiny}, {-0.0f, tiny, 0.0f, -0.0f}};
  const std::vector<std::int64_t> starts{0, 1, 2, 3};
  const std::vector<float> result = sum_over_ranks(shards, 4, starts, 2, {1, 0});
  EXPECT_EQ(result[0], 0.0f);
  EXPECT_FALSE(std::signbit(result[0])) << "the sum of zeros is +0";
  EXPECT_EQ(result[1], 4.0f * tiny);
  EXPECT_EQ(result[2], std::numeric_limits<float>::infinity());
  EXPECT_EQ(result[3], tiny);
  EXPECT_TRUE(same_bits(result, sum_over_ranks(shards, 4, starts, 4, {3, 1, 2, 0})));
}

TEST(ExactSum, NanAndInfinityPropagate) {
  constexpr std::int64_t kCount = 8;
  const float inf = std::numeric_limits<float>::infinity();
  Shards shards(4, std::vector<float>(kCount, 1.0f));
  shards[1][0] = std::numeric_limits<float>::quiet_NaN();
  shards[2][1] = inf;
  shards[0][2] = inf;
  shards[3][2] = -inf;
  shards[3][3] = -inf;
  // Chunk [0, 4) holds the non-finite values; chunk [4, 8) is finite and must stay exact.
  const std::vector<std::int64_t> starts{0, 4};
  for (const int ranks : {1, 2, 4}) {
    std::vector<int> order(static_cast<std::size_t>(ranks));
    std::iota(order.rbegin(), order.rend(), 0);
    const std::vector<float> r = sum_over_ranks(shards, kCount, starts, ranks, order);
    EXPECT_TRUE(std::isnan(r[0])) << "NaN + finite";
    EXPECT_EQ(r[1], inf) << "+Inf + finite";
    EXPECT_TRUE(std::isnan(r[2])) << "+Inf + -Inf";
    EXPECT_EQ(r[3], -inf) << "-Inf + finite";
    for (int i = 4; i < kCount; ++i) EXPECT_EQ(r[static_cast<std::size_t>(i)], 4.0f) << i;
  }
}

TEST(ExactSum, CodesAndHeadroom) {
  EXPECT_EQ(value_code(1.0f), 1);  // 1 < 2^1
  EXPECT_EQ(value_code(0.75f), 0);
  EXPECT_EQ(value_code(-3.0f), 2);
  EXPECT_EQ(value_code(0.0f), kZeroCode);
  EXPECT_EQ(value_code(-0.0f), kZeroCode);
  EXPECT_EQ(value_code(std::numeric_limits<float>::denorm_min()), -126);
  EXPECT_EQ(value_code(std::numeric_limits<float>::infinity()), kNonFiniteCode);
  EXPECT_EQ(value_code(std::numeric_limits<float>::quiet_NaN()), kNonFiniteCode);
  EXPECT_EQ(headroom_bits(1), 0);
  EXPECT_EQ(headroom_bits(2), 1);
  EXPECT_EQ(headroom_bits(3), 2);
  EXPECT_EQ(headroom_bits(64), 6);
  EXPECT_EQ(quantize(2.5f, 1.0), 2);  // half to even
  EXPECT_EQ(quantize(3.5f, 1.0), 4);
  EXPECT_EQ(quantize(-2.5f, 1.0), -2);
  EXPECT_EQ(quantize(-0.75f, 4.0), -3);
}

TEST(ExactSum, BadChunkLayoutsAreRefused) {
  const std::vector<std::int64_t> good{0, 10}, unsorted{0, 10, 5}, late{3, 10}, outside{0, 100};
  EXPECT_NO_THROW(check_chunks("t", 100, good, 4, 2));
  EXPECT_THROW(check_chunks("t", 100, unsorted, 4, 1), Error);
  EXPECT_THROW(check_chunks("t", 100, late, 4, 1), Error);
  EXPECT_THROW(check_chunks("t", 100, outside, 4, 1), Error);
  EXPECT_THROW(check_chunks("t", 100, good, 0, 1), Error);
  EXPECT_THROW(check_chunks("t", 100, good, kMaxShards + 1, 1), Error);
  EXPECT_THROW(check_chunks("t", 100, good, 4, 5), Error);
  EXPECT_THROW(check_chunks("t", 100, good, 4, 0), Error);
}

}  // namespace
}  // namespace dpt::exact

namespace dpt::exact {
namespace {

TEST(ExactSum, LossFixedPoint) {
  std::int64_t f = 0;
  ASSERT_TRUE(to_fixed_loss(2.5, &f));
  EXPECT_EQ(f, std::int64_t{5} << 31);
  EXPECT_EQ(from_fixed_loss(f), 2.5);
  ASSERT_TRUE(to_fixed_loss(std::ldexp(1.5, -32), &f));  // a half: to even
  EXPECT_EQ(f, 2);
  ASSERT_TRUE(to_fixed_loss(std::ldexp(2.5, -32), &f));
  EXPECT_EQ(f, 2);
  ASSERT_TRUE(to_fixed_loss(-std::ldexp(2.5, -32), &f));
  EXPECT_EQ(f, -2);
  ASSERT_TRUE(to_fixed_loss(1000.0 + std::ldexp(0.75, -32), &f));
  EXPECT_EQ(f, (std::int64_t{1000} << 32) + 1);
  EXPECT_FALSE(to_fixed_loss(std::nan(""), &f));
  EXPECT_FALSE(to_fixed_loss(std::numeric_limits<double>::infinity(), &f));
  EXPECT_FALSE(to_fixed_loss(std::ldexp(1.0, 30), &f));
}

}  // namespace
}  // namespace dpt::exact

namespace dpt::exact {
namespace {

// The one-pass sum of a world of one is the three-step protocol's result, bit for bit.
TEST(ExactSum, SumAloneEqualsTheThreeSteps) {
  constexpr std::int64_t kCount = 3000;
  Shards shards = random_shards(6, kCount, 23);
  shards[2][700] = std::numeric_limits<float>::infinity();  // one non-finite chunk
  const std::vector<std::int64_t> starts{0, 256, 512, 600, 2999};
  const std::vector<float> expected = sum_over_ranks(shards, kCount, starts, 1, {0});
  std::vector<float> out(kCount);
  sum_alone(pointers(shards, 0, 6), kCount, starts, 6, out.data());
  EXPECT_TRUE(same_bits(out, expected));
  EXPECT_TRUE(std::isnan(out[600]));
}

}  // namespace
}  // namespace dpt::exact

namespace dpt::exact {
namespace {

// Each value is rounded to the nearest multiple of its chunk's quantum 2^(E - 51 + h), not
// truncated: four shards of 0.75 quantum next to a 1.0 (E = 1, h = 2, quantum 2^-48) sum to four
// quanta (truncation would give 0), and 0.25 quantum rounds to nothing.
TEST(ExactSum, ValuesRoundToTheNearestQuantum) {
  const float quantum = std::ldexp(1.0f, -48);
  Shards shards(4, std::vector<float>{1.0f, 0.75f * quantum, 0.25f * quantum, -0.75f * quantum});
  const std::vector<float> r = sum_over_ranks(shards, 4, {0}, 2, {1, 0});
  EXPECT_EQ(r[0], 4.0f);
  EXPECT_EQ(r[1], 4.0f * quantum);
  EXPECT_EQ(r[2], 0.0f);
  EXPECT_EQ(r[3], -4.0f * quantum);
}

}  // namespace
}  // namespace dpt::exact
