// SPDX-License-Identifier: MIT
// Philox4x32-10 against the published known-answer vectors and the keyed-stream contract.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "runtime/philox.h"

namespace dpt {
namespace {

// Known-answer tests from the Random123 distribution (kat_vectors, philox4x32 10 rounds).
TEST(Philox, KnownAnswerZero) {
  const Philox4 out = philox4x32_10(Philox4{{0, 0, 0, 0}}, 0, 0);
  EXPECT_EQ(out.v[0], 0x6627e8d5u);
  EXPECT_EQ(out.v[1], 0xe169c58du);
  EXPECT_EQ(out.v[2], 0xbc57ac4cu);
  EXPECT_EQ(out.v[3], 0x9b00dbd8u);
}

TEST(Philox, KnownAnswerOnes) {
  const Philox4 out =
      philox4x32_10(Philox4{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu,
                    0xffffffffu);
  EXPECT_EQ(out.v[0], 0x408f276du);
  EXPECT_EQ(out.v[1], 0x41c83b0eu);
  EXPECT_EQ(out.v[2], 0xa20bc7c6u);
  EXPECT_EQ(out.v[3], 0x6d5451fdu);
}

TEST(Philox, KnownAnswerPi) {
  const Philox4 out =
      philox4x32_10(Philox4{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u,
                    0x299f31d0u);
  EXPECT_EQ(out.v[0], 0xd16cfe09u);
  EXPECT_EQ(out.v[1], 0x94fdccebu);
  EXPECT_EQ(out.v[2], 0x5001e420u);
  EXPECT_EQ(out.v[3], 0x24126ea1u);
}

TEST(PhiloxStream, UniformInUnitIntervalWithRightMean) {
  const PhiloxStream s{42, RngPurpose::kInit, 3, 0};
  double sum = 0.0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const float u = s.uniform(static_cast<std::uint32_t>(i));
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    sum += u;
  }
  EXPECT_NEAR(sum / n, 0.5, 0.005);
}

TEST(PhiloxStream, DistinctKeysGiveDistinctStreams) {
  std::set<std::uint32_t> firsts;
  for (std::uint64_t seed : {0ull, 1ull, 1ull << 32}) {
    for (RngPurpose purpose : {RngPurpose::kInit, RngPurpose::kDataOrder, RngPurpose::kDropout}) {
      for (std::uint32_t a : {0u, 1u}) firsts.insert(PhiloxStream{seed, purpose, a, 0}.bits(0));
    }
  }
  EXPECT_EQ(firsts.size(), 18u);
  const PhiloxStream s{7, RngPurpose::kDropout, 1, 2};
  EXPECT_EQ(s.bits(5), s.block(1).v[1]);  // element 5 = lane 1 of block 1
}

}  // namespace
}  // namespace dpt
