// SPDX-License-Identifier: MIT
// Finite-difference checks of every backward: the analytic gradient of f = sum(y * r) (r fixed and
// random) against central differences (f(v + h) - f(v - h)) / 2h accumulated in double.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <numeric>
#include <random>

#include "finite_difference.h"
#include "kernels/ops.h"
#include "testing/test_util.h"

namespace dpt::kernels {
namespace {

using test::expect_gradient;

using test::random_tensor;

double dot(const Tensor& a, const Tensor& b) {
  double s = 0.0;
  for (std::int64_t i = 0; i < a.numel(); ++i) s += static_cast<double>(a.data<float>()[i]) * b.data<float>()[i];
  return s;
}

class GradCheck : public ::testing::Test {
 protected:
  Context ctx_ = Context::create(Device::cpu());
};

TEST_F(GradCheck, Conv2d) {
  for (const Conv2dParams p : {Conv2dParams{1, 1, 1, 1}, Conv2dParams{2, 2, 0, 0}, Conv2dParams{2, 1, 1, 0}}) {
    Tensor x = random_tensor({2, 3, 5, 4}, 1), w = random_tensor({2, 3, 3, 3}, 2), b = random_tensor({2}, 3);
    const Shape ys = conv2d_output_shape(x.shape(), w.shape(), p);
    const Tensor r = random_tensor(ys, 4);
    Tensor y = Tensor::empty(ys);
    auto f = [&] {
      conv2d_forward(ctx_, x, w, b, y, p, false);
      return dot(y, r);
    };
    Tensor dx = Tensor::empty(x.shape()), dw = Tensor::empty(w.shape()), db = Tensor::empty({2});
    conv2d_backward_data(ctx_, r, w, dx, p);
    conv2d_backward_weights(ctx_, x, r, dw, db, p, false);
    expect_gradient("conv dx", x, dx, f, 1e-2f, 2e-3);
    expect_gradient("conv dw", w, dw, f, 1e-2f, 2e-3);
    expect_gradient("conv db", b, db, f, 1e-2f, 2e-3);
  }
}

TEST_F(GradCheck, Linear) {
  Tensor x = random_tensor({3, 5}, 1), w = random_tensor({4, 5}, 2), b = random_tensor({4}, 3);
  const Tensor r = random_tensor({3, 4}, 4);
  Tensor y = Tensor::empty({3, 4});
  auto f = [&] {
    linear_forward(ctx_, x, w, b, y, false);
    return dot(y, r);
  };
  Tensor dx = Tensor::empty(x.shape()), dw = Tensor::empty(w.shape()), db = Tensor::empty({4});
  linear_backward_data(ctx_, r, w, dx);
  linear_backward_weights(ctx_, x, r, dw, db, false);
  expect_gradient("linear dx", x, dx, f, 1e-2f, 2e-3);
  expect_gradient("linear dw", w, dw, f, 1e-2f, 2e-3);
  expect_gradient("linear db", b, db, f, 1e-2f, 2e-3);
}

TEST_F(GradCheck, LinearWithFusedRelu) {
  // relu fused in the forward; the backward chain is relu_backward then the linear backwards.
  Tensor x = random_tensor({3, 6}, 5), w = random_tensor({5, 6}, 6), b = random_tensor({5}, 7);
  const Tensor r = random_tensor({3, 5}, 8);
  Tensor y = Tensor::empty({3, 5});
  auto f = [&] {
    linear_forward(ctx_, x, w, b, y, true);
    return dot(y, r);
  };
  f();
  Tensor g = Tensor::empty({3, 5}), dx = Tensor::empty(x.shape()), dw = Tensor::empty(w.shape()),
         db = Tensor::empty({5});
  relu_backward(ctx_, y, r, g);
  linear_backward_data(ctx_, g, w, dx);
  linear_backward_weights(ctx_, x, g, dw, db, false);
  expect_gradient("linear+relu dx", x, dx, f, 1e-3f, 5e-3);
  expect_gradient("linear+relu dw", w, dw, f, 1e-3f, 5e-3);
}

TEST_F(GradCheck, MaxPool) {
  // Distinct values 0.01 apart, so a perturbation of 1e-3 never changes a window's argmax.
  const Shape xs{2, 3, 5, 7};
  Tensor x = Tensor::empty(xs);
  std::vector<int> order(static_cast<std::size_t>(x.numel()));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937(3));
  for (std::int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = 0.01f * static_cast<float>(order[i]) - 1.0f;
  for (const Pool2dParams p : {Pool2dParams{2, 2, 2, 2, 0, 0}, Pool2dParams{3, 3, 2, 2, 1, 1}}) {
    const Shape ys = pool2d_output_shape(xs, p);
    const Tensor r = random_tensor(ys, 4);
    Tensor y = Tensor::empty(ys), ws;
    auto f = [&] {
      max_pool2d_forward(ctx_, x, y, ws, p);
      return dot(y, r);
    };
    f();
    Tensor dx = Tensor::empty(xs);
    max_pool2d_backward(ctx_, r, ws, dx, p);
    expect_gradient("maxpool dx", x, dx, f, 1e-3f, 2e-3);
  }
}

TEST_F(GradCheck, Relu) {
  Tensor x = random_tensor({4, 9}, 1);
  for (std::int64_t i = 0; i < x.numel(); ++i) {  // keep away from the kink at 0
    float& v = x.data<float>()[i];
    if (std::abs(v) < 0.05f) v = v < 0 ? -0.05f : 0.05f;
  }
  const Tensor r = random_tensor({4, 9}, 2);
  Tensor y = Tensor::empty({4, 9});
  auto f = [&] {
    relu_forward(ctx_, x, y);
    return dot(y, r);
  };
  f();
  Tensor dx = Tensor::empty({4, 9});
  relu_backward(ctx_, y, r, dx);
  expect_gradient("relu dx", x, dx, f, 1e-3f, 2e-3);
}

TEST_F(GradCheck, Dropout) {
  Tensor x = random_tensor({4, 9}, 1), mask = Tensor::empty({4, 9}), y = Tensor::empty({4, 9});
  const Tensor r = random_tensor({4, 9}, 2);
  const DropoutKey key{5, 1, 2, 10};
  auto f = [&] {
    dropout_forward(ctx_, x, y, mask, 0.4f, key);
    return dot(y, r);
  };
  f();
  Tensor dx = Tensor::empty({4, 9});
  dropout_backward(ctx_, r, mask, dx);
  expect_gradient("dropout dx", x, dx, f, 1e-2f, 2e-3);
}

TEST_F(GradCheck, SoftmaxCrossEntropy) {
  Tensor logits = random_tensor({3, 7}, 1, -2.0f, 2.0f);
  const Tensor labels = [] {
    Tensor t = Tensor::empty({3}, DType::kI32);
    t.data<std::int32_t>()[0] = 0;
    t.data<std::int32_t>()[1] = 6;
    t.data<std::int32_t>()[2] = 3;
    return t;
  }();
  auto f = [&] { return softmax_cross_entropy(ctx_, logits, labels, nullptr).loss_sum; };
  Tensor dlogits = Tensor::empty({3, 7});
  softmax_cross_entropy(ctx_, logits, labels, &dlogits);
  expect_gradient("softmax-xent dlogits", logits, dlogits, f, 1e-3f, 2e-3);
}

}  // namespace
}  // namespace dpt::kernels
