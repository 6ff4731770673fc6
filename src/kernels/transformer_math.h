// SPDX-License-Identifier: MIT
// The per-element and per-row math of the transformer layers (GELU, layer norm, the causal softmax
// of one attention row, the dropout mask of a range of attention elements) written once as
// DPT_HOST_DEVICE functions: the CPU loops and a CUDA backend call the same.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/elementwise_math.h"
#include "kernels/exp_math.h"
#include "runtime/host_device.h"

namespace dpt::kernels {

// ---- GELU, tanh form ---------------------------------------------------------------------------
// Note [GELU through exp]
// ~~~~~~~~~~~~~~~~~~~~~~~
// gelu(x) = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3) (torch.nn.functional.gelu with
// approximate="tanh"). Since 1 + tanh(u) = 2 / (1 + exp(-2u)), this is x / (1 + exp(-2u)): the
// same function, computed with one exp instead of a tanh and without the cancellation of
// 1 + tanh(u) for u << 0. The exp is exp_float (Note [Exp by polynomial]): the loops vectorise
// (glibc's scalar expf made GELU 40% of a small GPT's step) and every backend gets the same bits.
// Measured over x in [-12, 12] against the double-precision function: at most 1.0e-6 relative error
// here, 5e-5 for PyTorch's float kernel (the cancellation); the two differ by at most 4.8e-7
// absolute. The derivative: with s = 1 / (1 + e), e = exp(-2u), d/dx = s + 2 x s (1 - s) u', and s
// (1 - s) = e s^2, again free of cancellation. exp(-2u) overflows to inf for u < -44: then s = 0
// and the derivative's second term is 0 (e s^2 would be inf * 0).
constexpr float kGeluBeta = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluKappa = 0.044715f;
constexpr float kFloatMax = 3.40282347e38f;

DPT_HOST_DEVICE float gelu_tanh(float x) {
  const float u = kGeluBeta * (x + kGeluKappa * (x * x * x));
  return x / (1.0f + exp_float(-2.0f * u));
}

// dy * d/dx gelu_tanh(x).
DPT_HOST_DEVICE float gelu_tanh_grad(float x, float dy) {
  const float x_sq = x * x;
  const float u = kGeluBeta * (x + kGeluKappa * (x_sq * x));
  const float du = kGeluBeta * (1.0f + 3.0f * kGeluKappa * x_sq);
  const float e = exp_float(-2.0f * u);
  const float s = 1.0f / (1.0f + e);
  const float e_s_s = e * s * s;  // computed unconditionally, so that the loop stays branch-free
  const float s_one_minus_s = e <= kFloatMax ? e_s_s : 0.0f;
  return dy * (s + 2.0f * x * s_one_minus_s * du);
}

// ---- layer norm of one row ---------------------------------------------------------------------
// Note [Layer norm statistics]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The row's mean and variance are accumulated in double, two passes (mean, then the squared
// deviations from it), and rounded to float once; PyTorch's CPU kernel accumulates in float. In
// double the statistics are exact to float rounding for any C and any offset of the row (a float
// one-pass sum loses digits when |mean| >> std), and they are a function of the row alone, so the
// same on every backend and thread count. The normalisation and the backward then work with the
// float mean and rstd that the forward stores, so the backward is the derivative of what the
// forward computed. The backward's two row sums (of dy*gamma and dy*gamma*xhat) are in double too.

// y = (x - mean) * rstd * gamma + beta over one row of c elements; beta may be null. Writes the
// row's mean and rstd = 1 / sqrt(var + eps).
DPT_HOST_DEVICE void layer_norm_row(const float* x, const float* gamma, const float* beta, float* y,
                                    std::int64_t c, float eps, float* mean_out, float* rstd_out) {
  double sum = 0.0;
  for (std::int64_t j = 0; j < c; ++j) sum += static_cast<double>(x[j]);
  const double mean = sum / static_cast<double>(c);
  double squares = 0.0;
  for (std::int64_t j = 0; j < c; ++j) {
    const double d = static_cast<double>(x[j]) - mean;
    squares += d * d;
  }
  const double var = squares / static_cast<double>(c);
  const float mean_f = static_cast<float>(mean);
  const float rstd = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
  for (std::int64_t j = 0; j < c; ++j) {
    const float normalised = (x[j] - mean_f) * rstd;
    y[j] = beta != nullptr ? normalised * gamma[j] + beta[j] : normalised * gamma[j];
  }
  *mean_out = mean_f;
  *rstd_out = rstd;
}

// dx of one row: rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * gamma and
// xhat = (x - mean) * rstd. dx may alias dy (each element is read before it is written).
DPT_HOST_DEVICE void layer_norm_backward_row(const float* x, const float* gamma, float mean,
                                             float rstd, const float* dy, float* dx,
                                             std::int64_t c) {
  double sum_g = 0.0, sum_g_xhat = 0.0;
  for (std::int64_t j = 0; j < c; ++j) {
    const double g = static_cast<double>(dy[j]) * gamma[j];
    const double xhat = static_cast<double>((x[j] - mean) * rstd);
    sum_g += g;
    sum_g_xhat += g * xhat;
  }
  const double mean_g = sum_g / static_cast<double>(c);
  const double mean_g_xhat = sum_g_xhat / static_cast<double>(c);
  for (std::int64_t j = 0; j < c; ++j) {
    const double g = static_cast<double>(dy[j]) * gamma[j];
    const double xhat = static_cast<double>((x[j] - mean) * rstd);
    dx[j] = static_cast<float>(static_cast<double>(rstd) * (g - mean_g - xhat * mean_g_xhat));
  }
}

// The normalised input of one element, as the forward formed it (for dgamma = sum dy * xhat).
DPT_HOST_DEVICE float layer_norm_xhat(float x, float mean, float rstd) { return (x - mean) * rstd; }

// ---- causal softmax of one attention row -------------------------------------------------------
// Row i of att for T positions: s holds the raw scores q_i . k_j for j <= i on entry; on return
// softmax_j(scale * s_j) over j <= i, and 0 for j in (i, T). As nanoGPT (scores scaled in float,
// then softmax), with the exponentials' sum in double.
DPT_HOST_DEVICE void causal_softmax_row(float* s, std::int64_t i, std::int64_t t, float scale) {
  float max_value = s[0] * scale;
  for (std::int64_t j = 0; j <= i; ++j) {
    s[j] = s[j] * scale;
    if (s[j] > max_value) max_value = s[j];
  }
  double sum = 0.0;
  for (std::int64_t j = 0; j <= i; ++j) {
    s[j] = std::exp(s[j] - max_value);
    sum += static_cast<double>(s[j]);
  }
  for (std::int64_t j = 0; j <= i; ++j) s[j] = static_cast<float>(static_cast<double>(s[j]) / sum);
  for (std::int64_t j = i + 1; j < t; ++j) s[j] = 0.0f;
}

// Backward of causal_softmax_row: p is the forward's row (softmax), d holds dL/dp on entry and
// dL/ds (the raw scores' gradient, scale included) on return, 0 for j in (i, T).
DPT_HOST_DEVICE void causal_softmax_backward_row(const float* p, float* d, std::int64_t i,
                                                 std::int64_t t, float scale) {
  double dot = 0.0;
  for (std::int64_t j = 0; j <= i; ++j) dot += static_cast<double>(p[j]) * d[j];
  for (std::int64_t j = 0; j <= i; ++j) {
    d[j] = static_cast<float>(static_cast<double>(p[j]) * (static_cast<double>(d[j]) - dot) *
                              static_cast<double>(scale));
  }
  for (std::int64_t j = i + 1; j < t; ++j) d[j] = 0.0f;
}

// ---- dropout of a range of one sample's elements -------------------------------------------------
// mask[e - begin] = the dropout mask of element e of global sample `sample` (Note [Dropout counter
// layout]), for e in [begin, end): the same values dropout_block gives that element, for a range
// that need not start or end on a block of 4 (one attention head of T*T elements, T odd).
DPT_HOST_DEVICE void dropout_mask_range(float* mask, std::int64_t begin, std::int64_t end,
                                        float p, float keep_scale, std::uint64_t seed,
                                        std::uint32_t step, std::uint32_t layer,
                                        std::int64_t sample) {
  for (std::int64_t block = begin / 4; block * 4 < end; ++block) {
    const Philox4 bits =
        dropout_bits(seed, step, layer, sample, static_cast<std::uint32_t>(block));
    for (std::int64_t l = 0; l < 4; ++l) {
      const std::int64_t e = block * 4 + l;
      if (e >= begin && e < end) mask[e - begin] = dropout_mask(bits.v[l], p, keep_scale);
    }
  }
}

}  // namespace dpt::kernels
