// SPDX-License-Identifier: MIT
// SGD and AdamW steps against numbers worked out by hand (3-element params, 2 steps), against a
// double-precision transcription of the torch.optim.SGD / torch.optim.AdamW update rules, and bit
// for bit against a scalar loop over kernels/optim_math.h for every variant.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/ops.h"
#include "kernels/optim_math.h"
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

// The vectorised loops (Note [Optimizer loops] in cpu/optim.cpp) must compute what one scalar call
// of the shared math per element computes, bit for bit: the GPU and exact mode rely on it. An odd
// size and a start one float past an alignment boundary give the loops a peeled head, a vector body
// and a tail, and the size is split over the OpenMP threads.
constexpr std::int64_t kOddSize = 1000003;

// The first n floats of t, starting one element in: misaligned for every vector width.
Tensor misaligned(const Tensor& t, std::int64_t n) { return Tensor::view_of(t, 1, {n}); }

Tensor misaligned_random(std::int64_t n, std::uint64_t seed, float lo, float hi) {
  Tensor base = test::random_tensor({n + 1}, seed, lo, hi);
  return misaligned(base, n);
}

std::vector<float> floats(const Tensor& t) {
  const float* f = t.data<float>();
  return std::vector<float>(f, f + t.numel());
}

// Index of the first element whose bits differ, or -1.
std::int64_t first_bit_difference(const std::vector<float>& a, const Tensor& b) {
  const float* fb = b.data<float>();
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &fb[i], sizeof(float)) != 0) return static_cast<std::int64_t>(i);
  }
  return -1;
}

TEST_F(Optim, EverySgdVariantIsBitwiseTheScalarMath) {
  struct Variant {
    const char* name;
    SgdHyper h;
  };
  const Variant variants[] = {
      {"plain", SgdHyper{0.05, 0.0, 0.0, 0.0, false, 1.0}},
      {"plain, weight decay, grad scale", SgdHyper{0.05, 0.0, 0.0, 0.01, false, 1.0 / 96}},
      {"momentum", SgdHyper{0.05, 0.9, 0.0, 0.0, false, 1.0}},
      {"momentum, dampening, weight decay", SgdHyper{0.05, 0.9, 0.25, 0.001, false, 1.0 / 3}},
      {"nesterov", SgdHyper{0.05, 0.8, 0.0, 0.0, true, 1.0}},
      {"nesterov, weight decay, grad scale", SgdHyper{0.03, 0.85, 0.0, 0.02, true, 1.0 / 7}},
  };
  for (const Variant& v : variants) {
    SCOPED_TRACE(v.name);
    const bool momentum = v.h.momentum != 0.0;
    Tensor p = misaligned_random(kOddSize, 1, -2.0f, 2.0f);
    Tensor buf = momentum ? misaligned_random(kOddSize, 2, -1.0f, 1.0f) : Tensor();
    std::vector<float> rp = floats(p), rbuf = momentum ? floats(buf) : std::vector<float>();
    const SgdCoeffs c = sgd_coeffs(v.h.lr, v.h.momentum, v.h.dampening, v.h.weight_decay,
                                   v.h.nesterov, v.h.grad_scale);
    for (int step = 0; step < 3; ++step) {  // the first step sets buf, later ones update it
      const bool first = step == 0;
      const Tensor g = misaligned_random(kOddSize, 10 + step, -3.0f, 3.0f);
      sgd_step(ctx_, p, g, buf, v.h, first);
      const float* gf = g.data<float>();
      float unused = 0.0f;
      for (std::int64_t i = 0; i < kOddSize; ++i) {
        sgd_update(&rp[i], gf[i], momentum ? &rbuf[i] : &unused, c, first);
      }
      EXPECT_EQ(first_bit_difference(rp, p), -1) << "param, step " << step;
      if (momentum) {
        EXPECT_EQ(first_bit_difference(rbuf, buf), -1) << "momentum, step " << step;
      }
    }
  }
}

TEST_F(Optim, AdamWIsBitwiseTheScalarMath) {
  for (const AdamWHyper h : {AdamWHyper{1e-3, 0.9, 0.999, 1e-8, 0.01, 1.0},
                             AdamWHyper{0.02, 0.8, 0.95, 1e-6, 0.0, 1.0 / 96}}) {
    SCOPED_TRACE(h.lr);
    Tensor p = misaligned_random(kOddSize, 3, -2.0f, 2.0f);
    Tensor m = misaligned_random(kOddSize, 4, -0.1f, 0.1f);
    Tensor v = misaligned_random(kOddSize, 5, 0.0f, 0.01f);
    std::vector<float> rp = floats(p), rm = floats(m), rv = floats(v);
    for (std::int64_t t = 1; t <= 3; ++t) {
      const Tensor g = misaligned_random(kOddSize, 20 + t, -3.0f, 3.0f);
      adamw_step(ctx_, p, g, m, v, h, t);
      const AdamWCoeffs c = adamw_coeffs(h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, t,
                                         h.grad_scale);
      const float* gf = g.data<float>();
      for (std::int64_t i = 0; i < kOddSize; ++i) adamw_update(&rp[i], gf[i], &rm[i], &rv[i], c);
      EXPECT_EQ(first_bit_difference(rp, p), -1) << "param, step " << t;
      EXPECT_EQ(first_bit_difference(rm, m), -1) << "exp_avg, step " << t;
      EXPECT_EQ(first_bit_difference(rv, v), -1) << "exp_avg_sq, step " << t;
    }
  }
}

}  // namespace
}  // namespace dpt::kernels
