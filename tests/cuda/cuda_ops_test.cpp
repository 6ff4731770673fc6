// SPDX-License-Identifier: MIT
// Every op of the CUDA backend against the CPU backend on the same inputs (the CPU backend is
// itself checked against naive references in tests/kernels/). Odd sizes throughout (N=3, K=37,
// M=19; 7x5 and 9x11 images; 1, 7, 1023 and 2^20+3 elements), and views starting one element into
// their storage, so vectorised loads and tails are exercised.
//   bitwise: cast (every bf16 and fp16 pattern to float; special, boundary and random floats to
//     both formats) and round_to_format, relu, dropout (mask and output, first_sample != 0 and
//     above 2^32), scale, axpy, find_nonfinite (the index), hash_bits, max pooling forward (with
//     ties) and backward (dyadic gradients, whose sums are exact in any order, so the routing to
//     the argmax is compared exactly; random gradients within 1e-6);
//   1e-6 relative: sgd (momentum, dampening, nesterov, weight decay, grad_scale, first step both
//     ways), adamw (step 1 and 1000), dlogits;
//   1e-9 relative: softmax cross-entropy loss sum (and `correct` equal, including tied logits);
//   1e-12 relative: sum_squares (both reduce in double);
//   1e-4 of the largest magnitude: linear and conv forward (bias on/off, ReLU fused on/off),
//     backward data and weights (accumulate on/off, bias gradient undefined or not).
// bf16/f16 operands on tensor cores against the CPU's widened math (linear within the sums'
// order, convolutions within one rounding of each result), and TF32 only with the flag.
// Outputs start as garbage (123) so that an output the kernel fails to write is caught. Finally:
// a CPU tensor given to an op on a CUDA context, and the reverse, throw dpt::Error.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "gpu_compare.h"
#include "kernels/conv_case.h"
#include "kernels/ops.h"
#include "runtime/error.h"
#include "testing/test_util.h"

