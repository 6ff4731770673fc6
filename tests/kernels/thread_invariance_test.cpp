// SPDX-License-Identifier: MIT
// Thread-invariant mode (Context::set_thread_invariant): every CPU op gives bitwise the same
// outputs for 1, 2, 3, 4 and 7 threads (7 oversubscribes a small machine), at the shapes of the
// reference models cnn and mlp (shard batch 32) and at odd shapes (batch 1/3/5, 3 channels, 1x1
// and 5x7 images, stride 2, blocks cut by the matrix edges), with accumulation on and off. Every
// run is also checked against the naive references of reference.h, so a primitive that computed
// only part of its result (one built for N threads run by one) is caught, and OpenMP's thread
// count must be the Context's again afterwards. Without the mode, oneDNN's convolution
// backward-weights gives different bits for different thread counts at the cnn shapes, and this
// suite fails.
#include <dnnl.h>
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <ostream>
#include <vector>

#include "kernels/cpu/invariant.h"
#include "kernels/ops.h"
#include "kernels/conv_case.h"
#include "kernels/reference.h"
#include "testing/test_util.h"

namespace dpt::kernels {
namespace {

using test::all_close;
using test::random_tensor;

constexpr double kRtol = 1e-4, kAtol = 1e-4;  // as layers_test.cpp
constexpr int kThreadCounts[] = {1, 2, 3, 4, 7};

using Outputs = std::vector<Tensor>;

Tensor from_doubles(const Shape& shape, const std::vector<double>& v) {
  return Tensor::from_vector(shape, std::vector<float>(v.begin(), v.end()));
}

// Empty when a and b hold the same bytes, else where they first differ.
std::string first_difference(const Tensor& a, const Tensor& b) {
  if (a.size_bytes() != b.size_bytes()) return "sizes differ";
  if (std::memcmp(a.raw_data(), b.raw_data(), a.size_bytes()) == 0) return {};
  if (a.dtype() != DType::kF32) return "bytes differ";
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    if (std::memcmp(a.data<float>() + i, b.data<float>() + i, sizeof(float)) != 0) {
      return detail::str("element ", i, ": ", a.data<float>()[i], " vs ", b.data<float>()[i]);
    }
  }
  return "bytes differ";
}

// Runs op in thread-invariant mode for every thread count: each run's outputs must equal the
// 1-thread run's bit for bit and pass check (against a reference); OpenMP's thread count must be
// the context's again afterwards.
void expect_invariant(const char* what, const std::function<Outputs(const Context&)>& op,
                      const std::function<void(const Outputs&)>& check = {}) {
  Outputs first;
  for (const int threads : kThreadCounts) {
    SCOPED_TRACE(::testing::Message() << what << ", " << threads << " threads");
    Context ctx = Context::create(Device::cpu(), threads);
    ctx.set_thread_invariant(true);
    const Outputs out = op(ctx);
    EXPECT_EQ(omp_get_max_threads(), threads) << "OpenMP's thread count was not restored";
    if (check) check(out);
    if (first.empty()) {
      first = out;
      continue;
    }
    for (std::size_t i = 0; i < out.size(); ++i) {
      const std::string diff = first_difference(out[i], first[i]);
      EXPECT_TRUE(diff.empty()) << what << ": output " << i << " at " << threads
                                << " threads differs from 1 thread at " << diff;
    }
  }
}

// ---- convolution ----------------------------------------------------------------------------
using test::ConvCase;

class ConvInvariance : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvInvariance, SameBitsForEveryThreadCountAndMatchReference) {
  const ConvCase cc = GetParam();
  const Conv2dParams p{cc.stride, cc.stride, cc.pad, cc.pad};
  const Shape xs{cc.n, cc.c, cc.h, cc.w}, ws{cc.o, cc.c, cc.k, cc.k}, bs{cc.o};
  const Shape ys = conv2d_output_shape(xs, ws, p);
  const Tensor x = random_tensor(xs, 1), w = random_tensor(ws, 2), b = random_tensor(bs, 3);
  const Tensor dy = random_tensor(ys, 4);

