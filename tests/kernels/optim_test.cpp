// SPDX-License-Identifier: MIT
// SGD and AdamW steps against numbers worked out by hand (3-element params, 2 steps) and against a
// double-precision transcription of the torch.optim.SGD / torch.optim.AdamW update rules.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/ops.h"
#include "testing/test_util.h"

namespace dpt::kernels {
namespace {

using test::all_close;

class Optim : public ::testing::Test {
 protected:
  Context ctx_ = Context::create(Device::cpu());
};

Tensor vec(std::vector<float> v) {
  const auto n = static_cast<std::int64_t>(v.size());
  return Tensor::from_vector({n}, v);
}

TEST_F(Optim, SgdMomentumWeightDecayByHand) {
  // lr 0.1, momentum 0.9, wd 0.01. Step 1: d = g + 0.01 p = [0.11, 0.18, -0.295], buf = d,
  // p -= 0.1 d. Step 2: d = g2 + 0.01 p; buf = 0.9 buf + d; p -= 0.1 buf.
  Tensor p = vec({1.0f, -2.0f, 0.5f}), buf = Tensor::full({3}, 777.0f);
  const SgdHyper h{0.1f, 0.9f, 0.0f, 0.01f, false};
  sgd_step(ctx_, p, vec({0.1f, 0.2f, -0.3f}), buf, h, true);
  EXPECT_TRUE(all_close(p, vec({0.989f, -2.018f, 0.5295f}), 1e-6, 1e-7));
  EXPECT_TRUE(all_close(buf, vec({0.11f, 0.18f, -0.295f}), 1e-6, 1e-7));
  sgd_step(ctx_, p, vec({-0.2f, 0.05f, 0.4f}), buf, h, false);
  EXPECT_TRUE(all_close(buf, vec({-0.09111f, 0.19182f, 0.139795f}), 1e-5, 1e-7));
  EXPECT_TRUE(all_close(p, vec({0.998111f, -2.037182f, 0.5155205f}), 1e-6, 1e-7));
}

TEST_F(Optim, SgdNesterovAndPlainByHand) {
  // Nesterov, first step: buf = d, update d + 0.9 buf = 1.9 d.
  Tensor p = vec({1.0f, -2.0f, 0.5f}), buf = Tensor::zeros({3});
  sgd_step(ctx_, p, vec({0.1f, 0.2f, -0.3f}), buf, SgdHyper{0.1, 0.9, 0.0, 0.01, true}, true);
  EXPECT_TRUE(all_close(p, vec({0.9791f, -2.0342f, 0.55605f}), 1e-6, 1e-7));
  // No momentum: p -= lr * g; the buffer is not needed.
  Tensor q = vec({1.0f, -2.0f, 0.5f}), none;
  sgd_step(ctx_, q, vec({0.1f, 0.2f, -0.3f}), none, SgdHyper{0.5, 0.0, 0.0, 0.0, false}, true);
  EXPECT_TRUE(all_close(q, vec({0.95f, -2.1f, 0.65f}), 1e-6, 1e-7));
}

TEST_F(Optim, AdamWFirstStepByHand) {
  // Step 1: p *= 1 - lr wd = 0.99; m = 0.1 g; v = 0.001 g^2; step_size = lr / 0.1;
  // denom = sqrt(v) / sqrt(0.001) + eps = |g| + eps, so p -= lr * sign(g).
  Tensor p = vec({1.0f, -2.0f, 0.5f}), m = Tensor::zeros({3}), v = Tensor::zeros({3});
  adamw_step(ctx_, p, vec({0.1f, 0.2f, -0.3f}), m, v, AdamWHyper{0.1, 0.9, 0.999, 1e-8, 0.1}, 1);
  EXPECT_TRUE(all_close(p, vec({0.89f, -2.08f, 0.595f}), 1e-6, 1e-6));
  EXPECT_TRUE(all_close(m, vec({0.01f, 0.02f, -0.03f}), 1e-6, 1e-9));
  // 1 - beta2 is formed in double (0.001 exactly rounded), as torch does: float rounding only.
  EXPECT_TRUE(all_close(v, vec({1e-5f, 4e-5f, 9e-5f}), 1e-6, 1e-12));
}

// torch.optim.SGD / AdamW written out in double, one element at a time.
struct SgdRef {
  double lr, momentum, dampening, wd;
  bool nesterov;
  void step(std::vector<double>& p, const std::vector<double>& g, std::vector<double>& buf, bool first) const {
    for (std::size_t i = 0; i < p.size(); ++i) {
      double d = g[i] + wd * p[i];
      if (momentum != 0) {
        buf[i] = first ? d : momentum * buf[i] + (1 - dampening) * d;
        d = nesterov ? d + momentum * buf[i] : buf[i];
      }
      p[i] -= lr * d;
    }
  }
};

std::vector<double> doubles(const Tensor& t) {
  const float* f = t.data<float>();
  return std::vector<double>(f, f + t.numel());
}

TEST_F(Optim, SgdThreeStepsMatchDoubleReference) {
  const std::int64_t n = 40000;  // large enough for the parallel loop
  for (const SgdHyper h : {SgdHyper{0.05, 0.9, 0.1, 0.001, false}, SgdHyper{0.05, 0.8, 0.0, 0.0, true},
                           SgdHyper{0.2, 0.0, 0.0, 0.01, false}}) {
    Tensor p = test::random_tensor({n}, 1), buf = Tensor::zeros({n});
    std::vector<double> rp = doubles(p), rbuf(static_cast<std::size_t>(n));
    const SgdRef ref{h.lr, h.momentum, h.dampening, h.weight_decay, h.nesterov};
    for (int s = 0; s < 3; ++s) {
      const Tensor g = test::random_tensor({n}, 10 + s);
      sgd_step(ctx_, p, g, buf, h, s == 0);
      ref.step(rp, doubles(g), rbuf, s == 0);
    }
    EXPECT_TRUE(all_close(doubles(p), rp, 1e-5, 1e-6));
  }
}

TEST_F(Optim, AdamWThreeStepsMatchDoubleReference) {
  const std::int64_t n = 40000;
  const AdamWHyper h{0.01, 0.8, 0.99, 1e-6, 0.05};
  Tensor p = test::random_tensor({n}, 2), m = Tensor::zeros({n}), v = Tensor::zeros({n});
  std::vector<double> rp = doubles(p), rm(static_cast<std::size_t>(n)), rv(static_cast<std::size_t>(n));
  for (int t = 1; t <= 3; ++t) {
    const Tensor g = test::random_tensor({n}, 20 + t);
    adamw_step(ctx_, p, g, m, v, h, t);
    const std::vector<double> gd = doubles(g);
    const double bc1 = 1 - std::pow(0.8, t), bc2 = 1 - std::pow(0.99, t);
    for (std::int64_t i = 0; i < n; ++i) {
      rp[i] *= 1 - 0.01 * 0.05;
      rm[i] = 0.8 * rm[i] + 0.2 * gd[i];
      rv[i] = 0.99 * rv[i] + 0.01 * gd[i] * gd[i];
      rp[i] -= (0.01 / bc1) * rm[i] / (std::sqrt(rv[i]) / std::sqrt(bc2) + 1e-6);
    }
  }
  EXPECT_TRUE(all_close(doubles(p), rp, 1e-5, 1e-5));
  EXPECT_TRUE(all_close(doubles(m), rm, 1e-5, 1e-6));
  EXPECT_TRUE(all_close(doubles(v), rv, 1e-5, 1e-8));
}

}  // namespace
}  // namespace dpt::kernels
