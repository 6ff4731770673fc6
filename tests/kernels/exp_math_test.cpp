// SPDX-License-Identifier: MIT
// exp_float (Note [Exp by polynomial]): its error against the double-precision exp, its limits,
// and the same bits from the vectorised GELU loops as from the scalar function.
#include "kernels/exp_math.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/ops.h"
#include "kernels/transformer_math.h"
#include "testing/test_util.h"

namespace dpt::kernels {
namespace {

TEST(ExpFloat, WithinTwoUlpOfTheDoublePrecisionExp) {
  double worst = 0.0;
  const int n = 2000000;
  for (int i = 0; i <= n; ++i) {
    const float x = -87.0f + 175.0f * static_cast<float>(i) / n;
    const double want = std::exp(static_cast<double>(x));
    const double rel = std::abs(static_cast<double>(exp_float(x)) - want) / want;
    worst = std::max(worst, rel);
  }
  // 2 ulp of a float is 2^-22 relative at worst: 2.4e-7.
  EXPECT_LE(worst, 2.4e-7);
  EXPECT_GT(worst, 0.0);  // a polynomial, not a call to exp
}

TEST(ExpFloat, LimitsAndSpecialValues) {
  EXPECT_EQ(exp_float(0.0f), 1.0f);
  EXPECT_EQ(exp_float(100.0f), std::numeric_limits<float>::infinity());
  EXPECT_EQ(exp_float(std::numeric_limits<float>::infinity()),
            std::numeric_limits<float>::infinity());
  EXPECT_LE(exp_float(-100.0f), 1.2e-38f);
  EXPECT_GE(exp_float(-100.0f), 0.0f);
  EXPECT_LE(exp_float(-std::numeric_limits<float>::infinity()), 1.2e-38f);
  EXPECT_TRUE(std::isnan(exp_float(std::numeric_limits<float>::quiet_NaN())));
}

TEST(ExpFloat, VectorisedGeluLoopsGiveTheScalarBits) {
  // The CPU's GELU loops run vectorised (AVX-512, AVX2 or SSE2 clones); the CUDA kernels call the
  // scalar functions. Every element must be the same bits, over the whole range and the tails.
  const Context ctx = Context::create(Device::cpu(), 1);
  const std::int64_t n = 4099;  // not a multiple of any vector width
  Tensor x = test::random_tensor({n}, 7, -12.0f, 12.0f);
  x.data<float>()[0] = -60.0f;  // exp(-2u) overflows
  x.data<float>()[1] = 60.0f;
  const Tensor dy = test::random_tensor({n}, 8);
  Tensor y = Tensor::empty({n}), dx = Tensor::empty({n});
  gelu_forward(ctx, x, y);
  gelu_backward(ctx, x, dy, dx);
  for (std::int64_t i = 0; i < n; ++i) {
    const float xi = x.data<float>()[i];
    ASSERT_EQ(y.data<float>()[i], gelu_tanh(xi)) << "x = " << xi;
    ASSERT_EQ(dx.data<float>()[i], gelu_tanh_grad(xi, dy.data<float>()[i])) << "x = " << xi;
  }
  EXPECT_EQ(y.data<float>()[0], -0.0f);
  EXPECT_EQ(y.data<float>()[1], 60.0f);
}

}  // namespace
}  // namespace dpt::kernels
