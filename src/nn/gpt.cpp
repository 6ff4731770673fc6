// SPDX-License-Identifier: MIT
// build_gpt: the GPT as a Sequential of an embedding, blocks, a LayerNorm and a tied head.
#include "nn/gpt.h"

#include <cmath>
#include <memory>

#include "nn/chain.h"
#include "nn/layers/attention.h"
#include "nn/layers/embedding.h"
#include "nn/layers/layer_norm.h"
#include "nn/layers/linear.h"
#include "nn/layers/lm_head.h"
#include "nn/layers/simple.h"

namespace dpt::nn {
namespace {

// One transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x)), with nanoGPT's child names.
std::unique_ptr<Module> block(const GptConfig& c) {
  const std::int64_t width = c.n_embd;
  auto attn = std::make_unique<Chain>("Attention");
  attn->add("c_attn", std::make_unique<Linear>(width, 3 * width, c.bias));
  attn->add("",
            std::make_unique<CausalSelfAttention>(width, static_cast<int>(c.n_head), c.dropout));
  attn->add("c_proj", std::make_unique<Linear>(width, width, c.bias));
  attn->add("", std::make_unique<Dropout>(c.dropout));
  auto mlp = std::make_unique<Chain>("MLP");
  mlp->add("c_fc", std::make_unique<Linear>(width, 4 * width, c.bias));
  mlp->add("", std::make_unique<Gelu>());
  mlp->add("c_proj", std::make_unique<Linear>(4 * width, width, c.bias));
  mlp->add("", std::make_unique<Dropout>(c.dropout));

  auto attention_branch = std::make_unique<Residual>();
  attention_branch->add("ln_1", std::make_unique<LayerNorm>(width, c.bias));
  attention_branch->add("attn", std::move(attn));
  auto mlp_branch = std::make_unique<Residual>();
  mlp_branch->add("ln_2", std::make_unique<LayerNorm>(width, c.bias));
  mlp_branch->add("mlp", std::move(mlp));
  auto b = std::make_unique<Chain>("Block");
  b->add("", std::move(attention_branch));
  b->add("", std::move(mlp_branch));
  return b;
}

}  // namespace

void validate(const GptConfig& c) {
  DPT_CHECK(c.n_layer > 0, "model: n_layer must be positive, got ", c.n_layer);
  DPT_CHECK(c.n_head > 0, "model: n_head must be positive, got ", c.n_head);
  DPT_CHECK(c.n_embd > 0, "model: n_embd must be positive, got ", c.n_embd);
  DPT_CHECK(c.n_embd % c.n_head == 0, "model: n_head ", c.n_head, " does not divide n_embd ",
            c.n_embd, " (each head gets n_embd / n_head channels)");
  DPT_CHECK(c.block_size > 0, "model: block_size must be positive, got ", c.block_size);
  DPT_CHECK(c.vocab_size > 0, "model: vocab_size must be positive, got ", c.vocab_size);
  DPT_CHECK(c.dropout >= 0.0f && c.dropout < 1.0f, "model: dropout must be in [0, 1), got ",
            c.dropout);
}

std::string describe(const GptConfig& c) {
  return detail::str("gpt(n_layer ", c.n_layer, ", n_head ", c.n_head, ", n_embd ", c.n_embd,
                     ", block_size ", c.block_size, ", vocab_size ", c.vocab_size, ", dropout ",
                     c.dropout, ", bias ", c.bias ? "true" : "false", ")");
}

Sequential build_gpt(const GptConfig& c, std::int64_t context, Device device) {
  validate(c);
  DPT_CHECK(context > 0 && context <= c.block_size, "model: a context of ", context,
            " positions does not fit block_size ", c.block_size);
  Sequential model;
  auto embedding = std::make_unique<TokenPositionEmbedding>(c.vocab_size, c.block_size, c.n_embd);
  embedding->set_tied();
  Parameter& wte = embedding->token_weight();
  model.add(std::move(embedding), "transformer");
  if (c.dropout > 0.0f) model.add(std::make_unique<Dropout>(c.dropout), "transformer.drop");
  for (std::int64_t i = 0; i < c.n_layer; ++i) {
    model.add(block(c), "transformer.h." + std::to_string(i));
  }
  model.add(std::make_unique<LayerNorm>(c.n_embd, c.bias), "transformer.ln_f");
  model.add(std::make_unique<TiedLmHead>(wte), "lm_head");
  model.finalize({context}, device);

  // GPT-2's initialisation (nanoGPT's _init_weights and its c_proj rule).
  const float projection_std = 0.02f / std::sqrt(2.0f * static_cast<float>(c.n_layer));
  for (Parameter* p : model.parameters()) {
    if (p->init == Init::kOnes) continue;  // LayerNorm weights
    if (p->name.ends_with(".bias")) {
      p->init = Init::kZeros;
    } else {
      p->init = Init::kNormal;
      p->init_std = p->name.ends_with("c_proj.weight") ? projection_std : 0.02f;
    }
  }
  return model;
}

}  // namespace dpt::nn
