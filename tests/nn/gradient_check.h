// SPDX-License-Identifier: MIT
// A model's backward against central finite differences of its loss: every element of every
// parameter, walked through the parameters' own views (the flat buffer also holds alignment gaps,
// Note [Parameter alignment], where both gradients are zero and a check would pass whatever
// backward computed; those gaps must get no gradient).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "nn/sequential.h"

namespace dpt::test {

struct GradientTolerance {
  float h = 1e-3f;  // step of the central difference
  double absolute = 2e-3;
  double relative = 2e-2;
  double least_largest = 1e-2;  // each parameter's largest difference must exceed this
};

// `analytic` is the flat gradient buffer after one backward of the loss loss_at() computes.
inline void expect_gradients_match_differences(nn::Sequential& m,
                                               const std::vector<float>& analytic,
                                               const std::function<double()>& loss_at,
                                               const GradientTolerance& tol = {}) {
  const float* flat = m.flat_params().data<float>();
  std::vector<bool> is_parameter(analytic.size(), false);
  for (nn::Parameter* p : m.parameters()) {
    float* values = p->value.data<float>();
    const std::int64_t offset = values - flat;
    ASSERT_GE(offset, 0) << p->name;
    ASSERT_LE(offset + p->value.numel(), static_cast<std::int64_t>(analytic.size())) << p->name;
    double largest = 0.0;
    for (std::int64_t e = 0; e < p->value.numel(); ++e) {
      const std::size_t i = static_cast<std::size_t>(offset + e);
      is_parameter[i] = true;
      const float saved = values[e];
      values[e] = saved + tol.h;
      const double up = loss_at();
      values[e] = saved - tol.h;
      const double down = loss_at();
      values[e] = saved;
      const double numeric =
          (up - down) / (static_cast<double>(saved + tol.h) - static_cast<double>(saved - tol.h));
      largest = std::max(largest, std::abs(numeric));
      EXPECT_NEAR(analytic[i], numeric, tol.absolute + tol.relative * std::abs(numeric))
          << p->name << " element " << e;
    }
    // A parameter whose loss does not move would check nothing.
    EXPECT_GT(largest, tol.least_largest) << p->name << ": every finite difference is ~0";
  }
  for (std::size_t i = 0; i < analytic.size(); ++i) {
    if (!is_parameter[i]) {
      EXPECT_EQ(analytic[i], 0.0f) << "gradient in the alignment gap at " << i;
    }
  }
}

}  // namespace dpt::test
