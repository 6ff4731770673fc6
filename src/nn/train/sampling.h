// SPDX-License-Identifier: MIT
// Text generation from a language model (`train sample`): one token at a time from the model's
// last-position logits, with temperature and top-k, each draw keyed by (seed, position) so that a
// seed always gives the same text, on any machine and thread count whose logits are the same.
#pragma once

#include <cstdint>
#include <vector>

#include "nn/sequential.h"

namespace dpt::nn {

struct SampleOptions {
  std::int64_t tokens = 300;  // new tokens to generate
  double temperature = 1.0;   // > 0; logits are divided by it
  std::int64_t top_k = 0;     // > 0: only the k likeliest tokens may be drawn; 0: all
  std::uint64_t seed = 0;
};

// The token chosen from `logits` (one row of `vocab`) for a uniform draw `u` in [0, 1): the
// inverse of the cumulative distribution of softmax(logits / temperature) restricted to the
// top_k largest logits (ties kept in token order), computed in double in token order.
std::int32_t choose_token(const float* logits, std::int64_t vocab, double temperature,
                          std::int64_t top_k, double u);

// `prompt` followed by options.tokens generated tokens. Each step runs the model over the last
// `context` tokens at most (its block size) and draws from the last position's logits; draw i is
// Philox(seed; sample, i). The model runs in evaluation mode (no dropout).
std::vector<std::int32_t> generate(const Context& ctx, Sequential& model,
                                   std::vector<std::int32_t> prompt, std::int64_t context,
                                   const SampleOptions& options);

}  // namespace dpt::nn