  for (const bool fused : {false, true}) {  // bias + ReLU, or neither
    const Tensor want =
        from_doubles(ys, test::ref::conv_forward(x, w, fused ? &b : nullptr, p, fused));
    expect_invariant(
        fused ? "conv forward (bias, relu)" : "conv forward",
        [&](const Context& ctx) {
          Tensor y = Tensor::full(ys, 123.0f);
          conv2d_forward(ctx, x, w, fused ? b : Tensor(), y, p, fused);
          return Outputs{y};
        },
        [&](const Outputs& out) { EXPECT_TRUE(all_close(out[0], want, kRtol, kAtol)); });
  }

  const Tensor want_dx = from_doubles(xs, test::ref::conv_backward_data(dy, w, xs, p));
  expect_invariant(
      "conv backward-data",
      [&](const Context& ctx) {
        Tensor dx = Tensor::full(xs, 123.0f);
        conv2d_backward_data(ctx, dy, w, dx, p);
        return Outputs{dx};
      },
      [&](const Outputs& out) { EXPECT_TRUE(all_close(out[0], want_dx, kRtol, kAtol)); });

  const std::vector<double> grads = test::ref::conv_backward_weights(x, dy, ws, p);
  const std::int64_t wn = numel_of(ws);
  const Tensor dw0 = random_tensor(ws, 5), db0 = random_tensor(bs, 6);
  for (const bool accumulate : {false, true}) {
    for (const bool bias : {false, true}) {
      std::vector<double> want_w(grads.begin(), grads.begin() + wn),
          want_b(grads.begin() + wn, grads.end());
      for (std::int64_t i = 0; accumulate && i < wn; ++i) want_w[i] += dw0.data<float>()[i];
      for (std::int64_t i = 0; accumulate && i < cc.o; ++i) want_b[i] += db0.data<float>()[i];
      const Tensor ww = from_doubles(ws, want_w), wb = from_doubles(bs, want_b);
      expect_invariant(
          accumulate ? (bias ? "conv backward-weights (bias, accumulate)"
                             : "conv backward-weights (accumulate)")
                     : (bias ? "conv backward-weights (bias)" : "conv backward-weights"),
          [&](const Context& ctx) {
            Tensor dw = dw0.clone(), db = db0.clone();
            Tensor db_arg = bias ? db : Tensor();
            conv2d_backward_weights(ctx, x, dy, dw, db_arg, p, accumulate);
            return Outputs{dw, db};
          },
          [&](const Outputs& out) {
            EXPECT_TRUE(all_close(out[0], ww, kRtol, kAtol));
            EXPECT_TRUE(all_close(out[1], bias ? wb : db0, bias ? kRtol : 0, bias ? kAtol : 0));
          });
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvInvariance,
    ::testing::Values(ConvCase{32, 1, 28, 28, 32, 3, 1, 1},   // cnn layer 1, shard batch 32
                      ConvCase{32, 32, 14, 14, 64, 3, 1, 1},  // cnn layer 2
                      ConvCase{32, 64, 7, 7, 64, 3, 1, 1},    // cnn layer 3
                      ConvCase{5, 1, 28, 28, 32, 3, 1, 1},    // a group of 4 and a tail of 1
                      ConvCase{1, 3, 1, 1, 5, 1, 1, 0},       // batch 1, 1x1 image, 1x1 kernel
                      ConvCase{3, 3, 5, 7, 5, 3, 1, 1},       // batch 3 (tail only), 5x7
                      ConvCase{5, 3, 5, 7, 4, 3, 2, 1},       // stride 2, pad 1
                      ConvCase{9, 5, 7, 5, 3, 3, 2, 0},       // stride 2, pad 0, two groups + 1
                      ConvCase{13, 8, 6, 6, 16, 3, 1, 1}));   // 4 groups and a tail of 1

// ---- linear ---------------------------------------------------------------------------------
struct LinearCase {
  std::int64_t n, k, m;
};
std::ostream& operator<<(std::ostream& os, const LinearCase& c) {
  return os << "n=" << c.n << " k=" << c.k << " m=" << c.m;
}

class LinearInvariance : public ::testing::TestWithParam<LinearCase> {};

TEST_P(LinearInvariance, SameBitsForEveryThreadCountAndMatchReference) {
  const auto [n, k, m] = GetParam();
  const Tensor x = random_tensor({n, k}, 1), w = random_tensor({m, k}, 2),
               b = random_tensor({m}, 3);
  const Tensor dy = random_tensor({n, m}, 4);

  for (const bool fused : {false, true}) {
    const Tensor want =
        from_doubles({n, m}, test::ref::linear_forward(x, w, fused ? &b : nullptr, fused));
    expect_invariant(
        fused ? "linear forward (bias, relu)" : "linear forward",
        [&](const Context& ctx) {
          Tensor y = Tensor::full({n, m}, 123.0f);
          linear_forward(ctx, x, w, fused ? b : Tensor(), y, fused);
          return Outputs{y};
        },
        [&](const Outputs& out) { EXPECT_TRUE(all_close(out[0], want, kRtol, kAtol)); });
  }

  // dx = dy * w is linear_forward of dy with w^T.
  Tensor wt = Tensor::empty({k, m});
  const float *xp = x.data<float>(), *wp = w.data<float>(), *dyp = dy.data<float>();
  float* wtp = wt.data<float>();
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < k; ++j) wtp[j * m + i] = wp[i * k + j];
  const Tensor want_dx = from_doubles({n, k}, test::ref::linear_forward(dy, wt, nullptr, false));
  expect_invariant(
      "linear backward-data",
      [&](const Context& ctx) {
        Tensor dx = Tensor::full({n, k}, 123.0f);
        linear_backward_data(ctx, dy, w, dx);
        return Outputs{dx};
      },
      [&](const Outputs& out) { EXPECT_TRUE(all_close(out[0], want_dx, kRtol, kAtol)); });

  std::vector<double> grad_w(static_cast<std::size_t>(m * k), 0.0),
      grad_b(static_cast<std::size_t>(m), 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < m; ++j) {
      grad_b[j] += dyp[i * m + j];
      for (std::int64_t l = 0; l < k; ++l)
        grad_w[j * k + l] += static_cast<double>(dyp[i * m + j]) * xp[i * k + l];
    }
  const Tensor dw0 = random_tensor({m, k}, 5), db0 = random_tensor({m}, 6);
  for (const bool accumulate : {false, true}) {
    std::vector<double> ew = grad_w, eb = grad_b;
    for (std::size_t i = 0; accumulate && i < ew.size(); ++i) ew[i] += dw0.data<float>()[i];
    for (std::size_t i = 0; accumulate && i < eb.size(); ++i) eb[i] += db0.data<float>()[i];
    const Tensor want_w = from_doubles({m, k}, ew), want_b = from_doubles({m}, eb);
    expect_invariant(
        accumulate ? "linear backward-weights (accumulate)" : "linear backward-weights",
        [&](const Context& ctx) {
          Tensor dw = dw0.clone(), db = db0.clone();
          linear_backward_weights(ctx, x, dy, dw, db, accumulate);
          return Outputs{dw, db};
        },
        [&](const Outputs& out) {
          EXPECT_TRUE(all_close(out[0], want_w, kRtol, kAtol));
          EXPECT_TRUE(all_close(out[1], want_b, kRtol, kAtol));
        });
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, LinearInvariance,
                         ::testing::Values(LinearCase{32, 784, 2048},   // mlp, shard batch 32
                                           LinearCase{32, 2048, 2048},  // mlp hidden
                                           LinearCase{32, 2048, 10},    // mlp head
                                           LinearCase{32, 3136, 10},    // cnn head
                                           LinearCase{1, 1, 1}, LinearCase{3, 5, 7},
                                           LinearCase{5, 300, 257},   // a block edge in m
                                           LinearCase{300, 33, 513},  // block edges in n, m
                                           LinearCase{3, 5000, 9}));

// An empty batch has a zero weight gradient (added: nothing changes), in both modes' contract.
TEST(EmptyBatchInvariance, WeightGradientsAreZero) {
  Context ctx = Context::create(Device::cpu(), 2);
  ctx.set_thread_invariant(true);
  const Conv2dParams p{1, 1, 1, 1};
  const Tensor x = Tensor::empty({0, 3, 5, 5}), dy = Tensor::empty({0, 4, 5, 5});
  const Tensor dw0 = random_tensor({4, 3, 3, 3}, 1), db0 = random_tensor({4}, 2);
  for (const bool accumulate : {false, true}) {
    Tensor dw = dw0.clone(), db = db0.clone();
    conv2d_backward_weights(ctx, x, dy, dw, db, p, accumulate);
    EXPECT_TRUE(all_close(dw, accumulate ? dw0 : Tensor::zeros(dw0.shape()), 0, 0));
    EXPECT_TRUE(all_close(db, accumulate ? db0 : Tensor::zeros(db0.shape()), 0, 0));
  }
  const Tensor lx = Tensor::empty({0, 5}), ldy = Tensor::empty({0, 3});
  const Tensor lw0 = random_tensor({3, 5}, 3), lb0 = random_tensor({3}, 4);
  for (const bool accumulate : {false, true}) {
    Tensor dw = lw0.clone(), db = lb0.clone();
    linear_backward_weights(ctx, lx, ldy, dw, db, accumulate);
    EXPECT_TRUE(all_close(dw, accumulate ? lw0 : Tensor::zeros(lw0.shape()), 0, 0));
    EXPECT_TRUE(all_close(db, accumulate ? lb0 : Tensor::zeros(lb0.shape()), 0, 0));
  }
}

// ---- the block runner -------------------------------------------------------------------------
// What parallel_blocks promises the code it runs: OpenMP reports one thread (oneDNN's GEMM and
// primitives read that as their budget; inside a team of one omp_in_parallel() is false, so
// nothing else would stop them from using every thread), and dnnl_sgemm then computes what it
// computes when the process has one thread.
TEST(ParallelBlocks, BodiesSeeOneThreadAndSgemmComputesItsSequentialResult) {
  const std::int64_t m = 8, n = 8, k = 1 << 14;
  const Tensor a = random_tensor({m, k}, 1), b = random_tensor({k, n}, 2);
  auto gemm = [&](float* c) {
    ASSERT_EQ(
        dnnl_sgemm('N', 'N', m, n, k, 1.0f, a.data<float>(), k, b.data<float>(), n, 0.0f, c, n),
        dnnl_success);
  };
  std::vector<float> sequential(static_cast<std::size_t>(m * n));
  {
    const Context one = Context::create(Device::cpu(), 1);
    gemm(sequential.data());
  }
  for (const int threads : {2, 4}) {
    for (const std::int64_t blocks : {1, 6}) {
      SCOPED_TRACE(::testing::Message() << threads << " threads, " << blocks << " blocks");
      const Context ctx = Context::create(Device::cpu(), threads);
      std::vector<std::vector<float>> c(static_cast<std::size_t>(blocks),
                                        std::vector<float>(static_cast<std::size_t>(m * n)));
      std::vector<int> seen(static_cast<std::size_t>(blocks), -1);
      cpu::parallel_blocks(ctx, blocks, [&](std::int64_t block, int worker) {
        seen[static_cast<std::size_t>(block)] = omp_get_max_threads();
        EXPECT_LT(worker, cpu::block_workers(ctx, blocks));
        gemm(c[static_cast<std::size_t>(block)].data());
      });
      EXPECT_EQ(omp_get_max_threads(), threads);
      for (std::int64_t i = 0; i < blocks; ++i) {
        EXPECT_EQ(seen[static_cast<std::size_t>(i)], 1) << "block " << i;
        EXPECT_EQ(std::memcmp(c[static_cast<std::size_t>(i)].data(), sequential.data(),
                              sequential.size() * sizeof(float)),
                  0)
            << "block " << i;
      }
    }
  }
}

TEST(ParallelBlocks, AnExceptionInABlockIsRethrownAfterTheRegion) {
  const Context ctx = Context::create(Device::cpu(), 3);
  std::atomic<int> done{0};
  auto body = [&](std::int64_t block, int /*worker*/) {
    if (block == 4) DPT_FAIL("block ", block, " failed");
    ++done;
  };
  EXPECT_THROW(cpu::parallel_blocks(ctx, 10, body), Error);
  EXPECT_EQ(done, 9);
  EXPECT_EQ(omp_get_max_threads(), 3);
}

// ---- the other ops: invariant by construction (per element, per plane, per row, fixed chunks) ---
TEST(OtherOpsInvariance, SameBitsForEveryThreadCount) {
  const std::int64_t n = 100003;  // above every op's parallel threshold, not a multiple of 8
  const Tensor x = random_tensor({n}, 1), g = random_tensor({n}, 2);
  expect_invariant("relu", [&](const Context& ctx) {
    Tensor y = Tensor::empty({n}), dx = Tensor::empty({n});
    relu_forward(ctx, x, y);
    relu_backward(ctx, y, g, dx);
    return Outputs{y, dx};
  });
  expect_invariant("dropout", [&](const Context& ctx) {
    const Tensor xs = random_tensor({7, 14293}, 3);
    Tensor y = Tensor::empty(xs.shape()), mask = Tensor::empty(xs.shape()),
           dx = Tensor::empty(xs.shape());
    dropout_forward(ctx, xs, y, mask, 0.3f, DropoutKey{5, 2, 1, 11});
    dropout_backward(ctx, y, mask, dx);
    return Outputs{y, mask, dx};
  });
  expect_invariant("scale, axpy, sum_squares", [&](const Context& ctx) {
    Tensor y = x.clone();
    scale(ctx, y, 0.37f);
    axpy(ctx, -1.3f, g, y);
    const double sum = sum_squares(ctx, y);
    return Outputs{y, Tensor::from_vector({1}, {static_cast<float>(sum)}),
                   Tensor::from_vector({1}, {static_cast<float>(sum - static_cast<float>(sum))})};
  });
  expect_invariant("sgd", [&](const Context& ctx) {
    Tensor param = x.clone(), buf = Tensor::zeros({n});
    const SgdHyper h{0.1, 0.9, 0.0, 1e-4, true, 1.0 / 3};
    for (int step = 0; step < 3; ++step) sgd_step(ctx, param, g, buf, h, step == 0);
    return Outputs{param, buf};
  });
  expect_invariant("adamw", [&](const Context& ctx) {
    Tensor param = x.clone(), m1 = Tensor::zeros({n}), m2 = Tensor::zeros({n});
    for (int step = 1; step <= 3; ++step) adamw_step(ctx, param, g, m1, m2, AdamWHyper{}, step);
    return Outputs{param, m1, m2};
  });
  expect_invariant("softmax cross-entropy", [&](const Context& ctx) {
    const std::int64_t rows = 3001, classes = 10;
    const Tensor logits = random_tensor({rows, classes}, 4, -5.0f, 5.0f);
    Tensor labels = Tensor::empty({rows}, DType::kI32);
    for (std::int64_t i = 0; i < rows; ++i)
      labels.data<std::int32_t>()[i] = static_cast<std::int32_t>(i * 7 % classes);
    Tensor dlogits = Tensor::empty({rows, classes});
    const LossResult r = softmax_cross_entropy(ctx, logits, labels, &dlogits);
    return Outputs{
        dlogits,
        Tensor::from_vector({2}, {static_cast<float>(r.loss_sum),
                                  static_cast<float>(r.loss_sum - static_cast<float>(r.loss_sum))}),
        Tensor::from_vector({1}, {static_cast<float>(r.correct)})};
  });
  struct PoolCase {
    Shape x;
    Pool2dParams p;
  };
  for (const PoolCase& pc :
       {PoolCase{{32, 32, 28, 28}, Pool2dParams{}},                 // cnn
        PoolCase{{5, 3, 5, 7}, Pool2dParams{3, 3, 2, 2, 1, 1}}}) {  // overlapping
    expect_invariant("max pool", [&](const Context& ctx) {
      const Tensor xp = random_tensor(pc.x, 5);
      const Shape ys = pool2d_output_shape(pc.x, pc.p);
      Tensor y = Tensor::empty(ys), workspace, dx = Tensor::empty(pc.x);
      max_pool2d_forward(ctx, xp, y, workspace, pc.p);
      max_pool2d_backward(ctx, random_tensor(ys, 6), workspace, dx, pc.p);
      return Outputs{y, workspace, dx};
    });
  }
}

}  // namespace
}  // namespace dpt::kernels
