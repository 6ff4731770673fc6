// SPDX-License-Identifier: MIT
// A kernel's gradient against central finite differences of a scalar function of its input.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "runtime/tensor.h"

namespace dpt::test {

// Perturbs every element of `v` by +-h, evaluates f, and compares the central difference with
// `analytic` (same element count) within tol * (1 + |difference|).
inline void expect_gradient(const char* what, Tensor& v, const Tensor& analytic,
                            const std::function<double()>& f, float h, double tol) {
  ASSERT_EQ(v.numel(), analytic.numel()) << what;
  for (std::int64_t i = 0; i < v.numel(); ++i) {
    float& e = v.data<float>()[i];
    const float saved = e;
    e = saved + h;
    const double plus = f();
    e = saved - h;
    const double minus = f();
    e = saved;
    const double numeric =
        (plus - minus) / (static_cast<double>(saved + h) - static_cast<double>(saved - h));
    const double a = analytic.data<float>()[i];
    ASSERT_NEAR(a, numeric, tol * (1.0 + std::abs(numeric))) << what << " element " << i;
  }
}

}  // namespace dpt::test
