// SPDX-License-Identifier: MIT
// Convolution, linear and max pooling against the naive double references of reference.h, over odd
// shapes (1x1 and 5x7 images, batch 1 to 7 (several sample groups), channels 3 and 5, stride 2, padding 0/1, kernels 1/3),
// with bias/ReLU on and off and gradient accumulation on and off. Each shape runs twice with new
// data so a cached primitive is shown to read the new pointers.
#include <gtest/gtest.h>

#include <ostream>

#include "kernels/ops.h"
#include "kernels/conv_case.h"
#include "kernels/reference.h"
#include "testing/test_util.h"

namespace dpt::kernels {
namespace {

using test::all_close;
using test::random_tensor;

constexpr double kRtol = 1e-4, kAtol = 1e-4;

Tensor from_doubles(const Shape& shape, const std::vector<double>& v) {
  std::vector<float> f(v.begin(), v.end());
  return Tensor::from_vector(shape, f);
}

using test::ConvCase;

class ConvTest : public ::testing::TestWithParam<ConvCase> {
 protected:
  Context ctx_ = Context::create(Device::cpu());
};

TEST_P(ConvTest, ForwardBackwardMatchReference) {
  const ConvCase cc = GetParam();
  const Conv2dParams p{cc.stride, cc.stride, cc.pad, cc.pad};
  const Shape xs{cc.n, cc.c, cc.h, cc.w}, ws{cc.o, cc.c, cc.k, cc.k};
  const Shape ys = conv2d_output_shape(xs, ws, p);
  for (std::uint64_t round = 0; round < 2; ++round) {
    const std::uint64_t seed = 100 * round + 1;
    const Tensor x = random_tensor(xs, seed), w = random_tensor(ws, seed + 1);
    const Tensor b = random_tensor({cc.o}, seed + 2);
    for (const bool relu : {false, true}) {
      for (const bool bias : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "relu=" << relu << " bias=" << bias << " round=" << round);
        Tensor y = Tensor::full(ys, 123.0f);
        conv2d_forward(ctx_, x, w, bias ? b : Tensor(), y, p, relu);
        EXPECT_TRUE(all_close(y, from_doubles(ys, test::ref::conv_forward(x, w, bias ? &b : nullptr, p, relu)),
                              kRtol, kAtol));
      }
    }
    const Tensor dy = random_tensor(ys, seed + 3);
    Tensor dx = Tensor::full(xs, 123.0f);
    conv2d_backward_data(ctx_, dy, w, dx, p);
    EXPECT_TRUE(all_close(dx, from_doubles(xs, test::ref::conv_backward_data(dy, w, xs, p)), kRtol, kAtol));

    const std::vector<double> grads = test::ref::conv_backward_weights(x, dy, ws, p);
    const std::int64_t wn = numel_of(ws);
    for (const bool accumulate : {false, true}) {
      for (const bool bias : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "accumulate=" << accumulate << " bias=" << bias);
        const Tensor dw0 = random_tensor(ws, seed + 4), db0 = random_tensor({cc.o}, seed + 5);
        Tensor dw = dw0.clone(), db = db0.clone();
        Tensor db_arg = bias ? db : Tensor();
        conv2d_backward_weights(ctx_, x, dy, dw, db_arg, p, accumulate);
        std::vector<double> want_w(grads.begin(), grads.begin() + wn);
        std::vector<double> want_b(grads.begin() + wn, grads.end());
        for (std::int64_t i = 0; accumulate && i < wn; ++i) want_w[i] += dw0.data<float>()[i];
        for (std::int64_t i = 0; accumulate && i < cc.o; ++i) want_b[i] += db0.data<float>()[i];
        EXPECT_TRUE(all_close(dw, from_doubles(ws, want_w), kRtol, kAtol));
        if (bias) {
          EXPECT_TRUE(all_close(db, from_doubles({cc.o}, want_b), kRtol, kAtol));
        } else {
          EXPECT_TRUE(all_close(db, db0, 0, 0)) << "db must be untouched when not passed";
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    OddShapes, ConvTest,
    ::testing::Values(ConvCase{1, 1, 1, 1, 1, 1, 1, 0},   // 1x1 image, 1x1 kernel
                      ConvCase{1, 3, 1, 1, 5, 3, 1, 1},   // 1x1 image, 3x3 kernel, pad 1
                      ConvCase{3, 3, 5, 7, 5, 3, 1, 1},   // batch 3, 5x7, pad 1
                      ConvCase{1, 5, 5, 7, 3, 3, 2, 0},   // stride 2, pad 0
                      ConvCase{3, 5, 5, 7, 5, 3, 2, 1},   // stride 2, pad 1
                      ConvCase{3, 3, 7, 5, 4, 1, 2, 0},   // 1x1 kernel, stride 2
                      ConvCase{2, 1, 28, 28, 32, 3, 1, 1},  // cnn layer 1
                      ConvCase{2, 32, 14, 14, 64, 3, 1, 1},  // cnn layer 2
                      ConvCase{2, 64, 7, 7, 64, 3, 1, 1},  // cnn layer 3
                      // Batches the CPU runs in several sample groups, the last one shorter
                      // (Note [Convolution sample groups]: 2 + 2 + 2 + 1 and 3 + 2 samples).
                      ConvCase{7, 1, 28, 28, 32, 3, 1, 1},
                      ConvCase{5, 32, 14, 14, 64, 3, 1, 1}));

struct LinearCase {
  std::int64_t n, k, m;
};
std::ostream& operator<<(std::ostream& os, const LinearCase& c) {
  return os << "n=" << c.n << " k=" << c.k << " m=" << c.m;
}

class LinearTest : public ::testing::TestWithParam<LinearCase> {
 protected:
  Context ctx_ = Context::create(Device::cpu());
};

TEST_P(LinearTest, ForwardBackwardMatchReference) {
  const auto [n, k, m] = GetParam();
  for (std::uint64_t round = 0; round < 2; ++round) {
    const std::uint64_t seed = 100 * round + 7;
    const Tensor x = random_tensor({n, k}, seed), w = random_tensor({m, k}, seed + 1);
    const Tensor b = random_tensor({m}, seed + 2);
    for (const bool relu : {false, true}) {
      for (const bool bias : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "relu=" << relu << " bias=" << bias);
        Tensor y = Tensor::full({n, m}, 123.0f);
        linear_forward(ctx_, x, w, bias ? b : Tensor(), y, relu);
        EXPECT_TRUE(all_close(y, from_doubles({n, m}, test::ref::linear_forward(x, w, bias ? &b : nullptr, relu)),
                              kRtol, kAtol));
      }
    }
    const Tensor dy = random_tensor({n, m}, seed + 3);
    // dx = dy * w is linear_forward of dy with w^T: build w^T [k, m] for the reference.
    Tensor wt = Tensor::empty({k, m});
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < k; ++j) wt.data<float>()[j * m + i] = w.data<float>()[i * k + j];
    Tensor dx = Tensor::full({n, k}, 123.0f);
    linear_backward_data(ctx_, dy, w, dx);
    EXPECT_TRUE(all_close(dx, from_doubles({n, k}, test::ref::linear_forward(dy, wt, nullptr, false)), kRtol, kAtol));

    std::vector<double> want_w(static_cast<std::size_t>(m * k), 0.0), want_b(static_cast<std::size_t>(m), 0.0);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < m; ++j) {
        want_b[j] += dy.data<float>()[i * m + j];
        for (std::int64_t l = 0; l < k; ++l)
          want_w[j * k + l] += static_cast<double>(dy.data<float>()[i * m + j]) * x.data<float>()[i * k + l];
      }
    for (const bool accumulate : {false, true}) {
      for (const bool bias : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "accumulate=" << accumulate << " bias=" << bias);
        const Tensor dw0 = random_tensor({m, k}, seed + 4), db0 = random_tensor({m}, seed + 5);
        Tensor dw = dw0.clone(), db = db0.clone();
        Tensor db_arg = bias ? db : Tensor();
        linear_backward_weights(ctx_, x, dy, dw, db_arg, accumulate);
        std::vector<double> ew = want_w, eb = want_b;
        for (std::size_t i = 0; accumulate && i < ew.size(); ++i) ew[i] += dw0.data<float>()[i];
        for (std::size_t i = 0; accumulate && i < eb.size(); ++i) eb[i] += db0.data<float>()[i];
        EXPECT_TRUE(all_close(dw, from_doubles({m, k}, ew), kRtol, kAtol));
        if (bias) EXPECT_TRUE(all_close(db, from_doubles({m}, eb), kRtol, kAtol));
        else EXPECT_TRUE(all_close(db, db0, 0, 0));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(OddShapes, LinearTest,
                         ::testing::Values(LinearCase{1, 1, 1}, LinearCase{3, 1, 7},
                                           LinearCase{5, 7, 3}, LinearCase{1, 33, 5},
                                           LinearCase{128, 33, 17}, LinearCase{2, 300, 1},
                                           LinearCase{3, 5000, 9}));

struct PoolCase {
  std::int64_t n, c, h, w;
  int k, s, p;
};
std::ostream& operator<<(std::ostream& os, const PoolCase& c) {
  return os << "x[" << c.n << "," << c.c << "," << c.h << "," << c.w << "] k=" << c.k
            << " s=" << c.s << " p=" << c.p;
}

class PoolTest : public ::testing::TestWithParam<PoolCase> {
 protected:
  Context ctx_ = Context::create(Device::cpu());
};

TEST_P(PoolTest, ForwardBackwardMatchReference) {
  const PoolCase pc = GetParam();
  const Pool2dParams p{pc.k, pc.k, pc.s, pc.s, pc.p, pc.p};
  const Shape xs{pc.n, pc.c, pc.h, pc.w};
  const Shape ys = pool2d_output_shape(xs, p);
  Tensor workspace;
  for (std::uint64_t round = 0; round < 2; ++round) {
    const Tensor x = random_tensor(xs, 11 + round);  // continuous values: no ties
    Tensor y = Tensor::full(ys, 123.0f);
    max_pool2d_forward(ctx_, x, y, workspace, p);
    std::vector<std::int64_t> argmax;
    EXPECT_TRUE(all_close(y, from_doubles(ys, test::ref::max_pool(x, p, &argmax)), 0, 0));
    const Tensor dy = random_tensor(ys, 21 + round);
    std::vector<double> want(static_cast<std::size_t>(x.numel()), 0.0);
    for (std::size_t k = 0; k < argmax.size(); ++k) want[argmax[k]] += dy.data<float>()[k];
    Tensor dx = Tensor::full(xs, 123.0f);
    max_pool2d_backward(ctx_, dy, workspace, dx, p);
    EXPECT_TRUE(all_close(dx, from_doubles(xs, want), 1e-6, 1e-6));
  }
}

INSTANTIATE_TEST_SUITE_P(OddShapes, PoolTest,
                         ::testing::Values(PoolCase{1, 1, 1, 1, 1, 1, 0}, PoolCase{3, 5, 5, 7, 2, 2, 0},
                                           PoolCase{2, 3, 7, 5, 3, 2, 1}, PoolCase{1, 2, 6, 6, 3, 3, 1},
                                           PoolCase{3, 5, 28, 28, 2, 2, 0}, PoolCase{1, 3, 5, 7, 3, 1, 1},
                                           PoolCase{2, 32, 28, 28, 2, 2, 0}));

}  // namespace
}  // namespace dpt::kernels
