// SPDX-License-Identifier: MIT
// Elementwise ops, softmax cross-entropy, dropout determinism and split invariance, the
// thread-count independence of sum_squares, and the error messages of dispatch.cpp.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "kernels/elementwise_math.h"
#include "kernels/ops.h"
#include "testing/test_util.h"

namespace dpt::kernels {
namespace {

using test::expect_error;

using test::all_close;
using test::random_tensor;

class Elementwise : public ::testing::Test {
 protected:
  Context ctx_ = Context::create(Device::cpu());
};

TEST_F(Elementwise, ReluForwardBackward) {
  for (std::int64_t n : {1, 7, 100003}) {
    const Tensor x = random_tensor({n}, 3), dy = random_tensor({n}, 4);
    Tensor y = Tensor::empty({n}), dx = Tensor::empty({n});
    relu_forward(ctx_, x, y);
    relu_backward(ctx_, y, dy, dx);
    for (std::int64_t i = 0; i < n; ++i) {
      const float xi = x.data<float>()[i];
      ASSERT_EQ(y.data<float>()[i], xi > 0 ? xi : 0.0f) << i;
      ASSERT_EQ(dx.data<float>()[i], xi > 0 ? dy.data<float>()[i] : 0.0f) << i;
    }
    // In place, as the contract allows.
    Tensor z = x.clone();
    relu_forward(ctx_, z, z);
    EXPECT_TRUE(all_close(z, y, 0, 0));
  }
}

TEST_F(Elementwise, ScaleAndAxpy) {
  for (std::int64_t n : {1, 5, 70001}) {
    const Tensor x = random_tensor({n}, 5), y0 = random_tensor({n}, 6);
    Tensor y = y0.clone();
    axpy(ctx_, -0.75f, x, y);
    Tensor want = Tensor::empty({n});
    for (std::int64_t i = 0; i < n; ++i)
      want.data<float>()[i] = static_cast<float>(y0.data<float>()[i] - 0.75 * x.data<float>()[i]);
    EXPECT_TRUE(all_close(y, want, 1e-6, 1e-6));
    scale(ctx_, y, 2.5f);
    for (std::int64_t i = 0; i < n; ++i) want.data<float>()[i] *= 2.5f;
    EXPECT_TRUE(all_close(y, want, 1e-6, 1e-6));
  }
}

// The vectorised loops (Note [SIMD clones] in cpu/simd_loops.h) give the bits of the scalar math on
// an odd size starting one float past an alignment boundary (peeled head, vector body, tail), split
// over the OpenMP threads.
TEST_F(Elementwise, VectorisedPassesAreBitwiseTheScalarMath) {
  const std::int64_t n = 1000003;
  const auto misaligned = [n](std::uint64_t seed) {
    return Tensor::view_of(random_tensor({n + 1}, seed, -2.0f, 2.0f), 1, {n});
  };
  const Tensor y = misaligned(1), dy = misaligned(2), mask = misaligned(3), x = misaligned(4);
  const float* yf = y.data<float>();
  const float* dyf = dy.data<float>();
  const float* mf = mask.data<float>();
  const float* xf = x.data<float>();
  Tensor out = misaligned(5);
  const auto expect_bitwise = [&](const char* what, auto scalar) {
    const float* o = out.data<float>();
    for (std::int64_t i = 0; i < n; ++i) {
      const float want = scalar(i);
      ASSERT_EQ(std::memcmp(&o[i], &want, sizeof want), 0) << what << " at " << i;
    }
  };
  relu_forward(ctx_, dy, out);
  expect_bitwise("relu_forward", [&](std::int64_t i) { return relu(dyf[i]); });
  relu_backward(ctx_, y, dy, out);
  expect_bitwise("relu_backward", [&](std::int64_t i) { return relu_grad(yf[i], dyf[i]); });
  dropout_backward(ctx_, dy, mask, out);
  expect_bitwise("dropout_backward", [&](std::int64_t i) { return dyf[i] * mf[i]; });
  std::vector<float> before(out.data<float>(), out.data<float>() + n);
  axpy(ctx_, 0.3f, x, out);
  expect_bitwise("axpy", [&](std::int64_t i) { return before[i] + 0.3f * xf[i]; });
  before.assign(out.data<float>(), out.data<float>() + n);
  scale(ctx_, out, 0.7f);
  expect_bitwise("scale", [&](std::int64_t i) { return before[i] * 0.7f; });
}

TEST_F(Elementwise, SumSquaresMatchesDoubleAndIsThreadCountIndependent) {
  const std::int64_t n = 1000003;
  const Tensor x = random_tensor({n}, 9, -3.0f, 3.0f);
  double want = 0.0;
  for (std::int64_t i = 0; i < n; ++i) want += static_cast<double>(x.data<float>()[i]) * x.data<float>()[i];
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one = sum_squares(ctx_, x);
  omp_set_num_threads(2);
  const double two = sum_squares(ctx_, x);
  omp_set_num_threads(3);
  const double three = sum_squares(ctx_, x);
  omp_set_num_threads(saved);
  EXPECT_EQ(one, two);  // bitwise: the reduction order does not depend on threads
  EXPECT_EQ(one, three);
  EXPECT_NEAR(one, want, 1e-9 * want);
  EXPECT_EQ(sum_squares(ctx_, Tensor::from_vector({3}, {1.0f, -2.0f, 3.0f})), 14.0);
}

// A sharded gradient's norm: the chunk sums of ranges starting at chunk multiples, put side by side
// and added in index order, are sum_squares of the whole buffer bit for bit.
TEST_F(Elementwise, SumSquaresChunksOfShardsAddUpToTheWholeBitwise) {
  const std::int64_t n = 3 * kSumSquaresChunk + 1001;
  const Tensor x = random_tensor({n}, 11, -3.0f, 3.0f);
  std::vector<double> whole;
  sum_squares_chunks(ctx_, x, whole);
  ASSERT_EQ(whole.size(), 4u);
  double total = 0.0;
  for (const double c : whole) total += c;
  EXPECT_EQ(total, sum_squares(ctx_, x));
  // Shards [0, 2 chunks) and [2 chunks, n): the same chunks in the same order.
  const std::int64_t cut = 2 * kSumSquaresChunk;
  std::vector<double> first, second;
  sum_squares_chunks(ctx_, Tensor::view_of(x, 0, {cut}), first);
  sum_squares_chunks(ctx_, Tensor::view_of(x, cut, {n - cut}), second);
  first.insert(first.end(), second.begin(), second.end());
  EXPECT_EQ(first, whole);
  std::vector<double> none = {1.0};
  sum_squares_chunks(ctx_, Tensor::view_of(x, 0, {0}), none);
  EXPECT_TRUE(none.empty());
}

// The documented order (cpu/elementwise.cpp): chunks of 4096 elements, element i of a chunk added
// into lane i % 8, lanes paired ((0+1)+(2+3))+((4+5)+(6+7)), chunk sums added in index order. The
// gradient norm, and so clipping, depends on these bits; the size spans several of the blocks
// the CPU loop forms its chunk sums in.
double sum_squares_in_documented_order(const float* x, std::int64_t n) {
  double total = 0.0;
  for (std::int64_t begin = 0; begin < n; begin += 4096) {
    const std::int64_t end = std::min(n, begin + 4096);
    double lane[8] = {};
    for (std::int64_t i = begin; i < end; ++i) {
      const double v = x[i];
      lane[(i - begin) % 8] += v * v;
    }
    total += ((lane[0] + lane[1]) + (lane[2] + lane[3])) +
             ((lane[4] + lane[5]) + (lane[6] + lane[7]));
  }
  return total;
}

TEST_F(Elementwise, SumSquaresIsBitwiseTheDocumentedOrder) {
  for (const std::int64_t n : {std::int64_t{4095}, std::int64_t{5 * 512 * 4096 + 12345}}) {
    const Tensor x = random_tensor({n}, 31, -3.0f, 3.0f);
    EXPECT_EQ(sum_squares(ctx_, x), sum_squares_in_documented_order(x.data<float>(), n)) << n;
  }
}

TEST_F(Elementwise, SoftmaxCrossEntropyMatchesReference) {
  for (const auto& [n, c] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {3, 10}, {130, 7}}) {
    // Large logits: a naive exp would overflow in float.
    const Tensor logits = random_tensor({n, c}, 12, -40.0f, 90.0f);
    Tensor labels = Tensor::empty({n}, DType::kI32);
    for (std::int64_t i = 0; i < n; ++i) labels.data<std::int32_t>()[i] = static_cast<std::int32_t>((i * 7) % c);
    Tensor dlogits = Tensor::empty({n, c});
    const LossResult r = softmax_cross_entropy(ctx_, logits, labels, &dlogits);
    double want_loss = 0.0;
    std::int64_t want_correct = 0;
    Tensor want_grad = Tensor::empty({n, c});
    for (std::int64_t i = 0; i < n; ++i) {
      const float* z = logits.data<float>() + i * c;
      double mx = z[0];
      std::int64_t arg = 0;
      for (std::int64_t j = 1; j < c; ++j) if (z[j] > mx) { mx = z[j]; arg = j; }
      double s = 0.0;
      for (std::int64_t j = 0; j < c; ++j) s += std::exp(z[j] - mx);
      const int label = labels.data<std::int32_t>()[i];
      want_loss += std::log(s) + mx - z[label];
      want_correct += arg == label;
      for (std::int64_t j = 0; j < c; ++j)
        want_grad.data<float>()[i * c + j] = static_cast<float>(std::exp(z[j] - mx) / s - (j == label));
    }
    EXPECT_NEAR(r.loss_sum, want_loss, 1e-6 * (1 + want_loss));
    EXPECT_EQ(r.correct, want_correct);
    EXPECT_TRUE(all_close(dlogits, want_grad, 1e-5, 1e-6));
    EXPECT_TRUE(std::isfinite(r.loss_sum));
    // Without dlogits the loss is the same.
    EXPECT_EQ(softmax_cross_entropy(ctx_, logits, labels, nullptr).loss_sum, r.loss_sum);
  }
}

TEST_F(Elementwise, SoftmaxCrossEntropyUniformLogitsGiveLogC) {
  const Tensor logits = Tensor::full({4, 10}, 3.0f);
  Tensor labels = Tensor::zeros({4}, DType::kI32);
  EXPECT_NEAR(softmax_cross_entropy(ctx_, logits, labels, nullptr).loss_sum, 4 * std::log(10.0), 1e-6);
}

// ---- dropout ------------------------------------------------------------------------------------

Tensor dropout_mask_of(const Context& ctx, const Shape& shape, float p, const DropoutKey& key,
                       const Tensor* x_in = nullptr) {
  const Tensor x = x_in ? *x_in : Tensor::full(shape, 1.0f);
  Tensor y = Tensor::empty(shape), mask = Tensor::empty(shape);
  dropout_forward(ctx, x, y, mask, p, key);
  return mask;
}

TEST_F(Elementwise, DropoutSameKeySameMaskAndValues) {
  const float p = 0.3f;
  const DropoutKey key{42, 7, 2, 1000};
  const Tensor x = random_tensor({5, 3, 7}, 1);
  Tensor y = Tensor::empty({5, 3, 7}), mask = Tensor::empty({5, 3, 7});
  dropout_forward(ctx_, x, y, mask, p, key);
  EXPECT_TRUE(all_close(dropout_mask_of(ctx_, {5, 3, 7}, p, key), mask, 0, 0));
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    const float m = mask.data<float>()[i];
    ASSERT_TRUE(m == 0.0f || m == 1.0f / (1.0f - p)) << m;
    ASSERT_EQ(y.data<float>()[i], x.data<float>()[i] * m);
  }
  Tensor dx = Tensor::empty({5, 3, 7});
  const Tensor dy = random_tensor({5, 3, 7}, 2);
  dropout_backward(ctx_, dy, mask, dx);
  for (std::int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(dx.data<float>()[i], dy.data<float>()[i] * mask.data<float>()[i]);
  // Every key field matters.
  for (const DropoutKey other : {DropoutKey{43, 7, 2, 1000}, DropoutKey{42, 8, 2, 1000},
                                 DropoutKey{42, 7, 3, 1000}, DropoutKey{42, 7, 2, 1001}}) {
    EXPECT_FALSE(all_close(dropout_mask_of(ctx_, {5, 3, 7}, p, other), mask, 0, 0));
  }
}

TEST_F(Elementwise, DropoutMaskOfASampleIsIndependentOfBatchSplit) {
  const float p = 0.5f;
  const Shape one{4, 37};
  const Tensor whole = dropout_mask_of(ctx_, one, p, DropoutKey{9, 3, 1, 0});
  const Tensor first = dropout_mask_of(ctx_, {2, 37}, p, DropoutKey{9, 3, 1, 0});
  const Tensor second = dropout_mask_of(ctx_, {2, 37}, p, DropoutKey{9, 3, 1, 2});
  const Tensor last = dropout_mask_of(ctx_, {1, 37}, p, DropoutKey{9, 3, 1, 3});
  for (std::int64_t i = 0; i < 2 * 37; ++i) {
    ASSERT_EQ(whole.data<float>()[i], first.data<float>()[i]) << i;
    ASSERT_EQ(whole.data<float>()[2 * 37 + i], second.data<float>()[i]) << i;
  }
  for (std::int64_t i = 0; i < 37; ++i) ASSERT_EQ(whole.data<float>()[3 * 37 + i], last.data<float>()[i]);
  // Samples differ from each other.
  bool differs = false;
  for (std::int64_t i = 0; i < 37; ++i) differs |= whole.data<float>()[i] != whole.data<float>()[37 + i];
  EXPECT_TRUE(differs);
}

TEST_F(Elementwise, DropoutKeepsAboutOneMinusP) {
  for (const float p : {0.1f, 0.5f, 0.9f}) {
    const std::int64_t n = 64, per = 4099;  // per-sample count not a multiple of 4
    const Tensor mask = dropout_mask_of(ctx_, {n, per}, p, DropoutKey{1, 2, 3, 4});
    std::int64_t kept = 0;
    for (std::int64_t i = 0; i < mask.numel(); ++i) kept += mask.data<float>()[i] != 0.0f;
    const double total = static_cast<double>(mask.numel());
    const double sigma = std::sqrt(total * p * (1 - p));
    EXPECT_NEAR(static_cast<double>(kept), total * (1 - p), 5 * sigma) << "p=" << p;
  }
  const Tensor none = dropout_mask_of(ctx_, {3, 5}, 0.0f, DropoutKey{});
  EXPECT_TRUE(all_close(none, Tensor::full({3, 5}, 1.0f), 0, 0));
}

// ---- error messages -------------------------------------------------------------------------------

TEST_F(Elementwise, ShapeMismatchErrorsNameTheOp) {
  const Tensor x = random_tensor({3, 5}, 1), w = random_tensor({4, 6}, 2);
  Tensor y = Tensor::empty({3, 4}), none;
  expect_error([&] { linear_forward(ctx_, x, w, none, y, false); }, {"linear_forward", "[4, 6]"});
  const Tensor img = random_tensor({1, 3, 5, 5}, 3), kern = random_tensor({2, 4, 3, 3}, 4);
  Tensor out = Tensor::empty({1, 2, 3, 3});
  expect_error([&] { conv2d_forward(ctx_, img, kern, none, out, Conv2dParams{}, false); },
               {"conv2d_forward", "input channels"});
  Tensor bad_out = Tensor::empty({1, 3, 4, 4});
  const Tensor kern3 = random_tensor({3, 3, 3, 3}, 5);
  expect_error([&] { conv2d_forward(ctx_, img, kern3, none, bad_out, Conv2dParams{}, false); },
               {"conv2d_forward", "y must have shape [1, 3, 3, 3]", "[1, 3, 4, 4]"});
  Tensor small = Tensor::empty({2});
  expect_error([&] { axpy(ctx_, 1.0f, x, small); }, {"axpy", "[3, 5]", "[2]"});
  Tensor pooled = Tensor::empty({1, 3, 2, 2}), ws;
  expect_error([&] { max_pool2d_forward(ctx_, img, pooled, ws, Pool2dParams{3, 3, 1, 1, 0, 0}); },
               {"max_pool2d_forward", "[1, 3, 3, 3]"});
  Tensor labels = Tensor::from_vector({3}, {0, 1, 2});  // f32, not i32
  expect_error([&] { softmax_cross_entropy(ctx_, x, labels, nullptr); },
               {"softmax_cross_entropy", "labels must be i32"});
  Tensor bad_labels = Tensor::zeros({3}, DType::kI32);
  bad_labels.data<std::int32_t>()[1] = 5;
  expect_error([&] { softmax_cross_entropy(ctx_, x, bad_labels, nullptr); },
               {"softmax_cross_entropy", "label 5"});
  Tensor mask = Tensor::empty({3, 5}), yy = Tensor::empty({3, 5});
  expect_error([&] { dropout_forward(ctx_, x, yy, mask, 1.0f, DropoutKey{}); }, {"dropout_forward", "p must be"});
}

// Without a GPU (or without the CUDA backend) a CUDA context cannot be made: the error says so
// before any op runs. With a GPU, an op refuses a host tensor on a CUDA context.
TEST_F(Elementwise, CudaContextErrorsClearly) {
  Tensor y = Tensor::full({3}, 1.0f);
  if (cuda_device_count() == 0) {
    expect_error([&] { (void)Context::create(Device::cuda(0)); }, {"cuda"});
    return;
  }
  const Context cuda = Context::create(Device::cuda(0));
  expect_error([&] { scale(cuda, y, 2.0f); }, {"scale", "y is on cpu", "cuda:0"});
}

}  // namespace
}  // namespace dpt::kernels
