// SPDX-License-Identifier: MIT
// TokenPositionEmbedding: GPT's input layer, wte[token] + wpe[position], from i32 tokens [B,T]
// to [B,T,C]. Parameters "wte.weight" [V,C] and "wpe.weight" [P,C] (nanoGPT's names under
// "transformer"); a tied language-model head reads and writes wte (TiedLmHead).
#pragma once

#include "nn/module.h"

namespace dpt::nn {

class TokenPositionEmbedding final : public Module {
 public:
  TokenPositionEmbedding(std::int64_t vocab_size, std::int64_t max_positions,
                         std::int64_t channels);

  std::string describe() const override;
  Shape output_shape(const Shape& input) const override;
  Tensor forward(const Context& ctx, const Tensor& tokens, const StepInfo& info) override;
  // Adds into wte's gradient when a tied head has written it first (tied()).
  Tensor backward(const Context& ctx, const Tensor& dy, const StepInfo& info,
                  bool need_dx) override;
  std::vector<Parameter*> parameters() override { return {&wte_, &wpe_}; }

  Parameter& token_weight() { return wte_; }
  // A TiedLmHead computes wte's gradient first in backward; this layer then adds to it.
  void set_tied() { tied_ = true; }

  void saved_for_backward(std::vector<const Tensor*>& out) const override {
    if (tokens_.defined()) out.push_back(&tokens_);
  }

 private:
  std::int64_t vocab_size_, max_positions_, channels_;
  Parameter wte_, wpe_;
  bool tied_ = false;
  Tensor tokens_;  // saved by a training forward
};

}  // namespace dpt::nn
