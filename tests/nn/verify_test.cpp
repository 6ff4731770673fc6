// SPDX-License-Identifier: MIT
// `train verify`'s comparison: differences, bitwise equality, and NaN or infinities that differ
// (which a plain maximum would drop, letting a broken run pass).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "nn/train/verify.h"

namespace dpt::nn {
namespace {

struct Folded {
  double abs = 0.0, rel = 0.0;
  bool bitwise = true;
};

Folded fold(const std::vector<float>& a, const std::vector<float>& b) {
  Folded f;
  const auto n = static_cast<std::int64_t>(a.size());
  fold_difference(Tensor::from_vector({n}, a), Tensor::from_vector({n}, b), f.abs, f.rel,
                  f.bitwise);
  return f;
}

TEST(Verify, DifferencesAndBitwiseEquality) {
  const Folded same = fold({1.0f, -2.0f, 0.5f}, {1.0f, -2.0f, 0.5f});
  EXPECT_TRUE(same.bitwise);
  EXPECT_EQ(same.abs, 0.0);
  const Folded off = fold({1.0f, -2.0f, 0.75f}, {1.0f, -2.0f, 0.5f});
  EXPECT_FALSE(off.bitwise);
  EXPECT_DOUBLE_EQ(off.abs, 0.25);
  EXPECT_DOUBLE_EQ(off.rel, 0.25 / 2.0);  // normwise: over max |b|
  const Folded signed_zero = fold({-0.0f}, {0.0f});
  EXPECT_FALSE(signed_zero.bitwise);  // equal values, different bits
  EXPECT_EQ(signed_zero.abs, 0.0);
}

TEST(Verify, NanOrInfinityOnOneSideIsAnInfiniteDifference) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(std::isinf(fold({nan, 1.0f}, {0.0f, 1.0f}).abs));
  EXPECT_TRUE(std::isinf(fold({0.0f, 1.0f}, {nan, 1.0f}).rel));
  EXPECT_TRUE(std::isinf(fold({inf}, {1.0f}).abs));
  EXPECT_TRUE(std::isinf(fold({inf}, {-inf}).abs));
  const Folded both_nan = fold({nan, 2.0f}, {nan, 2.0f});
  EXPECT_EQ(both_nan.abs, 0.0);
  EXPECT_EQ(fold({inf}, {inf}).abs, 0.0);
}

}  // namespace
}  // namespace dpt::nn
