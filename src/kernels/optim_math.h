// SPDX-License-Identifier: MIT
// Per-element optimizer updates with PyTorch semantics (torch.optim.SGD and torch.optim.AdamW,
// single-tensor path), written once for the CPU loops and the CUDA kernels (kernels/cuda/optim.cu).
#pragma once

#include <cmath>

#include "runtime/host_device.h"

namespace dpt::kernels {

// Per-step constants of SGD, rounded to float once from the double hyper-parameters.
struct SgdCoeffs {
  float lr, momentum, one_minus_dampening, weight_decay, grad_scale;
  bool nesterov;
};

DPT_HOST_DEVICE SgdCoeffs sgd_coeffs(double lr, double momentum, double dampening,
                                     double weight_decay, bool nesterov, double grad_scale) {
  return SgdCoeffs{static_cast<float>(lr), static_cast<float>(momentum),
                   static_cast<float>(1.0 - dampening), static_cast<float>(weight_decay),
                   static_cast<float>(grad_scale), nesterov};
}

// Which terms of the SGD update apply. sgd_update decides them per call (SgdChoice); the CPU
// loops fix them at compile time (SgdFixed), one loop per variant, so that the loop body has no
// branch and vectorises (kernels/cpu/optim.cpp). Both run the one sgd_update_as below, so every
// variant computes the same operations in the same order: the same bits.
struct SgdChoice {
  bool weight_decay, momentum, nesterov, first_step;
};
template <bool kWeightDecay, bool kMomentum, bool kNesterov, bool kFirstStep>
struct SgdFixed {
  static constexpr bool weight_decay = kWeightDecay, momentum = kMomentum, nesterov = kNesterov,
                        first_step = kFirstStep;
};

// The choice sgd_update makes from the coefficients (and the one the CPU dispatch makes).
DPT_HOST_DEVICE SgdChoice sgd_choice(const SgdCoeffs& c, bool first_step) {
  return SgdChoice{c.weight_decay != 0.0f, c.momentum != 0.0f, c.nesterov, first_step};
}

// torch.optim.SGD: d = g + wd * p; buf = d on the first step, else momentum * buf + (1 - damp) * d;
// d = d + momentum * buf (nesterov) or buf; p -= lr * d. Without momentum buf is not touched.
template <class Choice>
DPT_HOST_DEVICE void sgd_update_as(const Choice& v, float* param, float grad, float* buf,
                                   const SgdCoeffs& c) {
  float d = grad * c.grad_scale;
  if (v.weight_decay) d += c.weight_decay * *param;
  if (v.momentum) {
    const float b = v.first_step ? d : c.momentum * *buf + c.one_minus_dampening * d;
    *buf = b;
    d = v.nesterov ? d + c.momentum * b : b;
  }
  *param -= c.lr * d;
}

DPT_HOST_DEVICE void sgd_update(float* param, float grad, float* buf, const SgdCoeffs& c,
                                bool first_step) {
  sgd_update_as(sgd_choice(c, first_step), param, grad, buf, c);
}

// Per-step constants of AdamW, computed once on the host in double as Python does.
struct AdamWCoeffs {
  float decay_factor;          // 1 - lr * weight_decay
  float one_minus_beta1;       // lerp weight
  float beta2, one_minus_beta2;
  float step_size;             // lr / (1 - beta1^t)
  float bias_correction2_sqrt; // sqrt(1 - beta2^t)
  float eps;
  float grad_scale;
};

DPT_HOST_DEVICE AdamWCoeffs adamw_coeffs(double lr, double beta1, double beta2, double eps,
                                         double weight_decay, long long step, double grad_scale) {
  const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  return AdamWCoeffs{static_cast<float>(1.0 - lr * weight_decay),
                     static_cast<float>(1.0 - beta1),
                     static_cast<float>(beta2),
                     static_cast<float>(1.0 - beta2),
                     static_cast<float>(lr / bc1),
                     static_cast<float>(std::sqrt(bc2)),
                     static_cast<float>(eps),
                     static_cast<float>(grad_scale)};
}

// torch.optim.AdamW: p *= 1 - lr * wd; m = lerp(m, g, 1 - b1); v = b2 * v + (1 - b2) * g * g;
// p -= step_size * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
DPT_HOST_DEVICE void adamw_update(float* param, float grad_in, float* exp_avg, float* exp_avg_sq,
                                  const AdamWCoeffs& c) {
  const float grad = grad_in * c.grad_scale;
  const float p = *param * c.decay_factor;
  // torch's lerp_ with weight < 0.5 computes m + w * (g - m).
  const float m = *exp_avg + c.one_minus_beta1 * (grad - *exp_avg);
  const float v = *exp_avg_sq * c.beta2 + c.one_minus_beta2 * grad * grad;
  const float denom = std::sqrt(v) / c.bias_correction2_sqrt + c.eps;
  *exp_avg = m;
  *exp_avg_sq = v;
  *param = p - c.step_size * (m / denom);
}

}  // namespace dpt::kernels
