// SPDX-License-Identifier: MIT
// Elementwise math written once (relu, dropout mask, softmax cross-entropy of one sample) as
// DPT_HOST_DEVICE functions: the CPU loops and the CUDA kernels call the same.
#pragma once

#include <cmath>
#include <cstdint>

#include "runtime/host_device.h"
#include "runtime/philox.h"

namespace dpt::kernels {

DPT_HOST_DEVICE float relu(float x) { return x > 0.0f ? x : 0.0f; }
// y is the forward's output: y > 0 exactly where the input was > 0.
DPT_HOST_DEVICE float relu_grad(float y, float dy) { return y > 0.0f ? dy : 0.0f; }

// Note [Dropout counter layout]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// PhiloxStream's counter has one word for (a, b) each and no room for the sample, so dropout uses a
// dedicated Philox4x32-10 call: counter = {e / 4, sample_lo, layer, step}, lane e % 4, key =
// {seed_lo ^ sample_hi, seed_hi ^ kDropoutKeySalt}. The salt keeps dropout numbers apart from the
// PhiloxStream purposes (whose key is the bare seed). The mask of element e of global sample s is
// therefore a pure function of (seed, step, layer, s, e): independent of batch split, rank,
// thread count and device.
constexpr std::uint32_t kDropoutKeySalt = 0x44524F50u;  // "DROP"

// Four consecutive random words for elements [4 * block, 4 * block + 4) of one sample.
DPT_HOST_DEVICE Philox4 dropout_bits(std::uint64_t seed, std::uint32_t step, std::uint32_t layer,
                                     std::int64_t sample, std::uint32_t block) {
  const auto sample_u = static_cast<std::uint64_t>(sample);
  const Philox4 counter{{block, static_cast<std::uint32_t>(sample_u), layer, step}};
  return philox4x32_10(counter,
                       static_cast<std::uint32_t>(seed) ^ static_cast<std::uint32_t>(sample_u >> 32),
                       static_cast<std::uint32_t>(seed >> 32) ^ kDropoutKeySalt);
}

// Mask value from one random word: 0 with probability p, else 1 / (1 - p) (inverted dropout, as
// torch.nn.Dropout). keep_scale = 1 / (1 - p) is passed in so it is computed once.
DPT_HOST_DEVICE float dropout_mask(std::uint32_t bits, float p, float keep_scale) {
  return uniform_from_bits(bits) >= p ? keep_scale : 0.0f;
}

// Dropout of elements [4 * block, 4 * block + 4) of batch row `row` (global sample
// first_sample + row), each row holding per_sample elements: the loop body of both backends, so
// that their masks agree bit for bit. keep_scale = 1 / (1 - p).
DPT_HOST_DEVICE void dropout_block(const float* x, float* y, float* mask, std::int64_t row,
                                   std::int64_t block, std::int64_t per_sample, float p,
                                   float keep_scale, std::uint64_t seed, std::uint32_t step,
                                   std::uint32_t layer, std::int64_t first_sample) {
  const Philox4 bits =
      dropout_bits(seed, step, layer, first_sample + row, static_cast<std::uint32_t>(block));
  const std::int64_t base = row * per_sample + block * 4;
  const std::int64_t lanes = per_sample - block * 4 < 4 ? per_sample - block * 4 : 4;
  for (std::int64_t l = 0; l < lanes; ++l) {
    const float m = dropout_mask(bits.v[l], p, keep_scale);
    mask[base + l] = m;
    y[base + l] = x[base + l] * m;
  }
}

// Softmax cross-entropy of one sample with `classes` logits. Numerically stable (log-sum-exp around
// the max). Returns -log softmax(logits)[label] and writes softmax - onehot into dlogits when it is
// not null; *argmax gets the first index of the largest logit.
DPT_HOST_DEVICE double softmax_xent_row(const float* logits, std::int64_t classes, std::int32_t label,
                                        float* dlogits, std::int64_t* argmax) {
  float max_value = logits[0];
  std::int64_t best = 0;
  for (std::int64_t j = 1; j < classes; ++j) {
    if (logits[j] > max_value) {
      max_value = logits[j];
      best = j;
    }
  }
  double sum = 0.0;
  for (std::int64_t j = 0; j < classes; ++j) sum += std::exp(static_cast<double>(logits[j] - max_value));
  const double log_sum = std::log(sum);
  if (dlogits != nullptr) {
    const double inv_sum = 1.0 / sum;
    for (std::int64_t j = 0; j < classes; ++j) {
      const double prob = std::exp(static_cast<double>(logits[j] - max_value)) * inv_sum;
      dlogits[j] = static_cast<float>(prob - (j == label ? 1.0 : 0.0));
    }
  }
  *argmax = best;
  return log_sum - static_cast<double>(logits[label] - max_value);
}

}  // namespace dpt::kernels
