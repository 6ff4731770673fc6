// SPDX-License-Identifier: MIT
// Per-element optimizer updates with PyTorch semantics (torch.optim.SGD and torch.optim.AdamW,
// single-tensor path), written once for the CPU loops and the future CUDA kernels.
#pragma once

#include <cmath>

#include "runtime/host_device.h"

namespace dpt::kernels {

struct SgdCoeffs {
  float lr, momentum, dampening, weight_decay;
  bool nesterov;
};

// torch.optim.SGD: d = g + wd * p; buf = d on the first step, else momentum * buf + (1 - damp) * d;
// d = d + momentum * buf (nesterov) or buf; p -= lr * d. Without momentum buf is not touched.
DPT_HOST_DEVICE void sgd_update(float* param, float grad, float* buf, const SgdCoeffs& c,
                                bool first_step) {
  float d = grad;
  if (c.weight_decay != 0.0f) d += c.weight_decay * *param;
  if (c.momentum != 0.0f) {
    const float b = first_step ? d : c.momentum * *buf + (1.0f - c.dampening) * d;
    *buf = b;
    d = c.nesterov ? d + c.momentum * b : b;
  }
  *param -= c.lr * d;
}

// Per-step constants of AdamW, computed once on the host in double as Python does.
struct AdamWCoeffs {
  float decay_factor;          // 1 - lr * weight_decay
  float beta1, beta2;
  float step_size;             // lr / (1 - beta1^t)
  float bias_correction2_sqrt; // sqrt(1 - beta2^t)
  float eps;
};

DPT_HOST_DEVICE AdamWCoeffs adamw_coeffs(float lr, float beta1, float beta2, float eps,
                                         float weight_decay, long long step) {
  const double bc1 = 1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step));
  return AdamWCoeffs{static_cast<float>(1.0 - static_cast<double>(lr) * weight_decay), beta1, beta2,
                     static_cast<float>(lr / bc1), static_cast<float>(std::sqrt(bc2)), eps};
}

// torch.optim.AdamW: p *= 1 - lr * wd; m = lerp(m, g, 1 - b1); v = b2 * v + (1 - b2) * g * g;
// p -= step_size * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
DPT_HOST_DEVICE void adamw_update(float* param, float grad, float* exp_avg, float* exp_avg_sq,
                                  const AdamWCoeffs& c) {
  const float p = *param * c.decay_factor;
  // torch's lerp_ with weight < 0.5 computes m + w * (g - m).
  const float m = *exp_avg + (1.0f - c.beta1) * (grad - *exp_avg);
  const float v = *exp_avg_sq * c.beta2 + (1.0f - c.beta2) * grad * grad;
  const float denom = std::sqrt(v) / c.bias_correction2_sqrt + c.eps;
  *exp_avg = m;
  *exp_avg_sq = v;
  *param = p - c.step_size * (m / denom);
}

}  // namespace dpt::kernels
