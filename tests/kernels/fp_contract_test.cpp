// SPDX-License-Identifier: MIT
// The build must not contract a*b + c into a fused multiply-add: the CPU and CUDA backends share
// their elementwise math (kernels/*_math.h) and the CPU-vs-GPU tests compare it bit for bit, and
// nvcc builds it with --fmad=false. g++ contracts by default in C++ (-ffp-contract=fast, even with
// -std=c++20) wherever it may emit FMA instructions: in a function built for an FMA target, or a
// whole build with -march=native. These functions are built for such a target, so without the
// project's -ffp-contract=off they round once where the math rounds twice.
#include <gtest/gtest.h>

#include "kernels/optim_math.h"

namespace dpt::kernels {
namespace {

#if defined(__x86_64__)
#define DPT_FMA_TARGET __attribute__((target("fma"), noinline))
bool cpu_has_fma() { return __builtin_cpu_supports("fma"); }
#else
#define DPT_FMA_TARGET __attribute__((noinline))
bool cpu_has_fma() { return false; }
#endif

DPT_FMA_TARGET float multiply_add(float a, float b, float c) { return a * b + c; }

DPT_FMA_TARGET float sgd_step(float param, float grad, float lr) {
  const SgdCoeffs c = sgd_coeffs(lr, 0.0, 0.0, 0.0, false, 1.0);
  float buf = 0.0f;
  sgd_update(&param, grad, &buf, c, true);
  return param;
}

// (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24: the last term is half a float ulp at 1 and rounds away (to
// even), so the product rounded to float is 1 + 2^-11 exactly. Rounded twice, a*b - (1 + 2^-11)
// is 0; fused it is 2^-24.
constexpr float kA = 1.0f + 0x1p-12f;
constexpr float kProduct = 1.0f + 0x1p-11f;

TEST(FloatingPoint, MultiplyAddRoundsTwice) {
  if (!cpu_has_fma()) GTEST_SKIP() << "this CPU has no FMA instructions: nothing could contract";
  volatile float a = kA, c = -kProduct;  // volatile: computed at run time, not folded
  EXPECT_EQ(multiply_add(a, a, c), 0.0f) << "a*b + c was fused (build without -ffp-contract=off?)";
}

TEST(FloatingPoint, SharedOptimizerMathRoundsTwiceAsOnTheGpu) {
  if (!cpu_has_fma()) GTEST_SKIP() << "this CPU has no FMA instructions: nothing could contract";
  volatile float param = kProduct, grad = kA, lr = kA;
  // p - lr * g with lr * g rounded first, as the CUDA kernel built with --fmad=false computes it.
  EXPECT_EQ(sgd_step(param, grad, lr), 0.0f);
}

}  // namespace
}  // namespace dpt::kernels