namespace dpt::kernels {
namespace {

using test::random_tensor;
using test::bitwise_equal;
using test::close;
using test::close_to_max;
using test::on_gpu;

const Device kGpu = Device::cuda(0);

Tensor up(const Tensor& t) { return t.to(kGpu); }

// Values offset + step * k with k uniform in [0, levels): many exact ties, and sums of a few of
// them are exact in float whatever the order of addition.
Tensor levels_tensor(const Shape& shape, std::uint64_t seed, int levels, float step, float offset) {
  Tensor t = Tensor::empty(shape);
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<int> dist(0, levels - 1);
  float* p = t.data<float>();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = offset + step * static_cast<float>(dist(gen));
  return t;
}

Tensor labels_tensor(std::int64_t n, std::int64_t classes) {
  Tensor t = Tensor::empty({n}, DType::kI32);
  for (std::int64_t i = 0; i < n; ++i) t.data<std::int32_t>()[i] = static_cast<std::int32_t>((i * 7 + 3) % classes);
  return t;
}

// Linear/conv tolerance relative to the largest magnitude (cuBLAS/cuDNN sum in another order; TF32
// would be ~1e-3 and fail, as it should: training must not silently lose precision).
constexpr double kGemmRtol = 1e-4;

class CudaOps : public ::testing::Test {
 protected:
  Context cpu_ = Context::create(Device::cpu(), 4);
  Context gpu_ = Context::create(kGpu);
};

// ---- linear ---------------------------------------------------------------------------------------

struct LinearCase {
  std::int64_t n, k, m;
};
std::ostream& operator<<(std::ostream& os, const LinearCase& c) {
  return os << "n=" << c.n << " k=" << c.k << " m=" << c.m;
}

class CudaLinear : public CudaOps, public ::testing::WithParamInterface<LinearCase> {};

TEST_P(CudaLinear, ForwardBackwardMatchCpu) {
  const auto [n, k, m] = GetParam();
  for (std::uint64_t round = 0; round < 2; ++round) {  // new data: no stale cached pointers
    const std::uint64_t seed = 10 * round + 1;
    const Tensor x = random_tensor({n, k}, seed), w = random_tensor({m, k}, seed + 1);
    const Tensor b = random_tensor({m}, seed + 2), dy = random_tensor({n, m}, seed + 3);
    const Tensor xg = up(x), wg = up(w), bg = up(b), dyg = up(dy);
    for (const bool relu : {false, true}) {
      for (const bool bias : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "forward relu=" << relu << " bias=" << bias << " round=" << round);
        Tensor y = Tensor::full({n, m}, 123.0f), yg = Tensor::full({n, m}, 123.0f, kGpu);
        linear_forward(cpu_, x, w, bias ? b : Tensor(), y, relu);
        linear_forward(gpu_, xg, wg, bias ? bg : Tensor(), yg, relu);
        EXPECT_TRUE(close_to_max(yg, y, kGemmRtol));
      }
    }
    {
      SCOPED_TRACE("backward data");
      Tensor dx = Tensor::full({n, k}, 123.0f), dxg = Tensor::full({n, k}, 123.0f, kGpu);
      linear_backward_data(cpu_, dy, w, dx);
      linear_backward_data(gpu_, dyg, wg, dxg);
      EXPECT_TRUE(close_to_max(dxg, dx, kGemmRtol));
    }
    for (const bool accumulate : {false, true}) {
      for (const bool bias : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "backward weights accumulate=" << accumulate << " bias=" << bias);
        const Tensor dw0 = random_tensor({m, k}, seed + 4), db0 = random_tensor({m}, seed + 5);
        Tensor dw = dw0.clone(), db = db0.clone(), dwg = up(dw0), dbg = up(db0);
        Tensor db_arg = bias ? db : Tensor(), dbg_arg = bias ? dbg : Tensor();
        linear_backward_weights(cpu_, x, dy, dw, db_arg, accumulate);
        linear_backward_weights(gpu_, xg, dyg, dwg, dbg_arg, accumulate);
        EXPECT_TRUE(close_to_max(dwg, dw, kGemmRtol));
        if (bias) {
          EXPECT_TRUE(close_to_max(dbg, db, kGemmRtol));
        } else {
          EXPECT_TRUE(bitwise_equal(dbg, db0)) << "db must be untouched when not passed";
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(OddShapes, CudaLinear,
                         ::testing::Values(LinearCase{3, 37, 19}, LinearCase{1, 1, 1},
                                           LinearCase{5, 7, 3}, LinearCase{2, 300, 1},
                                           LinearCase{128, 784, 64}, LinearCase{33, 2048, 10}));

// ---- convolution ----------------------------------------------------------------------------------

using test::ConvCase;

class CudaConv : public CudaOps, public ::testing::WithParamInterface<ConvCase> {};

TEST_P(CudaConv, ForwardBackwardMatchCpu) {
  const ConvCase cc = GetParam();
  const Conv2dParams p{cc.stride, cc.stride, cc.pad, cc.pad};
  const Shape xs{cc.n, cc.c, cc.h, cc.w}, ws{cc.o, cc.c, cc.k, cc.k};
  const Shape ys = conv2d_output_shape(xs, ws, p);
  for (std::uint64_t round = 0; round < 2; ++round) {
    const std::uint64_t seed = 10 * round + 21;
    const Tensor x = random_tensor(xs, seed), w = random_tensor(ws, seed + 1);
    const Tensor b = random_tensor({cc.o}, seed + 2), dy = random_tensor(ys, seed + 3);
    const Tensor xg = up(x), wg = up(w), bg = up(b), dyg = up(dy);
    for (const bool relu : {false, true}) {
      for (const bool bias : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "forward relu=" << relu << " bias=" << bias << " round=" << round);
        Tensor y = Tensor::full(ys, 123.0f), yg = Tensor::full(ys, 123.0f, kGpu);
        conv2d_forward(cpu_, x, w, bias ? b : Tensor(), y, p, relu);
        conv2d_forward(gpu_, xg, wg, bias ? bg : Tensor(), yg, p, relu);
        EXPECT_TRUE(close_to_max(yg, y, kGemmRtol));
      }
    }
    {
      SCOPED_TRACE("backward data");
      Tensor dx = Tensor::full(xs, 123.0f), dxg = Tensor::full(xs, 123.0f, kGpu);
      conv2d_backward_data(cpu_, dy, w, dx, p);
      conv2d_backward_data(gpu_, dyg, wg, dxg, p);
      EXPECT_TRUE(close_to_max(dxg, dx, kGemmRtol));
    }
    for (const bool accumulate : {false, true}) {
      for (const bool bias : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "backward weights accumulate=" << accumulate << " bias=" << bias);
        const Tensor dw0 = random_tensor(ws, seed + 4), db0 = random_tensor({cc.o}, seed + 5);
        Tensor dw = dw0.clone(), db = db0.clone(), dwg = up(dw0), dbg = up(db0);
        Tensor db_arg = bias ? db : Tensor(), dbg_arg = bias ? dbg : Tensor();
        conv2d_backward_weights(cpu_, x, dy, dw, db_arg, p, accumulate);
        conv2d_backward_weights(gpu_, xg, dyg, dwg, dbg_arg, p, accumulate);
        EXPECT_TRUE(close_to_max(dwg, dw, kGemmRtol));
        if (bias) {
          EXPECT_TRUE(close_to_max(dbg, db, kGemmRtol));
        } else {
          EXPECT_TRUE(bitwise_equal(dbg, db0)) << "db must be untouched when not passed";
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    OddShapes, CudaConv,
    ::testing::Values(ConvCase{3, 3, 5, 7, 5, 3, 1, 1},     // batch 3, 5x7, pad 1
                      ConvCase{3, 5, 9, 11, 4, 3, 2, 1},    // stride 2, pad 1
                      ConvCase{2, 3, 8, 8, 4, 5, 2, 2},     // 5x5 kernel, stride 2, pad 2
                      ConvCase{3, 5, 5, 7, 3, 1, 2, 0},     // 1x1 kernel, stride 2
                      ConvCase{1, 3, 1, 1, 5, 3, 1, 1},     // 1x1 image, 3x3 kernel, pad 1
                      ConvCase{1, 5, 5, 7, 3, 3, 2, 0},     // stride 2, no padding
                      ConvCase{4, 1, 28, 28, 32, 3, 1, 1},  // cnn layer 1
                      ConvCase{4, 32, 14, 14, 64, 3, 1, 1},  // cnn layer 2
                      ConvCase{3, 64, 7, 7, 64, 3, 1, 1}));  // cnn layer 3

// ---- max pooling ----------------------------------------------------------------------------------

struct PoolCase {
  std::int64_t n, c, h, w;
  int k, s, p;
};
std::ostream& operator<<(std::ostream& os, const PoolCase& c) {
  return os << "x[" << c.n << "," << c.c << "," << c.h << "," << c.w << "] k=" << c.k
            << " s=" << c.s << " p=" << c.p;
}

class CudaPool : public CudaOps, public ::testing::WithParamInterface<PoolCase> {};

TEST_P(CudaPool, ForwardBackwardMatchCpuBitwiseIncludingTies) {
  const PoolCase pc = GetParam();
  const Pool2dParams p{pc.k, pc.k, pc.s, pc.s, pc.p, pc.p};
  Tensor workspace, workspace_gpu;  // reused across rounds: the forward must reallocate as needed
  for (int round = 0; round < 4; ++round) {
    // Rounds 0/1: three values only (ties in almost every window); 2/3: continuous values. Odd
    // rounds add a sample, so the workspace of the previous round is too small.
    const Shape xs{pc.n + round % 2, pc.c, pc.h, pc.w};
    const Shape ys = pool2d_output_shape(xs, p);
    const std::uint64_t seed = 31 + static_cast<std::uint64_t>(round);
    const Tensor x = round < 2 ? levels_tensor(xs, seed, 3, 0.5f, -0.5f) : random_tensor(xs, seed);
    SCOPED_TRACE(::testing::Message() << "round " << round << (round < 2 ? " (ties)" : ""));
    Tensor y = Tensor::full(ys, 123.0f), yg = Tensor::full(ys, 123.0f, kGpu);
    max_pool2d_forward(cpu_, x, y, workspace, p);
    if (round == 0) {
      EXPECT_FALSE(workspace_gpu.defined());
    }
    max_pool2d_forward(gpu_, up(x), yg, workspace_gpu, p);
    ASSERT_TRUE(on_gpu(workspace_gpu)) << "the forward allocates the workspace on the device";
    EXPECT_TRUE(bitwise_equal(yg, y));

    // Multiples of 1/8 in [-1, 1]: a sum of the few gradients that meet at one input is exact in
    // any order, so this compares where each gradient went (the argmax, first in row-major order
    // on ties) bit for bit.
    const Tensor dy_exact = levels_tensor(ys, seed + 100, 17, 0.125f, -1.0f);
    Tensor dx = Tensor::full(xs, 123.0f), dxg = Tensor::full(xs, 123.0f, kGpu);
    max_pool2d_backward(cpu_, dy_exact, workspace, dx, p);
    max_pool2d_backward(gpu_, up(dy_exact), workspace_gpu, dxg, p);
    EXPECT_TRUE(bitwise_equal(dxg, dx)) << "dyadic gradients";

    const Tensor dy = random_tensor(ys, seed + 200);
    dx = Tensor::full(xs, 123.0f);
    dxg = Tensor::full(xs, 123.0f, kGpu);
    max_pool2d_backward(cpu_, dy, workspace, dx, p);
    max_pool2d_backward(gpu_, up(dy), workspace_gpu, dxg, p);
    EXPECT_TRUE(close(dxg, dx, 1e-6, 1e-6)) << "random gradients";
  }
}

INSTANTIATE_TEST_SUITE_P(
    OddShapes, CudaPool,
    ::testing::Values(PoolCase{3, 5, 9, 11, 3, 2, 1},   // overlapping windows, padding 1
                      PoolCase{2, 3, 7, 5, 3, 2, 1},    // the same on 7x5
                      PoolCase{2, 3, 5, 7, 3, 1, 1},    // stride 1: up to 9 windows per input
                      PoolCase{1, 2, 6, 6, 3, 3, 1},    // non-overlapping, padded
                      PoolCase{3, 5, 5, 7, 2, 2, 0},    // 2x2 on odd sizes (last row/col dropped)
                      PoolCase{1, 1, 1, 1, 1, 1, 0},    // 1x1
                      PoolCase{4, 32, 28, 28, 2, 2, 0}));  // the cnn's layer

// ---- elementwise ----------------------------------------------------------------------------------

const std::vector<std::int64_t> kSizes = {1, 7, 1023, (1 << 20) + 3};

// A view of n elements starting one element into its storage (unaligned for vector loads).
Tensor offset_view(const Tensor& base, std::int64_t n) { return Tensor::view_of(base, 1, {n}); }

TEST_F(CudaOps, ReluForwardBackwardBitwise) {
  for (const std::int64_t n : kSizes) {
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    const Tensor x = random_tensor({n}, 41), dy = random_tensor({n}, 42);
    Tensor y = Tensor::full({n}, 123.0f), yg = Tensor::full({n}, 123.0f, kGpu);
    relu_forward(cpu_, x, y);
    relu_forward(gpu_, up(x), yg);
    EXPECT_TRUE(bitwise_equal(yg, y));
    Tensor dx = Tensor::full({n}, 123.0f), dxg = Tensor::full({n}, 123.0f, kGpu);
    relu_backward(cpu_, y, dy, dx);
    relu_backward(gpu_, yg, up(dy), dxg);
    EXPECT_TRUE(bitwise_equal(dxg, dx));
    // In place (y aliases x, dx aliases dy), on views one element into their storage.
    const Tensor x1 = random_tensor({n + 1}, 43), dy1 = random_tensor({n + 1}, 44);
    Tensor xc = x1.clone(), xgb = up(x1);
    Tensor xv = offset_view(xc, n), xgv = offset_view(xgb, n);
    relu_forward(cpu_, xv, xv);
    relu_forward(gpu_, xgv, xgv);
    EXPECT_TRUE(bitwise_equal(xgb, xc)) << "in place, offset view";
    Tensor dyc = dy1.clone(), dygb = up(dy1);
    Tensor dyv = offset_view(dyc, n), dygv = offset_view(dygb, n);
    relu_backward(cpu_, xv, dyv, dyv);
    relu_backward(gpu_, xgv, dygv, dygv);
    EXPECT_TRUE(bitwise_equal(dygb, dyc)) << "backward in place, offset view";
  }
}

TEST_F(CudaOps, DropoutMatchesCpuMaskBitwise) {
  struct Case {
    Shape shape;
    float p;
    DropoutKey key;
  };
  const std::vector<Case> cases = {
      {{5, 37}, 0.3f, {0x0123456789abcdefULL, 7, 3, 1000}},
      {{3, 2, 5, 7}, 0.5f, {42, 1, 0, 17}},
      {{64, 2048}, 0.25f, {5, 123456, 9, 64 * 1000 + 1}},
      {{4, 5}, 0.1f, {99, 2, 1, (std::int64_t{1} << 32) + 5}},  // sample index above 2^32
      {{1, 1}, 0.5f, {3, 0, 0, 1}},
      {{6, 13}, 0.0f, {8, 3, 2, 11}},                           // p = 0: mask all ones
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "shape " << to_string(c.shape) << " p=" << c.p
                                      << " first_sample=" << c.key.first_sample);
    const Tensor x = random_tensor(c.shape, 51);
    Tensor y = Tensor::full(c.shape, 123.0f), mask = Tensor::full(c.shape, 123.0f);
    Tensor yg = Tensor::full(c.shape, 123.0f, kGpu), maskg = Tensor::full(c.shape, 123.0f, kGpu);
    dropout_forward(cpu_, x, y, mask, c.p, c.key);
    dropout_forward(gpu_, up(x), yg, maskg, c.p, c.key);
    EXPECT_TRUE(bitwise_equal(maskg, mask)) << "mask";
    EXPECT_TRUE(bitwise_equal(yg, y)) << "output";

    const Tensor dy = random_tensor(c.shape, 52);
    Tensor dx = Tensor::full(c.shape, 123.0f), dxg = Tensor::full(c.shape, 123.0f, kGpu);
    dropout_backward(cpu_, dy, mask, dx);
    dropout_backward(gpu_, up(dy), maskg, dxg);
    EXPECT_TRUE(bitwise_equal(dxg, dx)) << "backward";

    // In place: y aliases x, dx aliases dy.
    Tensor xg_inplace = up(x), mask2 = Tensor::full(c.shape, 123.0f, kGpu);
    dropout_forward(gpu_, xg_inplace, xg_inplace, mask2, c.p, c.key);
    EXPECT_TRUE(bitwise_equal(xg_inplace, y)) << "forward in place";
    Tensor dyg_inplace = up(dy);
    dropout_backward(gpu_, dyg_inplace, maskg, dyg_inplace);
    EXPECT_TRUE(bitwise_equal(dyg_inplace, dx)) << "backward in place";
  }
}

TEST_F(CudaOps, DropoutMaskOfASampleDoesNotDependOnTheBatchSplit) {
  const Shape shape{8, 3, 5, 5};
  const std::int64_t per_sample = 75;
  const DropoutKey key{77, 4, 2, 500};
  const Tensor xg = up(random_tensor(shape, 61));
  Tensor y = Tensor::empty(shape, DType::kF32, kGpu), mask = Tensor::empty(shape, DType::kF32, kGpu);
  dropout_forward(gpu_, xg, y, mask, 0.5f, key);
  const std::vector<float> whole = mask.to_vector();
  // Samples 3..5 alone, as another rank (or micro-batch) would see them.
  const Tensor part = Tensor::view_of(xg, 3 * per_sample, {3, 3, 5, 5});
  Tensor ypart = Tensor::empty({3, 3, 5, 5}, DType::kF32, kGpu);
  Tensor mpart = Tensor::empty({3, 3, 5, 5}, DType::kF32, kGpu);
  DropoutKey shifted = key;
  shifted.first_sample += 3;
  dropout_forward(gpu_, part, ypart, mpart, 0.5f, shifted);
  const std::vector<float> got = mpart.to_vector();
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i], whole[3 * per_sample + i]) << "element " << i;
  }
}

TEST_F(CudaOps, ScaleAndAxpyBitwise) {
  for (const std::int64_t n : kSizes) {
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    const Tensor x1 = random_tensor({n + 1}, 71), y1 = random_tensor({n + 1}, 72);
    for (const bool offset : {false, true}) {
      SCOPED_TRACE(offset ? "views at offset 1" : "whole tensors");
      Tensor yc = y1.clone(), yg = up(y1);
      Tensor ycv = offset ? offset_view(yc, n) : yc, ygv = offset ? offset_view(yg, n) : yg;
      scale(cpu_, ycv, 0.37f);
      scale(gpu_, ygv, 0.37f);
      EXPECT_TRUE(bitwise_equal(yg, yc)) << "scale";

      const Tensor xg = up(x1);
      const Tensor xcv = offset ? offset_view(x1, n) : x1, xgv = offset ? offset_view(xg, n) : xg;
      axpy(cpu_, -1.7f, xcv, ycv);
      axpy(gpu_, -1.7f, xgv, ygv);
      EXPECT_TRUE(bitwise_equal(yg, yc)) << "axpy (a fused multiply-add differs from y + a*x)";
    }
  }
}

TEST_F(CudaOps, SumSquaresWithin1e12) {
  for (const std::int64_t n : {std::int64_t{1}, std::int64_t{7}, std::int64_t{4097},
                               std::int64_t{100003}, std::int64_t{(1 << 20) + 3}}) {
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    const Tensor x1 = random_tensor({n + 1}, 81, -3.0f, 3.0f);
    const Tensor xg = up(x1);
    const double want = sum_squares(cpu_, x1), got = sum_squares(gpu_, xg);
    EXPECT_NEAR(got, want, 1e-12 * want);
    const double want_view = sum_squares(cpu_, offset_view(x1, n));
    const double got_view = sum_squares(gpu_, offset_view(xg, n));
    EXPECT_NEAR(got_view, want_view, 1e-12 * want_view) << "view at offset 1";
  }
}

// ---- integrity checks ---------------------------------------------------------------------------

TEST_F(CudaOps, FindNonfiniteMatchesCpu) {
  for (const std::int64_t n : kSizes) {
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    Tensor x1 = random_tensor({n}, 91);
    for (const std::int64_t at : {n, n - 1, n / 2, std::int64_t{0}}) {
      Tensor x = x1.clone();
      if (at < n) x.data<float>()[at] = std::numeric_limits<float>::quiet_NaN();
      if (at + 1 < n) x.data<float>()[n - 1] = std::numeric_limits<float>::infinity();
      Tensor index_c = Tensor::zeros({1}, DType::kI32);
      Tensor index_g = Tensor::zeros({1}, DType::kI32, kGpu);
      find_nonfinite(cpu_, x, index_c);
      find_nonfinite(gpu_, up(x), index_g);
      EXPECT_EQ(index_g.to(Device::cpu()).data<std::int32_t>()[0], at);
      EXPECT_EQ(index_c.data<std::int32_t>()[0], at);
    }
  }
}

TEST_F(CudaOps, HashBitsMatchesCpu) {
  for (const std::int64_t n : kSizes) {
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    const Tensor x1 = random_tensor({n + 1}, 92);
    const Tensor xg = up(x1);
    EXPECT_EQ(hash_bits(gpu_, xg), hash_bits(cpu_, x1));
    EXPECT_EQ(hash_bits(gpu_, offset_view(xg, n)), hash_bits(cpu_, offset_view(x1, n)));
  }
}

// ---- softmax cross-entropy ------------------------------------------------------------------------

TEST_F(CudaOps, SoftmaxCrossEntropyMatchesCpu) {
  struct Case {
    std::int64_t n, classes;
    bool ties;
  };
  for (const Case& c : {Case{37, 10, false}, Case{3, 1, false}, Case{1, 7, false},
                        Case{129, 1000, false}, Case{64, 10, true}, Case{5, 3, true}}) {
    SCOPED_TRACE(::testing::Message() << "n=" << c.n << " classes=" << c.classes << (c.ties ? " ties" : ""));
    const Shape shape{c.n, c.classes};
    // Ties: integer logits in [-2, 2], so argmax ties are frequent (the first index wins).
    const Tensor logits = c.ties ? levels_tensor(shape, 91, 5, 1.0f, -2.0f)
                                 : random_tensor(shape, 91, -8.0f, 8.0f);
    const Tensor labels = labels_tensor(c.n, c.classes);
    const Tensor logits_g = up(logits), labels_g = labels.to(kGpu);
    Tensor d = Tensor::full(shape, 123.0f), dg = Tensor::full(shape, 123.0f, kGpu);
    const LossResult want = softmax_cross_entropy(cpu_, logits, labels, &d);
    const LossResult got = softmax_cross_entropy(gpu_, logits_g, labels_g, &dg);
    EXPECT_NEAR(got.loss_sum, want.loss_sum, 1e-9 * std::abs(want.loss_sum) + 1e-300);
    EXPECT_EQ(got.correct, want.correct);
    EXPECT_TRUE(close(dg, d, 1e-6, 1e-7)) << "dlogits";

    // Without a gradient: a null pointer and an undefined tensor.
    const LossResult no_grad = softmax_cross_entropy(gpu_, logits_g, labels_g, nullptr);
    EXPECT_NEAR(no_grad.loss_sum, want.loss_sum, 1e-9 * std::abs(want.loss_sum) + 1e-300);
    EXPECT_EQ(no_grad.correct, want.correct);
    Tensor undefined;
    const LossResult undefined_grad = softmax_cross_entropy(gpu_, logits_g, labels_g, &undefined);
    EXPECT_NEAR(undefined_grad.loss_sum, want.loss_sum, 1e-9 * std::abs(want.loss_sum) + 1e-300);
    EXPECT_FALSE(undefined.defined());
  }
}

// A label outside [0, classes) is refused with the CPU backend's words, naming the first such
// sample (the kernel flags it; nothing reads a logit at that label).
TEST_F(CudaOps, SoftmaxCrossEntropyRefusesBadLabelsLikeTheCpu) {
  const Tensor logits = random_tensor({6, 4}, 5, -1.0f, 1.0f);
  for (const std::int32_t bad : {4, -1, 1000}) {
    Tensor labels = labels_tensor(6, 4);
    labels.data<std::int32_t>()[3] = bad;
    labels.data<std::int32_t>()[5] = bad;
    std::string cpu_message, gpu_message;
    try {
      (void)softmax_cross_entropy(cpu_, logits, labels, nullptr);
    } catch (const Error& e) {
      cpu_message = e.message();
    }
    try {
      (void)softmax_cross_entropy(gpu_, up(logits), labels.to(kGpu), nullptr);
    } catch (const Error& e) {
      gpu_message = e.message();
    }
    EXPECT_THAT(cpu_message, ::testing::HasSubstr("label " + std::to_string(bad) + " of sample 3"));
    EXPECT_EQ(gpu_message, cpu_message);
  }
}

// ---- optimizers -----------------------------------------------------------------------------------

constexpr std::int64_t kOptimNumel = 100003;
// One rounding of a few terms apart (a fused multiply-add on the GPU); atol for values near 0.
constexpr double kOptimRtol = 1e-6, kOptimAtol = 1e-7;

TEST_F(CudaOps, SgdStepMatchesCpu) {
  struct Case {
    const char* name;
    SgdHyper h;
  };
  const std::vector<Case> cases = {
      {"plain", {0.1, 0.0, 0.0, 0.0, false, 1.0}},
      {"plain, weight decay, grad_scale", {0.05, 0.0, 0.0, 1e-2, false, 1.0 / 128}},
      {"momentum", {0.1, 0.9, 0.0, 0.0, false, 1.0}},
      {"momentum, dampening, weight decay", {0.05, 0.9, 0.1, 1e-2, false, 1.0}},
      {"nesterov, weight decay", {0.1, 0.9, 0.0, 5e-4, true, 1.0}},
      {"nesterov, grad_scale", {0.02, 0.95, 0.0, 1e-4, true, 1.0 / 96}},
  };
  const Shape shape{kOptimNumel};
  const Tensor param0 = random_tensor(shape, 101), grad = random_tensor(shape, 102, -2.0f, 2.0f);
  const Tensor buf0 = random_tensor(shape, 103);
  for (const Case& c : cases) {
    for (const bool first_step : {true, false}) {
      SCOPED_TRACE(::testing::Message() << c.name << ", first_step=" << first_step);
      const bool momentum = c.h.momentum != 0.0;
      Tensor p = param0.clone(), pg = up(param0);
      // Without momentum the buffer is not used: pass none.
      Tensor b = momentum ? buf0.clone() : Tensor(), bg = momentum ? up(buf0) : Tensor();
      sgd_step(cpu_, p, grad, b, c.h, first_step);
      sgd_step(gpu_, pg, up(grad), bg, c.h, first_step);
      EXPECT_TRUE(close(pg, p, kOptimRtol, kOptimAtol)) << "param";
      if (momentum) {
        EXPECT_TRUE(close(bg, b, kOptimRtol, kOptimAtol)) << "momentum buffer";
      }
      // Two more steps from there, the buffer carried over.
      for (int step = 0; step < 2; ++step) {
        sgd_step(cpu_, p, grad, b, c.h, false);
        sgd_step(gpu_, pg, up(grad), bg, c.h, false);
      }
      EXPECT_TRUE(close(pg, p, 3 * kOptimRtol, 3 * kOptimAtol)) << "param after 3 steps";
    }
  }
}

TEST_F(CudaOps, AdamWStepMatchesCpu) {
  const Shape shape{kOptimNumel};
  const Tensor param0 = random_tensor(shape, 111), grad = random_tensor(shape, 112, -2.0f, 2.0f);
  const Tensor m0 = random_tensor(shape, 113, -0.1f, 0.1f), v0 = random_tensor(shape, 114, 0.0f, 0.01f);
  const AdamWHyper defaults{1e-3, 0.9, 0.999, 1e-8, 1e-2, 1.0};
  const AdamWHyper custom{1e-2, 0.8, 0.99, 1e-6, 0.1, 0.25};
  for (const AdamWHyper& h : {defaults, custom}) {
    for (const std::int64_t step : {std::int64_t{1}, std::int64_t{1000}}) {
      SCOPED_TRACE(::testing::Message() << "lr=" << h.lr << " step=" << step);
      // Step 1 starts from zero moments (as a fresh optimizer), later steps from given ones.
      const Tensor m_init = step == 1 ? Tensor::zeros(shape) : m0;
      const Tensor v_init = step == 1 ? Tensor::zeros(shape) : v0;
      Tensor p = param0.clone(), m = m_init.clone(), v = v_init.clone();
      Tensor pg = up(param0), mg = up(m_init), vg = up(v_init);
      adamw_step(cpu_, p, grad, m, v, h, step);
      adamw_step(gpu_, pg, up(grad), mg, vg, h, step);
      EXPECT_TRUE(close(pg, p, kOptimRtol, kOptimAtol)) << "param";
      EXPECT_TRUE(close(mg, m, kOptimRtol, kOptimAtol)) << "exp_avg";
      EXPECT_TRUE(close(vg, v, kOptimRtol, 1e-12)) << "exp_avg_sq";
    }
  }
}

// ---- device checks --------------------------------------------------------------------------------

// Runs `op` and expects a dpt::Error whose text names both devices involved.
template <typename Op>
void expect_device_error(const char* what, Op&& op) {
  try {
    op();
    ADD_FAILURE() << what << ": no error";
  } catch (const Error& e) {
    const std::string text = e.what();
    EXPECT_NE(text.find("cuda:0"), std::string::npos) << what << ": " << text;
    EXPECT_NE(text.find("cpu"), std::string::npos) << what << ": " << text;
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << ": not a dpt::Error: " << e.what();
  }
}

TEST_F(CudaOps, TensorOnTheWrongDeviceThrows) {
  const Tensor x = random_tensor({4, 6}, 121), w = random_tensor({3, 6}, 122);
  const Tensor xg = up(x), wg = up(w);
  Tensor yg = Tensor::empty({4, 6}, DType::kF32, kGpu), y = Tensor::empty({4, 6});
  expect_device_error("relu: CPU input on a CUDA context", [&] { relu_forward(gpu_, x, yg); });
  expect_device_error("relu: CPU output on a CUDA context", [&] { relu_forward(gpu_, xg, y); });
  expect_device_error("relu: CUDA tensors on a CPU context", [&] { relu_forward(cpu_, xg, yg); });
  Tensor lin = Tensor::empty({4, 3}, DType::kF32, kGpu);
  expect_device_error("linear: CPU weight on a CUDA context",
                      [&] { linear_forward(gpu_, xg, w, Tensor(), lin, false); });
  expect_device_error("linear: CPU bias on a CUDA context",
                      [&] { linear_forward(gpu_, xg, wg, Tensor::zeros({3}), lin, false); });
  const Tensor labels = labels_tensor(4, 6);
  expect_device_error("softmax: CPU labels on a CUDA context",
                      [&] { softmax_cross_entropy(gpu_, xg, labels, nullptr); });
  Tensor momentum = Tensor::zeros({4, 6});
  expect_device_error("sgd: CPU momentum buffer on a CUDA context", [&] {
    sgd_step(gpu_, yg, xg, momentum, SgdHyper{0.1, 0.9, 0.0, 0.0, false, 1.0}, true);
  });
  expect_device_error("sum_squares: CPU tensor on a CUDA context", [&] { sum_squares(gpu_, x); });
  // The pooling workspace of a CPU forward given to a CUDA backward.
  const Pool2dParams p{2, 2, 2, 2, 0, 0};
  const Tensor img = random_tensor({1, 2, 4, 4}, 123);
  Tensor pooled = Tensor::empty({1, 2, 2, 2}), cpu_workspace;
  max_pool2d_forward(cpu_, img, pooled, cpu_workspace, p);
  Tensor dxg = Tensor::empty({1, 2, 4, 4}, DType::kF32, kGpu);
  expect_device_error("max pool: CPU workspace on a CUDA context", [&] {
    max_pool2d_backward(gpu_, up(pooled), cpu_workspace, dxg, p);
  });
}

// ---- transformer layers ---------------------------------------------------------------------
// Bitwise: embedding (forward, backward with and without accumulation; dwpe's rows past T keep
// their values), layer norm (statistics, output, gradients: the same sums in the same order),
// add, and attention's dropout mask. To float rounding: GELU (the device's expf) and attention
// (dot products in index order against the CPU's dnnl_sgemm), at T = 37 and 70 (past the CPU's
// causal blocks of 32 rows), with and without dropout.

Tensor tokens_tensor(const Shape& shape, std::int32_t vocab, std::uint64_t seed) {
  Tensor t = Tensor::empty(shape, DType::kI32);
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<std::int32_t> dist(0, vocab - 1);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data<std::int32_t>()[i] = dist(gen);
  return t;
}

TEST_F(CudaOps, EmbeddingMatchesCpuBitwise) {
  const std::int64_t B = 3, T = 37, C = 19, V = 11, P = 40;
  const Tensor tokens = tokens_tensor({B, T}, static_cast<std::int32_t>(V), 131);
  const Tensor wte = random_tensor({V, C}, 132), wpe = random_tensor({P, C}, 133);
  Tensor y = Tensor::full({B, T, C}, 123.0f), yg = Tensor::full({B, T, C}, 123.0f, kGpu);
  embedding_forward(cpu_, tokens, wte, wpe, y);
  embedding_forward(gpu_, up(tokens), up(wte), up(wpe), yg);
  EXPECT_TRUE(bitwise_equal(yg, y));
  const Tensor dy = random_tensor({B, T, C}, 134);
  for (const bool accumulate : {false, true}) {
    SCOPED_TRACE(accumulate ? "accumulate" : "overwrite");
    Tensor dwte = Tensor::full({V, C}, 123.0f), dwpe = Tensor::full({P, C}, 123.0f);
    Tensor dwteg = up(dwte), dwpeg = up(dwpe);
    embedding_backward(cpu_, tokens, dy, dwte, dwpe, accumulate, accumulate);
    embedding_backward(gpu_, up(tokens), up(dy), dwteg, dwpeg, accumulate, accumulate);
    EXPECT_TRUE(bitwise_equal(dwteg, dwte)) << "dwte";
    EXPECT_TRUE(bitwise_equal(dwpeg, dwpe)) << "dwpe";
  }
  Tensor bad = tokens.clone();
  bad.data<std::int32_t>()[T + 2] = static_cast<std::int32_t>(V);  // b = 1, t = 2
  try {
    embedding_forward(gpu_, up(bad), up(wte), up(wpe), yg);
    ADD_FAILURE() << "no error for a token outside the vocabulary";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("tokens[b=1, t=2] = 11"));
  }
}

TEST_F(CudaOps, LayerNormMatchesCpuBitwise) {
  const std::int64_t rows = 75, C = 37;
  const Tensor x = random_tensor({rows, C}, 141, -2.0f, 3.0f), gamma = random_tensor({C}, 142);
  const Tensor beta = random_tensor({C}, 143), dy = random_tensor({rows, C}, 144);
  for (const bool bias : {true, false}) {
    SCOPED_TRACE(bias ? "with bias" : "without bias");
    const Tensor b = bias ? beta : Tensor(), bg = bias ? up(beta) : Tensor();
    Tensor y = Tensor::full({rows, C}, 123.0f), mean = Tensor::full({rows}, 123.0f),
           rstd = Tensor::full({rows}, 123.0f);
    Tensor yg = up(y), meang = up(mean), rstdg = up(rstd);
    layer_norm_forward(cpu_, x, gamma, b, y, mean, rstd, 1e-5f);
    layer_norm_forward(gpu_, up(x), up(gamma), bg, yg, meang, rstdg, 1e-5f);
    EXPECT_TRUE(bitwise_equal(yg, y)) << "y";
    EXPECT_TRUE(bitwise_equal(meang, mean)) << "mean";
    EXPECT_TRUE(bitwise_equal(rstdg, rstd)) << "rstd";
    for (const bool accumulate : {false, true}) {
      Tensor dx = Tensor::full({rows, C}, 123.0f), dgamma = Tensor::full({C}, 0.5f);
      Tensor dbeta = bias ? Tensor::full({C}, 0.25f) : Tensor();
      Tensor dxg = up(dx), dgammag = up(dgamma), dbetag = bias ? up(dbeta) : Tensor();
      layer_norm_backward(cpu_, x, gamma, mean, rstd, dy, dx, dgamma, dbeta, accumulate);
      layer_norm_backward(gpu_, up(x), up(gamma), meang, rstdg, up(dy), dxg, dgammag, dbetag,
                          accumulate);
      EXPECT_TRUE(bitwise_equal(dxg, dx)) << "dx";
      EXPECT_TRUE(bitwise_equal(dgammag, dgamma)) << "dgamma";
      if (bias) {
        EXPECT_TRUE(bitwise_equal(dbetag, dbeta)) << "dbeta";
      }
    }
  }
}

TEST_F(CudaOps, GeluAndAddMatchCpu) {
  for (const std::int64_t n : kSizes) {
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    const Tensor x = random_tensor({n}, 151, -8.0f, 8.0f), dy = random_tensor({n}, 152);
    Tensor y = Tensor::full({n}, 123.0f), yg = Tensor::full({n}, 123.0f, kGpu);
    gelu_forward(cpu_, x, y);
    gelu_forward(gpu_, up(x), yg);
    // The device's expf is within 2 ulp, glibc's within 1: a few ulp apart after the divisions,
    // and the derivative's two terms cancel near its zero at x = -0.75.
    EXPECT_TRUE(close(yg, y, 1e-5, 1e-6)) << "gelu";
    Tensor dx = Tensor::full({n}, 123.0f), dxg = Tensor::full({n}, 123.0f, kGpu);
    gelu_backward(cpu_, x, dy, dx);
    gelu_backward(gpu_, up(x), up(dy), dxg);
    EXPECT_TRUE(close(dxg, dx, 1e-5, 1e-6)) << "gelu backward";
    Tensor sum = Tensor::full({n}, 123.0f), sumg = Tensor::full({n}, 123.0f, kGpu);
    add(cpu_, x, dy, sum);
    add(gpu_, up(x), up(dy), sumg);
    EXPECT_TRUE(bitwise_equal(sumg, sum)) << "add";
  }
}

TEST_F(CudaOps, AttentionMatchesCpu) {
  for (const std::int64_t T : {5, 37, 70}) {
    for (const float p : {0.0f, 0.2f}) {
      SCOPED_TRACE(::testing::Message() << "T=" << T << " p=" << p);
      const std::int64_t B = 2, C = 12;
      const int heads = 3;
      const DropoutKey key{0xfeedULL, 9, 2, (std::int64_t{1} << 32) + 3};
      const Tensor qkv = random_tensor({B, T, 3 * C}, 161, -2.0f, 2.0f);
      const Tensor dy = random_tensor({B, T, C}, 162);
      Tensor y = Tensor::full({B, T, C}, 123.0f), att = Tensor::full({B, heads, T, T}, 123.0f);
      Tensor mask = Tensor::full(att.shape(), 123.0f);
      Tensor yg = up(y), attg = up(att), maskg = up(mask);
      attention_forward(cpu_, qkv, y, att, mask, heads, p, key);
      attention_forward(gpu_, up(qkv), yg, attg, maskg, heads, p, key);
      EXPECT_TRUE(close(yg, y, 1e-4, 1e-5)) << "y";
      EXPECT_TRUE(close(attg, att, 1e-4, 1e-6)) << "att";
      if (p > 0.0f) {
        EXPECT_TRUE(bitwise_equal(maskg, mask)) << "att_mask";
      }
      Tensor dqkv = Tensor::full(qkv.shape(), 123.0f), dqkvg = up(dqkv);
      attention_backward(cpu_, qkv, att, mask, dy, dqkv, heads, p);
      attention_backward(gpu_, up(qkv), attg, maskg, up(dy), dqkvg, heads, p);
      EXPECT_TRUE(close(dqkvg, dqkv, 1e-4, 1e-5)) << "dqkv";
    }
  }
}

// ---- precision --------------------------------------------------------------------------------

bool same_bytes(const Tensor& gpu, const Tensor& cpu) {
  const Tensor back = gpu.to(Device::cpu());
  return back.size_bytes() == cpu.size_bytes() &&
         std::memcmp(back.raw_data(), cpu.raw_data(), cpu.size_bytes()) == 0;
}

TEST(CudaCast, EveryPatternAndBoundaryFloatGiveTheCpuBits) {
  const Context cpu = Context::create(Device::cpu()), gpu = Context::create(kGpu);
  for (const DType format : {DType::kBF16, DType::kF16}) {
    SCOPED_TRACE(std::string(to_string(format)));
    Tensor patterns = Tensor::empty({65536}, format);
    auto* bits = static_cast<std::uint16_t*>(patterns.raw_data());
    for (std::uint32_t i = 0; i < 65536; ++i) bits[i] = static_cast<std::uint16_t>(i);
    Tensor widened = Tensor::full({65536}, 123.0f), widened_g = up(widened);
    cast(cpu, patterns, widened);
    cast(gpu, up(patterns), widened_g);
    EXPECT_TRUE(same_bytes(widened_g, widened)) << "half -> float";

    // Every widened pattern, each one float ulp either side (midpoints' neighbourhoods, overflow,
    // subnormals, NaN payloads), and random bits.
    std::vector<float> probes;
    std::mt19937 rng(5);
    for (std::int64_t i = 0; i < 65536; ++i) {
      const float v = widened.data<float>()[i];
      probes.insert(probes.end(), {v, std::nextafter(v, -INFINITY), std::nextafter(v, INFINITY)});
      std::uint32_t r = static_cast<std::uint32_t>(rng());
      float f = 0;
      std::memcpy(&f, &r, sizeof f);
      probes.push_back(f);
    }
    const std::int64_t n = static_cast<std::int64_t>(probes.size());
    Tensor x = Tensor::empty({n});
    std::copy(probes.begin(), probes.end(), x.data<float>());
    Tensor narrow = Tensor::empty({n}, format), narrow_g = Tensor::empty({n}, format, kGpu);
    cast(cpu, x, narrow);
    cast(gpu, up(x), narrow_g);
    EXPECT_TRUE(same_bytes(narrow_g, narrow)) << "float -> half";
    Tensor rounded = Tensor::full({n}, 123.0f), rounded_g = up(rounded);
    round_to_format(cpu, x, rounded, format);
    round_to_format(gpu, up(x), rounded_g, format);
    EXPECT_TRUE(same_bytes(rounded_g, rounded)) << "round_to_format";
  }
}

// ---- half operands and TF32 on tensor cores
// ------------------------------------------------------ cuBLASLt and cuDNN take bf16/f16 operands
// as they are (Note [Half and TF32 GEMMs], Note [Half convolutions on cuDNN]); the CPU widens the
// same half values and sums in f32. Products of half values are exact in f32, so the results differ
// by the order of the sums, plus, for cuDNN's half convolutions, one rounding of each result to the
// format (at most 2^-9 of bf16, 2^-12 of f16, relative; the bound below allows twice that).

Tensor in_format(const Context& cpu, const Tensor& t, DType format) {
  Tensor h = Tensor::empty(t.shape(), format);
  cast(cpu, t, h);
  return h;
}

double rounded_result_rtol(DType format) {
  return kGemmRtol + (format == DType::kBF16 ? 0x1p-8 : 0x1p-11);
}

// Every value of t (f32) is a value of `format`.
bool all_in_format(const Context& cpu, const Tensor& t, DType format) {
  const Tensor host = t.to(Device::cpu());
  Tensor rounded = Tensor::empty(host.shape());
  round_to_format(cpu, host, rounded, format);
  return std::memcmp(rounded.raw_data(), host.raw_data(), host.size_bytes()) == 0;
}

class CudaHalfOperands : public CudaOps, public ::testing::WithParamInterface<DType> {};

TEST_P(CudaHalfOperands, LinearOnTensorCoresMatchesTheCpuEmulation) {
  const DType format = GetParam();
  for (const LinearCase c : {LinearCase{33, 300, 19}, LinearCase{128, 784, 64}}) {
    SCOPED_TRACE(::testing::Message() << c);
    const Tensor x = in_format(cpu_, random_tensor({c.n, c.k}, 61), format);
    const Tensor w = in_format(cpu_, random_tensor({c.m, c.k}, 62), format);
    const Tensor dy = in_format(cpu_, random_tensor({c.n, c.m}, 63), format);
    const Tensor b = random_tensor({c.m}, 64);
    Tensor y = Tensor::full({c.n, c.m}, 123.0f), yg = up(y);
    linear_forward(cpu_, x, w, b, y, /*relu=*/true);
    linear_forward(gpu_, up(x), up(w), up(b), yg, /*relu=*/true);
    EXPECT_TRUE(close_to_max(yg, y, kGemmRtol)) << "forward";

    Tensor dx = Tensor::full({c.n, c.k}, 123.0f), dxg = up(dx);
    linear_backward_data(cpu_, dy, w, dx);
    linear_backward_data(gpu_, up(dy), up(w), dxg);
    EXPECT_TRUE(close_to_max(dxg, dx, kGemmRtol)) << "backward data";

    const Tensor dw0 = random_tensor({c.m, c.k}, 65), db0 = random_tensor({c.m}, 66);
    Tensor dw = dw0.clone(), db = db0.clone(), dwg = up(dw0), dbg = up(db0);
    linear_backward_weights(cpu_, x, dy, dw, db, /*accumulate=*/true);
    linear_backward_weights(gpu_, up(x), up(dy), dwg, dbg, /*accumulate=*/true);
    EXPECT_TRUE(close_to_max(dwg, dw, kGemmRtol)) << "backward weights";
    EXPECT_TRUE(close_to_max(dbg, db, 1e-6)) << "bias gradient of a half dy";
  }
}

TEST_P(CudaHalfOperands, ConvOnTensorCoresMatchesTheCpuEmulationUpToOneRounding) {
  const DType format = GetParam();
  for (const ConvCase cc :
       {ConvCase{3, 5, 9, 11, 4, 3, 2, 1}, ConvCase{4, 32, 14, 14, 64, 3, 1, 1}}) {
    SCOPED_TRACE(::testing::Message() << cc);
    const Conv2dParams p{cc.stride, cc.stride, cc.pad, cc.pad};
    const Shape xs{cc.n, cc.c, cc.h, cc.w}, ws{cc.o, cc.c, cc.k, cc.k};
    const Shape ys = conv2d_output_shape(xs, ws, p);
    const Tensor x = in_format(cpu_, random_tensor(xs, 71), format);
    const Tensor w = in_format(cpu_, random_tensor(ws, 72), format);
    const Tensor dy = in_format(cpu_, random_tensor(ys, 73), format);
    const Tensor b = random_tensor({cc.o}, 74);
    {
      Tensor y = Tensor::full(ys, 123.0f), yg = up(y);
      conv2d_forward(cpu_, x, w, Tensor(), y, p, /*relu=*/false);
      conv2d_forward(gpu_, up(x), up(w), Tensor(), yg, p, /*relu=*/false);
      EXPECT_TRUE(close_to_max(yg, y, rounded_result_rtol(format))) << "forward";
      EXPECT_TRUE(all_in_format(cpu_, yg, format)) << "cuDNN's half result, widened";
    }
    {
      Tensor y = Tensor::full(ys, 123.0f), yg = up(y);
      conv2d_forward(cpu_, x, w, b, y, p, /*relu=*/true);
      conv2d_forward(gpu_, up(x), up(w), up(b), yg, p, /*relu=*/true);
      EXPECT_TRUE(close_to_max(yg, y, rounded_result_rtol(format))) << "forward, bias and ReLU";
    }
    Tensor dx = Tensor::full(xs, 123.0f), dxg = up(dx);
    conv2d_backward_data(cpu_, dy, w, dx, p);
    conv2d_backward_data(gpu_, up(dy), up(w), dxg, p);
    EXPECT_TRUE(close_to_max(dxg, dx, rounded_result_rtol(format))) << "backward data";

    for (const bool accumulate : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "accumulate=" << accumulate);
      const Tensor dw0 = random_tensor(ws, 75), db0 = random_tensor({cc.o}, 76);
      Tensor dw = dw0.clone(), db = db0.clone(), dwg = up(dw0), dbg = up(db0);
      conv2d_backward_weights(cpu_, x, dy, dw, db, p, accumulate);
      conv2d_backward_weights(gpu_, up(x), up(dy), dwg, dbg, p, accumulate);
      EXPECT_TRUE(close_to_max(dwg, dw, rounded_result_rtol(format))) << "backward weights";
      EXPECT_TRUE(close_to_max(dbg, db, 1e-5)) << "bias gradient of a half dy";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, CudaHalfOperands, ::testing::Values(DType::kBF16, DType::kF16),
                         [](const ::testing::TestParamInfo<DType>& param) {
                           return std::string(to_string(param.param));
                         });

// TF32 inputs have 10-bit significands: each product is within about 2^-10 relative, the sums
// within a few 1e-3 of the largest magnitude. Without the flag the same context type stays at
// fp32's 1e-4 (CudaLinear, CudaConv), and the flag must change the bits: a TF32 switch that
// silently ran fp32 would pass a tolerance alone.
constexpr double kTf32Rtol = 5e-3;

TEST_F(CudaOps, Tf32RunsFp32GemmsAndConvolutionsOnTensorCoresOnlyWhenAllowed) {
  Context tf32 = Context::create(kGpu);
  tf32.set_allow_tf32(true);
  ASSERT_TRUE(tf32.allow_tf32());
  const Tensor x = random_tensor({128, 784}, 81), w = random_tensor({64, 784}, 82);
  Tensor y = Tensor::empty({128, 64}), y32 = Tensor::empty({128, 64}, DType::kF32, kGpu);
  Tensor ytf = Tensor::empty({128, 64}, DType::kF32, kGpu);
  linear_forward(cpu_, x, w, Tensor(), y, false);
  linear_forward(gpu_, up(x), up(w), Tensor(), y32, false);
  linear_forward(tf32, up(x), up(w), Tensor(), ytf, false);
  // NVIDIA_TF32_OVERRIDE=0 turns TF32 off in cuBLAS and cuDNN whatever the program asks.
  const char* override_env = std::getenv("NVIDIA_TF32_OVERRIDE");
  const bool tf32_overridden = override_env != nullptr && std::string(override_env) == "0";
  EXPECT_TRUE(close_to_max(y32, y, kGemmRtol)) << "fp32 without the flag";
  EXPECT_TRUE(close_to_max(ytf, y, kTf32Rtol)) << "TF32";
  if (!tf32_overridden) {
    EXPECT_FALSE(same_bytes(ytf, y32.to(Device::cpu()))) << "--tf32 changed nothing (GEMM)";
  }

  const Conv2dParams p{1, 1, 1, 1};
  const Tensor cx = random_tensor({4, 32, 14, 14}, 83), cw = random_tensor({64, 32, 3, 3}, 84);
  const Shape ys = conv2d_output_shape(cx.shape(), cw.shape(), p);
  Tensor cy = Tensor::empty(ys), cy32 = Tensor::empty(ys, DType::kF32, kGpu);
  Tensor cytf = Tensor::empty(ys, DType::kF32, kGpu);
  conv2d_forward(cpu_, cx, cw, Tensor(), cy, p, false);
  conv2d_forward(gpu_, up(cx), up(cw), Tensor(), cy32, p, false);
  conv2d_forward(tf32, up(cx), up(cw), Tensor(), cytf, p, false);
  EXPECT_TRUE(close_to_max(cy32, cy, kGemmRtol)) << "fp32 convolution without the flag";
  EXPECT_TRUE(close_to_max(cytf, cy, kTf32Rtol)) << "TF32 convolution";
  if (!tf32_overridden) {
    // A 3x3x32 window on 4 x 14 x 14 outputs: cuDNN's heuristics put tensor-core kernels first
    // for it under tensor-op math; equal bytes mean the flag never reached the convolution.
    EXPECT_FALSE(same_bytes(cytf, cy32.to(Device::cpu()))) << "--tf32 changed nothing (conv)";
  }
}

}  // namespace
}  // namespace dpt::kernels
