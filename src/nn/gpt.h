// SPDX-License-Identifier: MIT
// The GPT-2-style language model (nanoGPT's GPT): token and position embeddings, n_layer
// pre-norm blocks (x + attn(ln_1(x)), x + mlp(ln_2(x))), a final LayerNorm and a head tied to the
// token embedding. Parameter names are nanoGPT's ("transformer.h.0.attn.c_attn.weight"), so a
// checkpoint loads into its GPT class by name (lm_head.weight is transformer.wte.weight).
#pragma once

#include <cstdint>
#include <string>

#include "nn/sequential.h"

namespace dpt::nn {

struct GptConfig {
  // nanoGPT's CPU configuration for character-level Shakespeare.
  std::int64_t n_layer = 4;
  std::int64_t n_head = 4;
  std::int64_t n_embd = 128;
  std::int64_t block_size = 64;  // the longest context (rows of wpe)
  std::int64_t vocab_size = 65;  // set from the dataset when the config leaves it 0
  float dropout = 0.0f;
  bool bias = false;  // biases in Linear and LayerNorm layers
};

// Checks the configuration; every problem names the key ("n_head 3 does not divide n_embd 128").
void validate(const GptConfig& config);
std::string describe(const GptConfig& config);

// The model for token windows of `context` positions (context <= block_size), finalized on
// `device`. Initialisation (init_parameters) follows GPT-2/nanoGPT: Linear and embedding weights
// normal(0, 0.02), the residual projections (c_proj) normal(0, 0.02 / sqrt(2 * n_layer)), biases
// zero, LayerNorm weights one.
Sequential build_gpt(const GptConfig& config, std::int64_t context, Device device = Device::cpu());

}  // namespace dpt::nn
