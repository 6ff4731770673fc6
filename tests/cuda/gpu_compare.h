// SPDX-License-Identifier: MIT
// Comparisons of a GPU tensor with the CPU backend's result, for the GPU suites of tests/cuda/.
#pragma once

#include <gtest/gtest.h>

#include "runtime/tensor.h"

namespace dpt::test {

// The tensor is defined and on cuda:0.
::testing::AssertionResult on_gpu(const Tensor& t);
// The GPU tensor holds bit for bit the CPU tensor's floats.
::testing::AssertionResult bitwise_equal(const Tensor& gpu, const Tensor& cpu);
// Elementwise |gpu - cpu| <= atol + rtol * |cpu|.
::testing::AssertionResult close(const Tensor& gpu, const Tensor& cpu, double rtol, double atol);
// |gpu - cpu| <= rtol * max |cpu| for every element: for sums of products (GEMM, convolution),
// whose rounding error scales with the magnitude of the terms, not of the result.
::testing::AssertionResult close_to_max(const Tensor& gpu, const Tensor& cpu, double rtol);

}  // namespace dpt::test
