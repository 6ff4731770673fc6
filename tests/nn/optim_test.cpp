// SPDX-License-Identifier: MIT
// Optimizers over flat buffers: values computed by hand from torch.optim's update rules.
#include <gtest/gtest.h>

#include <cmath>
#include <span>

#include "nn/optim/optimizer.h"
#include "testing/test_util.h"

namespace dpt::nn {
namespace {

Context cpu() { return Context::create(Device::cpu(), 1); }

TEST(Optimizer, SgdMomentumNesterovWeightDecayByHand) {
  const Context ctx = cpu();
  OptimizerConfig c;
  c.kind = OptimizerKind::kSgd;
  c.momentum = 0.9;
  c.nesterov = true;
  c.weight_decay = 0.1;
  auto opt = make_optimizer(c, 2);
  Tensor p = Tensor::from_vector({2}, {1.0f, -2.0f});
  const Tensor g = Tensor::from_vector({2}, {0.5f, 0.25f});
  // Step 1: d = g + 0.1 p = (0.6, 0.05); buf = d; nesterov d + 0.9 buf = (1.14, 0.095);
  // p = p - 0.1 * that = (0.886, -2.0095).
  opt->step(ctx, p, g, 0.1f);
  EXPECT_NEAR(p.data<float>()[0], 0.886f, 1e-6);
  EXPECT_NEAR(p.data<float>()[1], -2.0095f, 1e-6);
  // Step 2: d = g + 0.1 p = (0.5886, 0.04905); buf = 0.9 buf + d = (1.1286, 0.09405);
  // step d + 0.9 buf = (1.60434, 0.133695); p -= 0.1 * that.
  opt->step(ctx, p, g, 0.1f);
  EXPECT_NEAR(p.data<float>()[0], 0.886f - 0.160434f, 1e-6);
  EXPECT_NEAR(p.data<float>()[1], -2.0095f - 0.0133695f, 1e-6);
  EXPECT_EQ(opt->step_count(), 2);
  EXPECT_EQ(opt->slot_names(), std::vector<std::string>{"momentum_buffer"});
  EXPECT_NEAR(opt->slot("momentum_buffer").data<float>()[0], 1.1286f, 1e-6);
}

TEST(Optimizer, PlainSgdHasNoSlots) {
  const Context ctx = cpu();
  OptimizerConfig c;
  c.kind = OptimizerKind::kSgd;
  auto opt = make_optimizer(c, 1);
  Tensor p = Tensor::from_vector({1}, {3.0f});
  opt->step(ctx, p, Tensor::from_vector({1}, {2.0f}), 0.5f);
  EXPECT_FLOAT_EQ(p.data<float>()[0], 2.0f);
  EXPECT_TRUE(opt->slot_names().empty());
  EXPECT_THROW(opt->slot("momentum_buffer"), Error);
}

TEST(Optimizer, AdamWTwoStepsByHand) {
  const Context ctx = cpu();
  OptimizerConfig c;
  c.kind = OptimizerKind::kAdamW;
  c.weight_decay = 0.01;
  auto opt = make_optimizer(c, 1);
  Tensor p = Tensor::from_vector({1}, {1.0f});
  const double lr = 0.1;
  double param = 1.0, m = 0.0, v = 0.0;
  for (int t = 1; t <= 2; ++t) {
    const double grad = t == 1 ? 0.5 : -0.3;
    opt->step(ctx, p, Tensor::from_vector({1}, {static_cast<float>(grad)}), lr);
    param *= 1.0 - lr * 0.01;
    m = 0.9 * m + 0.1 * grad;
    v = 0.999 * v + 0.001 * grad * grad;
    const double denom = std::sqrt(v) / std::sqrt(1.0 - std::pow(0.999, t)) + 1e-8;
    param -= lr / (1.0 - std::pow(0.9, t)) * m / denom;
    EXPECT_NEAR(p.data<float>()[0], param, 1e-6) << "step " << t;
  }
  EXPECT_NEAR(opt->slot("exp_avg").data<float>()[0], m, 1e-7);
  EXPECT_NEAR(opt->slot("exp_avg_sq").data<float>()[0], v, 1e-6 * v);
}

TEST(Optimizer, RejectsBadHyperParameters) {
  OptimizerConfig c;
  c.kind = OptimizerKind::kSgd;
  c.nesterov = true;  // without momentum
  EXPECT_THROW(make_optimizer(c, 1), Error);
  c = OptimizerConfig{};
  c.beta1 = 1.0;
  EXPECT_THROW(make_optimizer(c, 1), Error);
}

TEST(Optimizer, ClipGradNormScalesOnlyAboveTheLimit) {
  const Context ctx = cpu();
  const Tensor g = Tensor::from_vector({2}, {6.0f, 8.0f});  // norm 10, 5 after grad_scale 0.5
  const GradClip loose = clip_grad_norm(ctx, g, 0.5, 10.0);
  EXPECT_NEAR(loose.norm, 5.0, 1e-9);
  EXPECT_EQ(loose.coefficient, 1.0);
  const GradClip tight = clip_grad_norm(ctx, g, 0.5, 1.0);
  EXPECT_NEAR(tight.coefficient, 1.0 / (5.0 + 1e-6), 1e-12);
  EXPECT_FLOAT_EQ(g.data<float>()[0], 6.0f);  // the gradients themselves are left alone
}

TEST(Optimizer, GradScaleIsTheSameAsScalingFirst) {
  const Context ctx = cpu();
  for (OptimizerKind kind : {OptimizerKind::kSgd, OptimizerKind::kAdamW}) {
    OptimizerConfig c;
    c.kind = kind;
    c.momentum = 0.9;
    auto fused = make_optimizer(c, 64);
    auto plain = make_optimizer(c, 64);
    Tensor p1 = test::random_tensor({64}, 1), p2 = p1.clone();
    const Tensor g = test::random_tensor({64}, 2);
    Tensor g_scaled = g.clone();
    for (float& v : std::span(g_scaled.data<float>(), 64)) v *= 0.125f;
    for (int s = 0; s < 3; ++s) {
      fused->step(ctx, p1, g, 0.01, 0.125);
      plain->step(ctx, p2, g_scaled, 0.01);
    }
    EXPECT_EQ(p1.to_vector(), p2.to_vector());  // bitwise: the same float product either way
  }
}

}  // namespace
}  // namespace dpt::nn
